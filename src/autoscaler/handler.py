"""Lambda entry point of the autoscaler: parse, wire (once per container), serve, record.

Two kinds of error decide what happens next: a permanent one (invalid event, invalid setting)
is logged, counted and answered, and never retried; anything a retry can fix raises, so the
invoker (EventBridge's retry policy, then the dead-letter queue) delivers the event again.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from autoscaler.config import ConfigError, Settings
from autoscaler.config.settings import metrics_cluster_name
from autoscaler.events import (
    AlarmChange,
    InvalidEvent,
    Manual,
    RebalanceRecommendation,
    Request,
    SpotInterruption,
    Tick,
    parse,
    parse_alarm_actions,
)
from autoscaler.logs import quiet_wire_loggers
from autoscaler.notices import notice
from autoscaler.ports import PermanentError
from autoscaler.pricing import hourly_cost
from autoscaler.service import INTENT_MEMORY_S, LeaseBusy, Report, Wiring, handle

quiet_wire_loggers()  # secrets never reach a log line, even at DEBUG
logger = Logger()
metrics = Metrics()

_wiring: Wiring | None = None


def wiring(settings: Settings) -> Wiring:
    """Adapters are built on the first invocation of a container and reused after it."""
    global _wiring
    if _wiring is None:
        from autoscaler.wiring import build  # the adapters' imports stay off the import path of tests

        _wiring = build(settings, os.environ)
    return _wiring


@metrics.log_metrics
@logger.inject_lambda_context(correlation_id_path="id", clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    started = time.monotonic()
    metrics.add_dimension("ClusterName", metrics_cluster_name(os.environ))
    try:
        settings = Settings.from_env(os.environ)
        request = parse(event, parse_alarm_actions(os.environ.get("ALARM_ACTIONS")), context.aws_request_id)
    except InvalidEvent as exc:
        logger.error("invalid event, nothing done", extra={"error": str(exc)})
        metrics.add_metric(name="InvalidEvents", unit=MetricUnit.Count, value=1)
        return {"status": "rejected", "error": str(exc)}
    except ConfigError as exc:
        logger.error("invalid setting, nothing done", extra={"error": str(exc)})
        metrics.add_metric(name="Errors", unit=MetricUnit.Count, value=1)
        return {"status": "error", "error": str(exc)}

    logger.append_keys(request=type(request).__name__, event_id=request.event_id)
    try:
        intended = isinstance(request, Manual) or (isinstance(request, AlarmChange) and request.intent is not None)
        answer = _once(request, settings, context) if intended else _serve(request, settings)
    except PermanentError as exc:
        metrics.add_metric(name="Errors", unit=MetricUnit.Count, value=1)
        logger.error("permanent error, not retried", extra={"error": str(exc)})
        return {"status": "error", "error": str(exc)}
    except LeaseBusy:
        metrics.add_metric(name="LeaseContention", unit=MetricUnit.Count, value=1)
        logger.warning("lease taken; the event will be delivered again")
        raise
    except Exception:
        metrics.add_metric(name="Errors", unit=MetricUnit.Count, value=1)
        logger.exception("cycle failed; the event will be delivered again")
        raise
    finally:
        metrics.add_metric(
            name="CycleDuration", unit=MetricUnit.Milliseconds, value=(time.monotonic() - started) * 1000
        )
    return answer


def _serve(request: Request, settings: Settings) -> dict[str, Any]:
    w = wiring(settings)
    _queue_ticks(request, settings, w)
    report = handle(request, w, settings, token=request.event_id)
    _count_spot(request, report)
    _record(report, settings)
    _notify(report, settings, w)
    return _answer(report)


def _count_spot(request: Request, report: Report) -> None:
    """EC2's spot events about workers of ours (those about other instances count for nothing)."""
    if isinstance(request, SpotInterruption) and report.status == "acted":
        metrics.add_metric(name="SpotInterruptions", unit=MetricUnit.Count, value=1)
        logger.warning(
            "spot interruption warning",
            extra={
                "instance_id": request.instance_id,
                "instance_action": request.action,
                "warned_at": request.warned_at,
            },
        )
    elif isinstance(request, RebalanceRecommendation) and report.status == "noted":
        metrics.add_metric(name="RebalanceRecommendations", unit=MetricUnit.Count, value=1)


def _queue_ticks(request: Request, settings: Settings, w: Wiring) -> None:
    """A scheduled tick queues its minute's later ticks (TICK_S below 60) before its own cycle, so
    a cycle that fails does not cost the minute's others."""
    if not isinstance(request, Tick) or request.queued or settings.tick_s >= 60:
        return
    if w.queue_ticks is None:
        logger.warning("TICK_S is below 60 but TICK_QUEUE_URL is not set: one cycle a minute")
        return
    try:
        w.queue_ticks(request.event_id, settings.tick_s)
    except Exception:  # a lost tick costs only itself; the cycle goes on
        logger.exception("queueing the minute's later ticks failed")
        metrics.add_metric(name="TickQueueErrors", unit=MetricUnit.Count, value=1)


def _notify(report: Report, settings: Settings, w: Wiring) -> None:
    """Tell the operators what changed: launches, drains, terminations, failures, a capped hold."""
    message = notice(report.cycle, settings, w.clock()) if report.cycle is not None else None
    if w.notify is None or message is None or settings.dry_run:
        return
    try:
        w.notify(*message)
    except Exception:  # a notification is never worth failing or retrying a cycle that acted
        logger.exception("notification failed")
        metrics.add_metric(name="NotificationErrors", unit=MetricUnit.Count, value=1)


def _once(request: Request, settings: Settings, context: LambdaContext) -> dict[str, Any]:
    """A manual or alarm event is answered once per event id: delivered again after it succeeded, it
    gets the first answer back. After a failure Powertools forgets the event and the retry runs; the
    intent's record in the state (service.run_cycle) then keeps it from being applied twice."""
    from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig, idempotent_function

    config = IdempotencyConfig(event_key_jmespath="event_id", expires_after_seconds=INTENT_MEMORY_S)
    config.register_lambda_context(context)

    @idempotent_function(data_keyword_argument="data", persistence_store=wiring(settings).idempotency, config=config)
    def apply(data: dict[str, str]) -> dict[str, Any]:
        return _serve(request, settings)

    return apply(data={"event_id": request.event_id})


def _record(report: Report, settings: Settings) -> None:
    """One structured line per decision, and the cycle's metrics."""
    if report.status == "lease_taken":
        metrics.add_metric(name="LeaseContention", unit=MetricUnit.Count, value=1)
        logger.info(report.detail)
        return
    if report.cycle is None:
        logger.info(report.detail)
        return
    cycle = report.cycle
    decision, outcome, snapshot = cycle.decision, cycle.outcome, cycle.snapshot
    alive = [i for i in snapshot.instances if i.alive]
    ready = sum(1 for n in snapshot.nodes if n.ready and not n.control_plane)
    pending = len(snapshot.unschedulable())
    desired = len(alive) + len(decision.starts) + decision.launch_count - len(decision.remove)
    for name, value in (
        ("DesiredWorkers", desired),
        ("RunningWorkers", len(alive)),
        ("ReadyWorkers", ready),
        ("PendingPods", pending),
        ("Launches", len(outcome.launched)),
        ("LaunchFailures", len(outcome.launch_failures) if decision.launches and not outcome.launched else 0),
        ("Terminations", len(outcome.terminated)),
        ("WarmStarts", len(outcome.started)),
        ("WarmStops", len(outcome.stopped)),
        ("StoppedWorkers", sum(1 for i in snapshot.instances if i.warm)),
        ("EvictionsBlocked", outcome.eviction_blocked),
        ("DrainsTimedOut", len(outcome.drains_timed_out)),
    ):
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
    for code in dict.fromkeys(decision.codes):
        metrics.add_metric(name=f"Reason_{code}", unit=MetricUnit.Count, value=1)
    cost = hourly_cost(snapshot.instances, settings.tick_s)
    metrics.add_metric(name="FleetDollarsPerHour", unit=MetricUnit.NoUnit, value=round(cost.total, 4))
    logger.info(
        "decision",
        extra={
            "action": decision.action.value,
            "dry_run": settings.dry_run,
            "launches": dict(decision.launches),
            "remove": list(decision.remove),
            "terminate_unjoined": list(decision.terminate_unjoined),
            "starts": list(decision.starts),
            "warm": list(decision.warm),
            "retire": list(decision.retire),
            "uncordon": list(decision.uncordon),
            "interrupted": dict(decision.interrupted),
            "reasons": [{"code": r.code.value, "detail": r.detail} for r in decision.reasons],
            "workers": len(alive),
            "ready": ready,
            "pending_pods": pending,
            "metrics_known": snapshot.metrics.known,
            "outcome": asdict(outcome),
            "gate": None if cycle.gate is None else {"blocked": cycle.gate.blocked, "unknown": cycle.gate.unknown},
            "dollars_per_hour": {
                "total": round(cost.total, 4),
                "workers": round(cost.workers, 4),
                "volumes": round(cost.volumes, 4),
                "autoscaler": round(cost.autoscaler, 4),
                "unpriced_types": list(cost.unpriced),
            },
        },
    )


def _answer(report: Report) -> dict[str, Any]:
    if report.cycle is None:
        return {"status": report.status, "detail": report.detail}
    decision = report.cycle.decision
    return {
        "status": report.status,
        "action": decision.action.value,
        "launches": dict(decision.launches),
        "starts": list(decision.starts),
        "remove": list(decision.remove),
        "reasons": [{"code": r.code.value, "detail": r.detail} for r in decision.reasons],
    }
