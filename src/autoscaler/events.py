"""What can invoke the autoscaler, parsed and validated into typed requests.

1. The schedule tick (an EventBridge rule or EventBridge Scheduler "Scheduled Event"), and the
   later ticks of its minute that it queued (TICK_S below 60): SQS records from the tick queue.
2. A CloudWatch alarm state change, delivered by an EventBridge rule. Only the ALARM state acts,
   with the action ALARM_ACTIONS maps the alarm's name to; an unmapped alarm runs a cycle now.
3. A manual action: an EventBridge event with source `node-fleet.manual`, or a direct invoke,
   whose detail is `{"action": "scale_up"|"scale_down", "count": N}`, `{"action": "set",
   "desired": N}`, `{"action": "pause"}` or `{"action": "resume"}`, with an optional `reason`.
4. EC2's "EC2 Spot Instance Interruption Warning" (two minutes before EC2 takes a spot instance back)
   and "EC2 Instance Rebalance Recommendation" (the instance is at elevated risk of one), delivered
   by an EventBridge rule for every instance of the account and region: whose they are is decided later.

Anything else is an InvalidEvent whose message names the field and what was expected.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aws_lambda_powertools.utilities.data_classes import EventBridgeEvent

from autoscaler.config import ConfigError
from autoscaler.model import Intent, IntentKind

MANUAL_SOURCE = "node-fleet.manual"
ALARM_SOURCE = "aws.cloudwatch"
ALARM_DETAIL_TYPE = "CloudWatch Alarm State Change"
SCHEDULE_SOURCES = ("aws.events", "aws.scheduler")
EC2_SOURCE = "aws.ec2"
SPOT_WARNING_DETAIL_TYPE = "EC2 Spot Instance Interruption Warning"
REBALANCE_DETAIL_TYPE = "EC2 Instance Rebalance Recommendation"
SPOT_ACTIONS = ("terminate", "stop", "hibernate")
_INSTANCE_ID = re.compile(r"^i-(?:[0-9a-f]{8}|[0-9a-f]{17})$")
MAX_COUNT = 1000
MAX_REASON = 256


class InvalidEvent(ValueError):
    """The event is not one the autoscaler accepts; retrying it cannot help."""


@dataclass(frozen=True, slots=True)
class Tick:
    event_id: str
    queued: bool = False
    """One of the minute's later ticks, off the tick queue: it queues none of its own."""


@dataclass(frozen=True, slots=True)
class AlarmChange:
    event_id: str
    alarm_name: str
    state: str
    intent: Intent | None
    """The configured action, for an alarm in ALARM that ALARM_ACTIONS maps; else None."""


@dataclass(frozen=True, slots=True)
class Manual:
    event_id: str
    intent: Intent


@dataclass(frozen=True, slots=True)
class SpotInterruption:
    """EC2 takes `instance_id` back two minutes after `warned_at` (epoch seconds, the event's time)."""

    event_id: str
    instance_id: str
    action: str
    """What EC2 will do to it: terminate, stop or hibernate (the request's interruption behaviour)."""
    warned_at: float


@dataclass(frozen=True, slots=True)
class RebalanceRecommendation:
    event_id: str
    instance_id: str


Request = Tick | AlarmChange | Manual | SpotInterruption | RebalanceRecommendation


def parse(event: Any, alarm_actions: Mapping[str, Intent], fallback_id: str) -> Request:
    """`fallback_id` (the Lambda request id) names a direct invoke that carries no `id`."""
    if not isinstance(event, Mapping):
        raise InvalidEvent(f"event: expected a JSON object, got {type(event).__name__}")
    if "Records" in event:
        return _queued_tick(event)
    if "source" not in event:
        if "action" in event:
            event_id = _text(event, "id", "id", required=False) or fallback_id
            return Manual(event_id, _intent(event, "", f"direct invoke {event_id}"))
        raise InvalidEvent("source: expected an EventBridge event (with source) or a manual action (with action)")

    eb = EventBridgeEvent(dict(event))
    source = _text(event, "source", "source")
    detail_type = _text(event, "detail-type", "detail-type")
    event_id = _text(event, "id", "id")
    detail = event.get("detail", {})
    if not isinstance(detail, Mapping):
        raise InvalidEvent(f"detail: expected a JSON object, got {type(detail).__name__}")

    if source in SCHEDULE_SOURCES and detail_type == "Scheduled Event":
        return Tick(event_id)
    if source == ALARM_SOURCE and detail_type == ALARM_DETAIL_TYPE:
        name = _text(detail, "alarmName", "detail.alarmName")
        state = _text(detail.get("state") or {}, "value", "detail.state.value")
        template = alarm_actions.get(name) if state == "ALARM" else None
        intent = Intent(template.kind, template.count, f"alarm {name}") if template else None
        return AlarmChange(event_id, name, state, intent)
    if source == MANUAL_SOURCE:
        return Manual(event_id, _intent(detail, "detail.", f"manual event {eb.get_id}"))
    if source == EC2_SOURCE and detail_type == SPOT_WARNING_DETAIL_TYPE:
        action = detail.get("instance-action")
        if action not in SPOT_ACTIONS:
            raise InvalidEvent(f"detail.instance-action: expected one of {', '.join(SPOT_ACTIONS)}, got {action!r}")
        return SpotInterruption(event_id, _instance_id(detail), action, _time(event))
    if source == EC2_SOURCE and detail_type == REBALANCE_DETAIL_TYPE:
        return RebalanceRecommendation(event_id, _instance_id(detail))
    raise InvalidEvent(
        f"source/detail-type: expected a schedule tick, a CloudWatch alarm state change, an EC2 spot "
        f"interruption warning or rebalance recommendation, or source {MANUAL_SOURCE!r}, got {source!r}/{detail_type!r}"
    )


def _instance_id(detail: Mapping[str, Any]) -> str:
    value = detail.get("instance-id")
    if not isinstance(value, str) or not _INSTANCE_ID.match(value):
        raise InvalidEvent(
            f"detail.instance-id: expected an EC2 instance id (i- and 8 or 17 hex digits), got {value!r}"
        )
    return value


def _time(event: Mapping[str, Any]) -> float:
    """The event's `time` (ISO 8601 UTC, as EventBridge writes it) in epoch seconds."""
    raw = _text(event, "time", "time")
    try:
        stamp = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        stamp = None
    if stamp is None or stamp.tzinfo is None:
        raise InvalidEvent(f"time: expected an ISO 8601 UTC time like 2026-12-04T15:00:00Z, got {raw!r}")
    return stamp.timestamp()


def _queued_tick(event: Mapping[str, Any]) -> Tick:
    """SQS records of the tick queue; a batch is one cycle, named by its first message."""
    from aws_lambda_powertools.utilities.data_classes import SQSEvent

    records = event["Records"]
    if not isinstance(records, list) or not records or not all(isinstance(r, Mapping) for r in records):
        raise InvalidEvent("Records: expected a non-empty list of SQS records")
    for i, record in enumerate(SQSEvent(dict(event)).records):
        if record.get("eventSource") != "aws:sqs":
            raise InvalidEvent(f"Records[{i}].eventSource: expected 'aws:sqs', got {record.get('eventSource')!r}")
        try:
            body = json.loads(record.get("body") or "")
        except (TypeError, ValueError):
            body = None
        if not isinstance(body, Mapping) or not isinstance(body.get("tick"), str):
            raise InvalidEvent(f'Records[{i}].body: expected a tick, {{"tick": "<schedule event id>"}}')
    return Tick(_text(records[0], "messageId", "Records[0].messageId"), queued=True)


_FIELDS = {
    IntentKind.SCALE_UP: "count",
    IntentKind.SCALE_DOWN: "count",
    IntentKind.SET: "desired",
    IntentKind.PAUSE: None,
    IntentKind.RESUME: None,
}


def _intent(body: Mapping[str, Any], prefix: str, source: str) -> Intent:
    raw = body.get("action")
    try:
        kind = IntentKind(raw)
    except ValueError:
        raise InvalidEvent(f"{prefix}action: expected one of {', '.join(_FIELDS)}, got {raw!r}") from None
    number_field = _FIELDS[kind]
    allowed = {"action", "reason", "id", *([number_field] if number_field else [])}
    extra = sorted(set(body) - allowed)
    if extra:
        raise InvalidEvent(
            f"{prefix}{extra[0]}: not a field of a {kind} action (allowed: {', '.join(sorted(allowed))})"
        )
    count = 0
    if number_field:
        low = 0 if kind is IntentKind.SET else 1
        count = body.get(number_field)
        if isinstance(count, bool) or not isinstance(count, int) or not low <= count <= MAX_COUNT:
            raise InvalidEvent(f"{prefix}{number_field}: expected an integer from {low} to {MAX_COUNT}, got {count!r}")
    reason = _text(body, "reason", f"{prefix}reason", required=False)
    if reason is not None and len(reason) > MAX_REASON:
        raise InvalidEvent(f"{prefix}reason: expected at most {MAX_REASON} characters, got {len(reason)}")
    return Intent(kind, count, f"{source}: {reason}" if reason else source)


def _text(body: Mapping[str, Any], key: str, name: str, required: bool = True) -> str | None:
    value = body.get(key) if isinstance(body, Mapping) else None
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        raise InvalidEvent(f"{name}: expected a non-empty string, got {value!r}")
    return value


def parse_alarm_actions(raw: str | None) -> dict[str, Intent]:
    """ALARM_ACTIONS: a JSON object mapping an alarm name to {"action": "scale_up", "count": N}."""
    if not raw:
        return {}
    try:
        table = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"ALARM_ACTIONS is not valid JSON: {exc.msg} at position {exc.pos}") from None
    if not isinstance(table, dict):
        raise ConfigError("ALARM_ACTIONS must be a JSON object mapping alarm names to actions")
    actions = {}
    for name, body in table.items():
        if not isinstance(body, dict):
            raise ConfigError(f'ALARM_ACTIONS[{name!r}] must be an object like {{"action": "scale_up", "count": 2}}')
        try:
            actions[name] = _intent(body, f"ALARM_ACTIONS[{name!r}].", f"alarm {name}")
        except InvalidEvent as exc:
            raise ConfigError(str(exc)) from None
        if actions[name].kind in (IntentKind.PAUSE, IntentKind.RESUME):
            raise ConfigError(f"ALARM_ACTIONS[{name!r}].action: an alarm may scale, not {actions[name].kind}")
    return actions
