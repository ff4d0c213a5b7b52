"""The GitOps hook: scheduled poll, and the signed Flux webhook."""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import io
import json

import pytest

from autoscaler.config import Settings
from autoscaler.gitops.reader import check
from flux_objects import flux_event as flux_event_at
from gitops_hooks import handler
from gitops_hooks.handler import HookWiring, poll, webhook
from lambda_context import LambdaContext

NOW = 1_800_000_000.0
KEY = b"canary-secret-3f9a7c"
S = Settings()
# Sent now, unless a test says otherwise.
flux_event = functools.partial(flux_event_at, sent=NOW)


class Objects:
    def __init__(self, kustomizations=(), installed=True):
        self.kustomizations = list(kustomizations)
        self.installed = installed

    def list_custom(self, group, version, plural):
        if plural != "kustomizations" or not self.installed:
            return None
        return self.kustomizations


class Store:
    def __init__(self):
        self.record, self.observed_at = None, None
        self.used = {}

    def load(self):
        return self.record

    def save(self, record, observed_at):
        self.record, self.observed_at = json.loads(json.dumps(record)), observed_at

    def first_use(self, digest, expires_at):
        fresh = digest not in self.used
        self.used[digest] = expires_at
        return fresh


def kustomization(ready="True", reason="ReconciliationSucceeded"):
    return {
        "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
        "kind": "Kustomization",
        "metadata": {"name": "apps", "namespace": "flux-system", "generation": 3},
        "status": {
            "observedGeneration": 3,
            "conditions": [
                {
                    "type": "Ready",
                    "status": ready,
                    "reason": reason,
                    "message": "",
                    "lastTransitionTime": "2026-11-26T10:00:00Z",
                }
            ],
        },
    }


def wiring(objects=None, clock=NOW):
    return HookWiring(objects or Objects([kustomization()]), Store(), KEY, clock=lambda: clock)


def url_request(body: bytes, signature: str | None = "sign", b64=False):
    headers = {"content-type": "application/json", "user-agent": "Go-http-client/1.1"}
    if signature == "sign":
        headers["X-Signature"] = "sha256=" + hmac.new(KEY, body, hashlib.sha256).hexdigest()
    elif signature is not None:
        headers["X-Signature"] = signature
    return {
        "version": "2.0",
        "rawPath": "/",
        "headers": headers,
        "requestContext": {"http": {"method": "POST", "path": "/"}},
        "body": base64.b64encode(body).decode() if b64 else body.decode(),
        "isBase64Encoded": b64,
    }


def test_poll_writes_an_open_gate_when_everything_is_ready():
    w = wiring()
    assert poll(w, S)["blocked"] is False
    assert w.store.record["blocked"] is False and w.store.observed_at == NOW


def test_poll_holds_while_a_kustomization_reconciles():
    w = wiring(Objects([kustomization("Unknown", "Progressing")]))
    result = poll(w, S)
    assert result["blocked"] is True
    assert result["reasons"][0]["name"] == "apps"


def test_poll_with_flux_not_installed_is_open():
    assert poll(wiring(Objects(installed=False)), S)["blocked"] is False


def test_a_progressing_event_holds_at_once_even_before_the_status_shows_it():
    w = wiring()
    body = json.dumps(flux_event()).encode()
    reply = webhook(url_request(body), w, S, 300)
    assert reply["statusCode"] == 202 and json.loads(reply["body"])["blocked"] is True
    answer = check(w.source, w.store, NOW + 30, S.gate_settle_s, S.gate_max_hold_s)
    assert answer.blocked and answer.reasons[-1]["detail"] == "Flux event Progressing"


def test_a_success_event_triggers_a_fresh_poll():
    w = wiring()
    reply = webhook(url_request(json.dumps(flux_event("ReconciliationSucceeded")).encode(), b64=True), w, S, 300)
    assert reply["statusCode"] == 202 and w.store.observed_at == NOW


@pytest.mark.parametrize(
    ("request_", "status"),
    [
        pytest.param(url_request(json.dumps(flux_event()).encode(), signature=None), 401, id="missing signature"),
        pytest.param(
            url_request(json.dumps(flux_event()).encode(), signature="sha256=" + "0" * 64), 401, id="forged signature"
        ),
        pytest.param(url_request(json.dumps(flux_event()).encode(), signature="md5=abc"), 401, id="wrong scheme"),
        pytest.param(url_request(b"x" * (handler.MAX_BODY_BYTES + 1)), 400, id="oversized"),
        pytest.param(url_request(b"{not json"), 400, id="malformed"),
        pytest.param(url_request(json.dumps({"reason": "Progressing"}).encode()), 400, id="not a flux event"),
        pytest.param(url_request(json.dumps(flux_event(sent=NOW - 3600)).encode()), 400, id="stale (replayed) event"),
        pytest.param({**url_request(b"{}"), "body": "%%%", "isBase64Encoded": True}, 400, id="bad base64"),
        pytest.param(url_request(b"\xff\xfe{}", b64=True), 400, id="signed, not UTF-8"),
        pytest.param({**url_request(b"{}"), "body": "\ud800"}, 400, id="text with a lone surrogate"),
        pytest.param({**url_request(b"{}"), "headers": 0}, 401, id="no headers"),
        pytest.param({**url_request(b"{}"), "headers": ["x-signature"]}, 400, id="headers not an object"),
    ],
)
def test_webhook_rejects_bad_requests_and_changes_nothing(request_, status):
    w = wiring()
    reply = webhook(request_, w, S, 300)
    assert reply["statusCode"] == status
    assert w.store.record is None


def test_a_signed_request_is_accepted_once():
    w = wiring()
    request_ = url_request(json.dumps(flux_event()).encode())
    assert webhook(request_, w, S, 300)["statusCode"] == 202
    w.store.record = None

    again = webhook(request_, w, S, 300)

    assert again["statusCode"] == 409 and "replay" in json.loads(again["body"])["message"]
    assert w.store.record is None, "a replay changes nothing"
    (kept_until,) = w.store.used.values()
    assert kept_until == NOW + 300, "the record lasts as long as the body is fresh"
    assert webhook(url_request(json.dumps(flux_event(sent=NOW - 1)).encode()), w, S, 300)["statusCode"] == 202


def test_flux_s_largest_event_fits():
    """notification-controller cuts a message at 39,000 characters; Go's encoder writes "<" as the six
    bytes \\u003c, so the body is ~234 KB."""
    event = flux_event("ReconciliationFailed")
    event["message"] = "<" * 39_000
    body = json.dumps(event).replace("<", "\\u003c").encode()
    assert 234_000 < len(body) <= handler.MAX_BODY_BYTES

    reply = webhook(url_request(body), wiring(), S, 300)

    assert reply["statusCode"] == 202, reply


def test_the_secret_never_appears_in_a_response_or_a_log(monkeypatch, capsys):
    w = wiring()
    monkeypatch.setattr(handler, "_wiring", w)
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "NodeFleet")
    replies = [
        handler.lambda_handler(url_request(json.dumps(flux_event()).encode()), LambdaContext()),
        handler.lambda_handler(url_request(b"{}", signature="sha256=" + "1" * 64), LambdaContext()),
        handler.lambda_handler(
            {"version": "0", "id": "1", "detail-type": "Scheduled Event", "source": "aws.events", "detail": {}},
            LambdaContext(),
        ),
    ]
    out = capsys.readouterr()
    assert [r.get("statusCode", 200) for r in replies] == [202, 401, 200]
    for text in (json.dumps(replies), out.out, out.err):
        assert KEY.decode() not in text


def test_an_unexpected_event_is_rejected(monkeypatch):
    monkeypatch.setattr(handler, "_wiring", wiring())
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "NodeFleet")
    assert handler.lambda_handler({"hello": 1}, LambdaContext())["status"] == "rejected"


CAP = S.gate_max_hold_s


def _poll_at(at):
    def step(w):
        w.clock = lambda: at
        poll(w, S)

    return step


def _event_at(at, reason="Progressing"):
    def step(w):
        w.clock = lambda: at
        assert webhook(url_request(json.dumps(flux_event(reason, sent=at)).encode()), w, S, 300)["statusCode"] == 202

    return step


@pytest.mark.parametrize(
    ("objects", "steps", "held", "cap_hit"),
    [
        pytest.param([kustomization()], [_poll_at(NOW)], False, False, id="everything ready"),
        pytest.param([kustomization("Unknown", "Progressing")], [_poll_at(NOW)], True, False, id="reconciling"),
        pytest.param([kustomization()], [_event_at(NOW)], True, False, id="a Progressing event before the status"),
        pytest.param(
            [kustomization()], [_event_at(NOW - 200), _poll_at(NOW)], False, False, id="an event hold that ended"
        ),
        pytest.param(
            [kustomization("Unknown", "Progressing")],
            [_poll_at(NOW - CAP), _event_at(NOW)],
            False,
            True,
            id="cap hit with an event hold",
        ),
        pytest.param(
            [kustomization("Unknown", "Progressing")],
            [_poll_at(NOW - CAP), _event_at(NOW - 30), _poll_at(NOW)],
            False,
            True,
            id="cap hit while an earlier event still holds",
        ),
    ],
)
def test_the_hooks_gate_held_metric_says_what_the_autoscaler_does(objects, steps, held, cap_hit):
    """Both functions judge the same gate item by GateItem.held(now): once the cap is hit, a notification's
    hold no longer holds in either."""
    w = wiring(Objects(objects))
    for step in steps:
        handler.metrics.clear_metrics()
        step(w)
    metric = {name: m["Value"] for name, m in handler.metrics.metric_set.items()}

    answer = check(w.source, w.store, w.clock(), S.gate_settle_s, S.gate_max_hold_s)

    assert metric["GateHeld"] == [float(held)] and answer.blocked is held
    assert ("GateHoldCapped" in metric) is cap_hit and answer.cap_hit is cap_hit
    if cap_hit:
        assert w.store.record["event_hold_until"] > w.clock(), "the stored item still carries the event's hold"


def test_an_unreadable_gate_is_a_line_of_the_functions_json_log():
    class Unreachable:
        def list_custom(self, group, version, plural):
            raise ConnectionError("API server down")

    out = io.StringIO()
    stream = handler.logger.registered_handler.setStream(out)
    try:
        answer = check(Unreachable(), Store(), NOW, S.gate_settle_s, S.gate_max_hold_s)
    finally:
        handler.logger.registered_handler.setStream(stream)

    assert answer.blocked and answer.unknown == "gate unreadable: ConnectionError: API server down"
    (line,) = [json.loads(text) for text in out.getvalue().splitlines()]
    assert (line["level"], line["message"], line["error"]) == ("WARNING", "gate unreadable", "ConnectionError")
