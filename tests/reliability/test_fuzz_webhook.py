"""The Flux webhook and the hook's Lambda entry, fuzzed: only 202/400/401, and no write to the gate
store without a valid signature; the handler writes only for a schedule tick or a signed notice.
Profiles and shared strategies: fuzzing.py.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
import os
from typing import Any

import pytest
from fuzzing import (
    EVENT_DOCS,
    EVENT_JSON,
    EVENT_KEYS,
    NOW,
    clear_settings_env,
    fuzz,
    json_values,
    mutations,
    note_outcome,
)
from hypothesis import given
from hypothesis import strategies as st

from autoscaler.config import Settings
from flux_objects import cond, flux_event, iso, kustomization
from gitops_hooks import handler as hook_handler
from lambda_context import LambdaContext

# Powertools warns when an invocation ends with no metric (a rejected webhook request adds none).
pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish:UserWarning")


HOOK_KEY = b"fuzz-hmac-key-3f9a7c51"
HOOK_SETTINGS = Settings()
MAX_AGE_S = 300.0


class HookStore:
    def __init__(self) -> None:
        self.saves: list[dict] = []
        self.record: dict | None = None

    def load(self):
        return self.record

    def save(self, record, observed_at):
        self.saves.append(record)
        self.record = json.loads(json.dumps(record))

    def first_use(self, digest, expires_at):
        return True  # every fuzzed body is new; the replay cache is tested on its own


READY = kustomization([cond("Ready", "True", "ReconciliationSucceeded"), cond("Healthy", "True", "Succeeded")])


class HookObjects:
    def list_custom(self, group, version, plural):
        return [READY] if plural == "kustomizations" else None


def hook_wiring() -> hook_handler.HookWiring:
    return hook_handler.HookWiring(HookObjects(), HookStore(), HOOK_KEY, clock=lambda: NOW)


NOTICE = flux_event(sent=NOW - 5)
NOTICE_WORDS = (
    "Progressing",
    "ReconciliationSucceeded",
    iso(NOW),
    iso(NOW - 1000),
    iso(NOW + 1000),
    "2027-01-15T08:00:00",
    "0001-01-01T00:00:00Z",
    "not a time",
)
NOTICE_JSON = json_values(NOTICE_WORDS, (*NOTICE, "kind", "name", "namespace"))


@st.composite
def notice_bodies(draw: st.DrawFn) -> bytes:
    choice = draw(st.integers(min_value=0, max_value=9))
    if choice == 0:
        return draw(st.binary(max_size=200))
    if choice == 1:
        return draw(st.text(max_size=200)).encode()
    if choice == 2:
        return b"x" * draw(st.integers(min_value=65_000, max_value=70_000))
    if choice == 3:
        return json.dumps(draw(NOTICE_JSON)).encode()
    notice = dict(NOTICE, timestamp=iso(NOW + draw(st.integers(min_value=-400, max_value=100))))
    if choice > 6:
        notice = draw(mutations([notice], NOTICE_JSON, tuple(NOTICE)))
    return json.dumps(notice).encode()


@st.composite
def webhook_events(draw: st.DrawFn) -> tuple[dict[str, Any], bool]:
    """(a Function URL request, whether it carries a valid signature of its body)."""
    raw = draw(notice_bodies())
    b64 = draw(st.booleans())
    try:
        text = raw.decode()
    except UnicodeDecodeError:
        b64 = True
    body: Any = base64.b64encode(raw).decode() if b64 else text
    digest = hmac.new(HOOK_KEY, raw, hashlib.sha256).hexdigest()
    kind = draw(st.sampled_from(("valid", "valid", "VALID", "padded", "missing", "other key", "short", "sha1", "junk")))
    signature: Any = {
        "valid": f"sha256={digest}",
        "VALID": f"sha256={digest.upper()}",
        "padded": f"sha256= {digest} ",
        "missing": None,
        "other key": "sha256=" + hmac.new(b"not-the-key", raw, hashlib.sha256).hexdigest(),
        "short": f"sha256={digest[:-2]}",
        "sha1": "sha1=" + hmac.new(HOOK_KEY, raw, hashlib.sha1).hexdigest(),
        "junk": draw(NOTICE_JSON),
    }[kind]
    valid = kind in ("valid", "VALID", "padded")
    headers: Any = draw(st.dictionaries(st.text(max_size=10), st.text(max_size=20), max_size=3))
    if signature is not None:
        headers[draw(st.sampled_from(("x-signature", "X-Signature", "X-SIGNATURE")))] = signature
    event: dict[str, Any] = {
        "version": "2.0",
        "rawPath": "/",
        "headers": headers,
        "requestContext": {"http": {"method": "POST", "path": "/"}},
        "body": body,
        "isBase64Encoded": b64,
    }
    choice = draw(st.integers(min_value=0, max_value=14))
    if choice == 0:
        event["body"], valid = draw(NOTICE_JSON), False
    elif choice == 1:
        event["isBase64Encoded"] = draw(NOTICE_JSON)
        valid = valid and bool(event["isBase64Encoded"]) == b64
    elif choice == 2 and b64:
        event["body"], valid = body[:-1] + "!", False  # not base64 any more
    elif choice == 3:
        event["headers"] = draw(NOTICE_JSON)
        valid = False
    return event, valid


@fuzz(1000)
@given(request=webhook_events())
def test_the_webhook_answers_202_400_or_401_and_writes_only_when_signed(request):
    event, signed = request
    w = hook_wiring()
    answer = hook_handler.webhook(copy.deepcopy(event), w, HOOK_SETTINGS, MAX_AGE_S)
    status = answer["statusCode"]
    assert status in (202, 400, 401), answer
    message = json.loads(answer["body"])["message"]
    assert message and HOOK_KEY.decode() not in answer["body"]
    if not signed:
        assert status in (400, 401) and w.store.saves == [], f"{status} and {len(w.store.saves)} writes, unsigned"
    assert len(w.store.saves) == (status == 202)
    note_outcome(f"{'signed' if signed else 'unsigned'}: {status}")


HOOK_EVENTS = EVENT_JSON | mutations(EVENT_DOCS, EVENT_JSON, EVENT_KEYS) | webhook_events().map(lambda r: r[0])


@pytest.fixture(scope="module")
def hook_env():
    saved_env, saved_wiring = dict(os.environ), hook_handler._wiring
    clear_settings_env()
    os.environ.update({"CLUSTER_NAME": "fuzz", "WEBHOOK_MAX_AGE_S": "300"})
    yield
    hook_handler._wiring = saved_wiring
    os.environ.clear()
    os.environ.update(saved_env)


@fuzz(1000)
@given(event=HOOK_EVENTS)
def test_the_hook_handler_writes_only_for_a_schedule_tick_or_a_signed_notice(hook_env, event):
    w = hook_handler._wiring = hook_wiring()
    answer = hook_handler.lambda_handler(copy.deepcopy(event), LambdaContext())
    json.dumps(answer)
    url = (
        isinstance(event, dict) and isinstance(event.get("requestContext"), dict) and "http" in event["requestContext"]
    )
    tick = isinstance(event, dict) and event.get("detail-type") == "Scheduled Event"
    if url:
        assert answer["statusCode"] in (202, 400, 401)
    elif tick:
        assert answer["status"] == "ok" and len(w.store.saves) == 1
    else:
        assert answer["status"] == "rejected" and w.store.saves == [], answer


# --------------------------------------------------------------------------------------------------
# REGRESSIONS: shapes this fuzzing found breaking the webhook, each with its minimal example.


def _signed_event(raw: bytes, headers: Any = None) -> dict[str, Any]:
    signature = "sha256=" + hmac.new(HOOK_KEY, raw, hashlib.sha256).hexdigest()
    return {
        "requestContext": {"http": {"method": "POST", "path": "/"}},
        "headers": {"x-signature": signature} if headers is None else headers,
        "body": raw.decode(),
        "isBase64Encoded": False,
    }


WEBHOOK_REGRESSIONS = [
    ("headers a list", _signed_event(b"{}", headers=["x-signature"])),
    ("headers a string", _signed_event(b"{}", headers="x-signature: sha256=00")),
    ("text body with a lone surrogate", {"requestContext": {"http": {}}, "headers": {}, "body": "\ud800"}),
    ("signed, deeply nested JSON body", _signed_event(b"[" * 5000 + b"]" * 5000)),
]


@pytest.mark.parametrize("event", [c[1] for c in WEBHOOK_REGRESSIONS], ids=[c[0] for c in WEBHOOK_REGRESSIONS])
def test_regression_webhook(event):
    answer = hook_handler.webhook(event, hook_wiring(), HOOK_SETTINGS, MAX_AGE_S)
    assert answer["statusCode"] in (400, 401)
