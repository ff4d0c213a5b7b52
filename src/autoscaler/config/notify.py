"""Where the autoscaler's notifications go: the SNS topic (NOTIFY_TOPIC_ARN) and, optionally, a Slack
incoming webhook whose URL is kept in SSM (SLACK_WEBHOOK_PARAM names the parameter).

The webhook URL is a secret (whoever holds it can post to the channel): an error about it names the
parameter, never the value.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlsplit

from autoscaler.config.environ import ConfigError, loopback, text

ENV_SLACK_PARAM = "SLACK_WEBHOOK_PARAM"


def topic_arn(environ: Mapping[str, str]) -> str | None:
    return text(environ, "NOTIFY_TOPIC_ARN")


def slack_parameter(environ: Mapping[str, str]) -> str | None:
    """The SSM parameter NAME holding the webhook URL; None when Slack is not configured."""
    name = text(environ, ENV_SLACK_PARAM)
    if name is not None and not name.startswith("/"):
        raise ConfigError(f"{ENV_SLACK_PARAM}={name!r} is not an SSM parameter name: allowed /<path>")
    return name


def slack_url(parameter: str, value: str) -> str:
    """The webhook URL read from `parameter`: https:// (http:// only to a loopback receiver)."""
    url = value.strip()
    parts = urlsplit(url)
    host = parts.hostname or ""
    if not host or parts.scheme not in ("https", "http") or (parts.scheme == "http" and not loopback(host)):
        raise ConfigError(
            f"{ENV_SLACK_PARAM}: the value of SSM parameter {parameter} is not a Slack webhook URL: "
            "allowed https://hooks.slack.com/services/... (http:// only for a loopback host)"
        )
    return url
