"""Lambda entry point of the GitOps hook.

- On its schedule: list Kustomizations, HelmReleases and Canaries, compute the gate verdict, and
  write the gate item the autoscaler reads.
- As a Function URL: receive Flux notification-controller events from a `generic-hmac`
  Provider. The HMAC-SHA256 of the raw body, keyed by the secret in SSM, must match
  `X-Signature: sha256=<hex>` (constant-time compare); a missing or wrong signature answers 401,
  an oversized, malformed or stale body 400. A signed request is accepted once: its signature is
  recorded (conditional put, kept for the stale-body window) and a second use answers 409, which
  Flux does not retry. A `Progressing` event holds at once; any other event triggers a fresh poll.
  No secret appears in a response or a log line.

The request is read through Powertools' LambdaFunctionUrlEvent (headers case-insensitively). The body's
bytes are decoded here, not by its `decoded_body`: the HMAC is over the raw bytes, and `decoded_body` gives
text (failing on bytes that are not UTF-8) without validating the base64.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
from datetime import datetime
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from autoscaler.config import ConfigError, Settings
from autoscaler.config.hook import webhook_max_age
from autoscaler.config.settings import metrics_cluster_name
from autoscaler.gitops.item import EventHold, GateItem
from autoscaler.gitops.reader import list_objects
from autoscaler.logs import quiet_wire_loggers
from autoscaler.ports import PermanentError
from gitops_hooks.wiring import HookWiring

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.data_classes import LambdaFunctionUrlEvent

quiet_wire_loggers()  # secrets never reach a log line, even at DEBUG
logger = Logger()
metrics = Metrics()

# Flux's largest event: a message cut at 39,000 characters, each possibly one of Go's 6-byte escapes
# (\u003c for "<"), is ~234 KB, plus the object reference and metadata.
MAX_BODY_BYTES = 256 * 1024
FUTURE_SKEW_S = 60
"""How far ahead of our clock a sender's timestamp may be."""


_wiring: HookWiring | None = None


def wiring() -> HookWiring:
    global _wiring
    if _wiring is None:
        from gitops_hooks.wiring import build_hook

        _wiring = build_hook(os.environ)
    return _wiring


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    metrics.add_dimension("ClusterName", metrics_cluster_name(os.environ))
    try:
        settings = Settings.from_env(os.environ)
        max_age = webhook_max_age(os.environ)
    except ConfigError as exc:
        logger.error("invalid setting, nothing done", extra={"error": str(exc)})
        metrics.add_metric(name="Errors", unit=MetricUnit.Count, value=1)
        return {"status": "error", "error": str(exc)}
    try:
        if (
            isinstance(event, dict)
            and isinstance(event.get("requestContext"), dict)
            and "http" in event["requestContext"]
        ):
            return webhook(event, wiring(), settings, max_age)
        if isinstance(event, dict) and event.get("detail-type") == "Scheduled Event":
            return poll(wiring(), settings)
    except PermanentError as exc:
        logger.error("permanent error, not retried", extra={"error": str(exc)})
        metrics.add_metric(name="Errors", unit=MetricUnit.Count, value=1)
        return {"status": "error", "error": str(exc)}
    logger.error("unexpected event, nothing done")
    metrics.add_metric(name="InvalidEvents", unit=MetricUnit.Count, value=1)
    return {"status": "rejected", "error": "event: expected a schedule tick or a Function URL request"}


def poll(w: HookWiring, settings: Settings, event: EventHold | None = None) -> dict:
    """Compute the verdict afresh from the cluster and store it. A read failure raises (retryable);
    the autoscaler then finds the item stale and its own check unreadable, which holds."""
    now = w.clock()
    # A hold from a notification lasts until its time, or until the objects say it is over.
    item = GateItem.refresh(
        w.store.load(), list_objects(w.source), now, settings.gate_settle_s, settings.gate_max_hold_s, event
    )
    w.store.save(item.to_dict(), now)
    verdict, held = item.verdict, item.held(now)
    metrics.add_metric(name="GateHeld", unit=MetricUnit.Count, value=int(held))
    metrics.add_metric(name="ObjectsInProgress", unit=MetricUnit.Count, value=len(verdict.holding))
    metrics.add_metric(name="HoldAge", unit=MetricUnit.Seconds, value=verdict.held_for_s)
    metrics.add_metric(name="StalledObjects", unit=MetricUnit.Count, value=len(verdict.stalled))
    if verdict.cap_hit:
        metrics.add_metric(name="GateHoldCapped", unit=MetricUnit.Count, value=1)
        logger.warning(
            "gate hold reached its cap; scale-down resumes", extra={"capped": [v.to_dict() for v in verdict.capped]}
        )
    logger.info("gate", extra={"held": held, "reasons": verdict.reasons, "held_for_s": verdict.held_for_s})
    return {"status": "ok", "blocked": held, "reasons": verdict.reasons}


def webhook(event: dict[str, Any], w: HookWiring, settings: Settings, max_age_s: float) -> dict[str, Any]:
    # Imported on first use: the scheduled poll, most of this function's cold starts, never needs it.
    from aws_lambda_powertools.utilities.data_classes import LambdaFunctionUrlEvent

    request = LambdaFunctionUrlEvent(event)
    body = _raw_body(request)
    if body is None:
        return _reply(400, "body: expected base64 or text")
    if len(body) > MAX_BODY_BYTES:
        return _reply(400, f"body: at most {MAX_BODY_BYTES} bytes")
    raw_headers = request.get("headers") or {}
    if not isinstance(raw_headers, dict) or not all(isinstance(k, str) for k in raw_headers):
        return _reply(400, "headers: expected an object")
    # Empty headers of any type mean none (Powertools' view of the headers would fail on a 0 or a False).
    signature = request.headers.get("x-signature") if raw_headers else None
    digest = _signed(body, signature, w.hmac_key)
    if digest is None:
        metrics.add_metric(name="WebhookRejected", unit=MetricUnit.Count, value=1)
        logger.warning("webhook rejected: missing or wrong signature")
        return _reply(401, "signature: missing or wrong")
    try:
        notice = json.loads(body)
        obj = notice["involvedObject"]
        reason, kind, name = str(notice["reason"]), str(obj["kind"]), str(obj["name"])
        namespace = str(obj.get("namespace", ""))
        sent = datetime.fromisoformat(str(notice["timestamp"]).replace("Z", "+00:00")).timestamp()
    except (ValueError, KeyError, TypeError, RecursionError, OverflowError):
        return _reply(400, "body: expected a Flux event with involvedObject, reason and timestamp")
    now = w.clock()
    if now - sent > max_age_s or sent - now > FUTURE_SKEW_S:
        return _reply(400, f"timestamp: older than {max_age_s:.0f}s or in the future")
    # Past its window the body is refused as stale, so the record need not outlive it. A cycle that fails
    # after this leaves the record: Flux's retry gets 409, and the next poll (and the autoscaler's own
    # check of Flux before any scale-down) covers the event.
    if not w.store.first_use(digest, sent + max_age_s):
        metrics.add_metric(name="WebhookRejected", unit=MetricUnit.Count, value=1)
        logger.warning("webhook rejected: replay of a request already received")
        return _reply(409, "replay: this signed request was already received")
    logger.info("flux event", extra={"reason": reason, "kind": kind, "namespace": namespace, "object": name})
    if reason == "Progressing":
        hold = {
            "kind": kind,
            "namespace": namespace,
            "name": name,
            "state": "in_progress",
            "detail": "Flux event Progressing",
        }
        result = poll(w, settings, EventHold(now + max(settings.gate_settle_s, 60), hold))
    else:
        result = poll(w, settings)
    return _reply(202, "accepted", blocked=result["blocked"])


def _raw_body(request: LambdaFunctionUrlEvent) -> bytes | None:
    body = request.body or ""
    if not isinstance(body, str):
        return None
    if request.is_base64_encoded:
        try:
            return base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            return None
    try:
        return body.encode()
    except UnicodeEncodeError:  # a lone surrogate: not text any HTTP body could carry
        return None


def _signed(body: bytes, header: Any, key: bytes) -> str | None:
    """The body's HMAC-SHA256 (hex) when `header` carries it; None for a missing or wrong signature."""
    if not isinstance(header, str) or not header.startswith("sha256="):
        return None
    expected = hmac.new(key, body, hashlib.sha256).hexdigest()
    return expected if hmac.compare_digest(expected, header[len("sha256=") :].strip().lower()) else None


def _reply(status: int, message: str, **extra: Any) -> dict[str, Any]:
    return {
        "statusCode": status,
        "headers": {"content-type": "application/json"},
        "body": json.dumps({"message": message, **extra}),
    }
