"""Asking Prometheus over HTTP: one instant query per POST, with retries, a deadline and the credentials.

Retries (urllib3 `Retry` on the session's `HTTPAdapter`, POST included): connection failures and
HTTP 500/502/503/504, PROMETHEUS_RETRIES times with exponential back-off (PROMETHEUS_BACKOFF_S).
A read timeout is not retried (the answer would come too late for the cycle), nor is a 4xx.

The read timeout bounds each socket read, not an answer: a server that drips its answer a byte at a
time would keep the cycle waiting for as long as it likes. So one deadline (PROMETHEUS_DEADLINE_S)
bounds all the requests of one read together: each request's timeouts are cut to the time left, the
answer is read a piece at a time with the deadline checked between pieces (so it is overrun by at most
one read timeout), and past it every answer not yet in is unknown.

Nothing secret (token, password, CA) appears in an exception, a reason or a repr.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from requests.auth import AuthBase, HTTPBasicAuth
from urllib3.exceptions import HTTPError, MaxRetryError
from urllib3.exceptions import ReadTimeoutError as RawReadTimeout
from urllib3.util.retry import Retry

from autoscaler.adapters.prometheus.queries import QueryError
from autoscaler.config.prometheus import PrometheusAuth, PrometheusOptions

RETRY_STATUSES = (500, 502, 503, 504)
_MAX_DETAIL = 200
_READ_CHUNK = 64 * 1024


class Transport:
    """POSTs instant queries to one Prometheus; `session` is for tests and sharing: the retrying
    adapter is mounted on it for the Prometheus URL."""

    def __init__(
        self,
        options: PrometheusOptions,
        auth: PrometheusAuth | None,
        ca_pem: str | None,
        session: requests.Session | None,
    ) -> None:
        self._options = options
        self._api = options.url.rstrip("/") + "/api/v1/"
        self._auth = _request_auth(auth)
        self._verify: bool | str = _ca_file(ca_pem) if ca_pem is not None else True
        self._session = session if session is not None else requests.Session()
        retry = Retry(
            total=options.retries,
            connect=options.retries,
            # A slow Prometheus is not asked again: its answer would come too late for the cycle.
            # False (not 0) re-raises the read timeout as itself instead of as "max retries".
            read=False,
            status=options.retries,
            other=0,
            status_forcelist=RETRY_STATUSES,
            allowed_methods=frozenset({"GET", "POST"}),
            backoff_factor=options.backoff_s,
            raise_on_status=False,
            # A Retry-After of minutes would outlast the Lambda; back off by our own schedule only.
            respect_retry_after_header=False,
        )
        self._session.mount(options.url.rstrip("/") + "/", HTTPAdapter(max_retries=retry))

    def close(self) -> None:
        self._session.close()

    def instant(self, expr: str, now: float, deadline: float) -> dict[str, Any]:
        """POST one instant query evaluated at `now`, answered by `deadline` (monotonic); the answer's
        `data`, or QueryError."""
        return self._ask("query", {"query": expr, "time": _at(now)}, deadline)

    def range(self, expr: str, start: float, end: float, step_s: float, deadline: float) -> dict[str, Any]:
        """POST one range query evaluated every `step_s` from `start` to `end`; as `instant`."""
        return self._ask(
            "query_range",
            {"query": expr, "start": _at(start), "end": _at(end), "step": f"{step_s:g}"},
            deadline,
        )

    def _ask(self, endpoint: str, form: dict[str, str], deadline: float) -> dict[str, Any]:
        o = self._options
        left = deadline - time.monotonic()
        if left <= 0:
            raise QueryError(self._past_deadline(), query_level=False)
        try:
            with self._session.post(
                self._api + endpoint,
                data={**form, "timeout": f"{min(o.read_timeout_s, left):.3f}"},
                timeout=(min(o.connect_timeout_s, left), min(o.read_timeout_s, left)),
                auth=self._auth,
                verify=self._verify,
                allow_redirects=False,
                stream=True,
            ) as response:
                content = self._content(response, deadline)
        except requests.exceptions.SSLError:
            raise QueryError("TLS handshake or certificate verification failed", query_level=False) from None
        except requests.exceptions.ConnectTimeout:
            raise QueryError(
                f"connect timeout ({o.connect_timeout_s:g}s) after {o.retries} retries", query_level=False
            ) from None
        except requests.exceptions.ReadTimeout:
            raise QueryError(self._timed_out(deadline), query_level=False) from None
        except requests.exceptions.ConnectionError as e:
            if e.args and isinstance(e.args[0], MaxRetryError):
                raise QueryError(f"cannot connect (after {o.retries} retries)", query_level=False) from None
            raise QueryError("connection lost before an answer", query_level=False) from None
        except requests.exceptions.RetryError:
            raise QueryError(f"server errors after {o.retries} retries", query_level=False) from None
        except requests.exceptions.RequestException as e:
            raise QueryError(f"request failed ({type(e).__name__})", query_level=False) from None
        try:
            body = json.loads(content)
        except (ValueError, RecursionError):  # not JSON, or nested too deep to read
            body = None
        if not isinstance(body, dict):
            body = {}
        if response.status_code != 200 or body.get("status") != "success":
            error_type, error = body.get("errorType"), body.get("error")
            detail = f"{error_type}: {_clip(error)}" if error_type else _clip(error) if error else "no error message"
            if response.status_code in (400, 422) and error_type:
                raise QueryError(detail, query_level=True)
            retried = _retries_used(response)
            after = f" after {retried} retries" if retried else ""
            raise QueryError(f"HTTP {response.status_code}{after} ({detail})", query_level=False)
        data = body.get("data")
        if not isinstance(data, dict):
            raise QueryError("answer without data", query_level=False)
        return data

    def _content(self, response: requests.Response, deadline: float) -> bytes:
        """The answer's body, read a piece at a time until it ends or the deadline passes."""
        pieces = []
        try:
            while piece := response.raw.read1(_READ_CHUNK, decode_content=True):
                pieces.append(piece)
                if time.monotonic() > deadline:
                    raise QueryError(self._past_deadline(), query_level=False)
        except RawReadTimeout:
            raise QueryError(self._timed_out(deadline), query_level=False) from None
        except HTTPError:
            raise QueryError("connection lost before an answer", query_level=False) from None
        return b"".join(pieces)

    def _past_deadline(self) -> str:
        return f"no answer within the deadline of all this cycle's requests ({self._options.deadline_s:g}s)"

    def _timed_out(self, deadline: float) -> str:
        """Why a read timed out: its own timeout, or the deadline it was cut to."""
        if time.monotonic() >= deadline:
            return self._past_deadline()
        return f"no answer within the read timeout ({self._options.read_timeout_s:g}s)"


def _request_auth(auth: PrometheusAuth | None) -> AuthBase | None:
    if auth is None:
        return None
    if auth.bearer_token is not None:
        return _Bearer(auth.bearer_token)
    assert auth.username is not None and auth.password is not None  # nosec B101  # narrows types; __post_init__ checked
    return HTTPBasicAuth(auth.username, auth.password)


class _Bearer(AuthBase):
    def __init__(self, token: str) -> None:
        self._token = token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self._token}"
        return request

    def __repr__(self) -> str:
        return "_Bearer()"


def _ca_file(ca_pem: str) -> str:
    """requests verifies against a file: write the PEM once per content (0600, in the temp dir)."""
    if "-----BEGIN CERTIFICATE-----" not in ca_pem:
        raise ValueError("ca_pem is not a PEM certificate bundle")
    digest = hashlib.sha256(ca_pem.encode()).hexdigest()[:16]
    path = Path(tempfile.gettempdir()) / f"node-fleet-prometheus-ca-{digest}.pem"
    if not path.exists():
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".node-fleet-ca-")
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(ca_pem)
        os.replace(tmp, path)
    return str(path)


def _retries_used(response: requests.Response) -> int:
    retries = getattr(response.raw, "retries", None)
    history = getattr(retries, "history", ()) or ()
    return len(history)


def _clip(text: object) -> str:
    flat = " ".join(str(text).split())
    return flat if len(flat) <= _MAX_DETAIL else flat[: _MAX_DETAIL - 1] + "…"


def _at(t: float) -> str:
    """A time as Prometheus keeps it, in whole milliseconds, never after `t`: rounded up, a range's
    point at now would land past now and be dropped by the reader."""
    return f"{math.floor(t * 1000) / 1000:.3f}"
