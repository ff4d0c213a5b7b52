"""Notifications to a Slack incoming webhook (https://api.slack.com/messaging/webhooks): one JSON
POST with a `text` (what notifications and clients without blocks show) and the same as blocks,
a header and a section; Slack answers 200 `ok`.

The URL is a secret: a failure is reported as what Slack answered or the kind of connection error,
never with the URL, and the client's own exception (whose text carries it) is not chained.
"""

from __future__ import annotations

from typing import Any

import requests

TIMEOUT_S = (3.05, 5.0)
"""Connect and read: a notification must not eat the cycle's time budget."""
HEADER_MAX = 150
SECTION_MAX = 3000
"""Slack's limits on a header's and a section's text."""


class SlackError(Exception):
    """Slack refused the message or could not be reached (the message holds no URL)."""


def escaped(text: str) -> str:
    """Slack reads &, < and > as control characters (links, mentions) and asks for these escapes."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def payload(subject: str, message: str) -> dict[str, Any]:
    body = escaped(message)
    if len(body) > SECTION_MAX:
        body = body[: SECTION_MAX - 1] + "…"
    return {
        "text": escaped(f"{subject}\n{message}"),
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": subject[:HEADER_MAX]}},
            {"type": "section", "text": {"type": "mrkdwn", "text": body}},
        ],
    }


class SlackNotifier:
    """Called as `notify(subject, message)`, like the SNS publisher."""

    def __init__(self, url: str, session: requests.Session | None = None) -> None:
        self._url = url
        self._session = session or requests.Session()

    def __repr__(self) -> str:
        return "SlackNotifier(<webhook url>)"

    def __call__(self, subject: str, message: str) -> None:
        try:
            response = self._session.post(self._url, json=payload(subject, message), timeout=TIMEOUT_S)
        except requests.RequestException as exc:
            raise SlackError(f"Slack webhook unreachable: {type(exc).__name__}") from None
        if response.status_code != 200:
            raise SlackError(f"Slack webhook answered {response.status_code}: {response.text[:200]}")
