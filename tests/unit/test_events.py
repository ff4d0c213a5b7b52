"""Every event kind, valid and invalid: a clear error names the field; nothing else happens."""

from __future__ import annotations

import re

import pytest

from autoscaler.config import ConfigError
from autoscaler.events import (
    AlarmChange,
    InvalidEvent,
    Manual,
    RebalanceRecommendation,
    SpotInterruption,
    Tick,
    parse,
    parse_alarm_actions,
)
from autoscaler.model import Intent, IntentKind

ACTIONS = {"node-fleet-high-cpu": Intent(IntentKind.SCALE_UP, 2, "alarm node-fleet-high-cpu")}


def eventbridge(source, detail_type, detail=None, event_id="7bf73129-1428-4cd3-a780-95db273d1602"):
    return {
        "version": "0",
        "id": event_id,
        "detail-type": detail_type,
        "source": source,
        "account": "123456789012",
        "time": "2026-11-26T23:00:00Z",
        "region": "eu-west-1",
        "resources": [],
        "detail": detail if detail is not None else {},
    }


def alarm(name, state):
    return eventbridge(
        "aws.cloudwatch",
        "CloudWatch Alarm State Change",
        {"alarmName": name, "state": {"value": state, "reason": "Threshold Crossed"}, "previousState": {"value": "OK"}},
    )


def manual(detail):
    return eventbridge("node-fleet.manual", "node-fleet manual action", detail)


def sqs(*bodies: str) -> dict:
    """What the tick queue's event source mapping delivers: SQS records."""
    return {
        "Records": [
            {"messageId": f"m-{i}", "body": body, "eventSource": "aws:sqs", "receiptHandle": "r"}
            for i, body in enumerate(bodies)
        ]
    }


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        pytest.param(
            eventbridge("aws.events", "Scheduled Event"), Tick("7bf73129-1428-4cd3-a780-95db273d1602"), id="rule tick"
        ),
        pytest.param(
            eventbridge("aws.scheduler", "Scheduled Event"),
            Tick("7bf73129-1428-4cd3-a780-95db273d1602"),
            id="scheduler tick",
        ),
        pytest.param(
            alarm("node-fleet-high-cpu", "ALARM"),
            AlarmChange(
                "7bf73129-1428-4cd3-a780-95db273d1602", "node-fleet-high-cpu", "ALARM", ACTIONS["node-fleet-high-cpu"]
            ),
            id="mapped alarm in ALARM carries its action",
        ),
        pytest.param(
            alarm("node-fleet-high-cpu", "OK"),
            AlarmChange("7bf73129-1428-4cd3-a780-95db273d1602", "node-fleet-high-cpu", "OK", None),
            id="alarm back to OK carries no action",
        ),
        pytest.param(
            alarm("node-fleet-pending", "ALARM"),
            AlarmChange("7bf73129-1428-4cd3-a780-95db273d1602", "node-fleet-pending", "ALARM", None),
            id="unmapped alarm just runs a cycle",
        ),
        pytest.param(
            manual({"action": "scale_up", "count": 2, "reason": "sale at noon"}),
            Manual(
                "7bf73129-1428-4cd3-a780-95db273d1602",
                Intent(IntentKind.SCALE_UP, 2, "manual event 7bf73129-1428-4cd3-a780-95db273d1602: sale at noon"),
            ),
            id="manual scale_up",
        ),
        pytest.param(
            manual({"action": "set", "desired": 0}),
            Manual(
                "7bf73129-1428-4cd3-a780-95db273d1602",
                Intent(IntentKind.SET, 0, "manual event 7bf73129-1428-4cd3-a780-95db273d1602"),
            ),
            id="manual set to zero (clamped to min later)",
        ),
        pytest.param(
            {"action": "pause", "reason": "maintenance"},
            Manual("req-1", Intent(IntentKind.PAUSE, 0, "direct invoke req-1: maintenance")),
            id="direct invoke without id uses the request id",
        ),
        pytest.param(
            {"id": "op-42", "action": "scale_down", "count": 1},
            Manual("op-42", Intent(IntentKind.SCALE_DOWN, 1, "direct invoke op-42")),
            id="direct invoke with its own id",
        ),
        pytest.param(
            sqs('{"tick": "t-1"}', '{"tick": "t-1"}'),
            Tick("m-0", queued=True),
            id="queued ticks: one cycle for the batch, named by its first message",
        ),
    ],
)
def test_valid_events(event, expected):
    assert parse(event, ACTIONS, "req-1") == expected


@pytest.mark.parametrize(
    ("event", "message"),
    [
        pytest.param([], "event: expected a JSON object, got list", id="not an object"),
        pytest.param({}, "source: expected an EventBridge event", id="empty"),
        pytest.param(
            eventbridge("aws.ec2", "EC2 Instance State-change Notification"),
            "source/detail-type: expected",
            id="unknown source",
        ),
        pytest.param(
            {**eventbridge("aws.events", "Scheduled Event"), "id": ""}, "id: expected a non-empty string", id="empty id"
        ),
        pytest.param(
            manual({"action": "scale_up", "count": -3}),
            "detail.count: expected an integer from 1 to 1000, got -3",
            id="negative count",
        ),
        pytest.param(
            manual({"action": "scale_up", "count": "2"}), "detail.count: expected an integer", id="count as text"
        ),
        pytest.param(
            manual({"action": "scale_up", "count": True}), "detail.count: expected an integer", id="count as bool"
        ),
        pytest.param(manual({"action": "scale_up"}), "detail.count: expected an integer", id="missing count"),
        pytest.param(
            manual({"action": "set", "desired": 5000}),
            "detail.desired: expected an integer from 0 to 1000",
            id="desired too big",
        ),
        pytest.param(
            manual({"action": "explode"}),
            "detail.action: expected one of scale_up, scale_down, set, pause, resume",
            id="unknown action",
        ),
        pytest.param(
            manual({"action": "pause", "count": 1}), "detail.count: not a field of a pause action", id="extra field"
        ),
        pytest.param(
            manual({"action": "pause", "reason": "x" * 300}),
            "detail.reason: expected at most 256 characters",
            id="reason too long",
        ),
        pytest.param(manual("scale_up"), "detail: expected a JSON object, got str", id="detail not an object"),
        pytest.param(alarm("", "ALARM"), "detail.alarmName: expected a non-empty string", id="alarm without a name"),
        pytest.param(
            {"action": "scale_up", "count": 0},
            "count: expected an integer from 1 to 1000, got 0",
            id="direct invoke, zero count",
        ),
        pytest.param({"Records": []}, "Records: expected a non-empty list of SQS records", id="no records"),
        pytest.param(
            {"Records": [{**sqs("{}")["Records"][0], "eventSource": "aws:sns"}]},
            "eventSource: expected 'aws:sqs', got 'aws:sns'",
            id="not from SQS",
        ),
        pytest.param(sqs('{"tick": "t-1"}', "hello"), "1..body: expected a tick", id="a body not a tick"),
    ],
)
def test_invalid_events_name_the_field(event, message):
    with pytest.raises(InvalidEvent, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse(event, ACTIONS, "req-1")


def test_alarm_actions_from_the_environment():
    parsed = parse_alarm_actions(
        '{"hot": {"action": "scale_up", "count": 3}, "cold": {"action": "scale_down", "count": 1}}'
    )
    assert parsed["hot"] == Intent(IntentKind.SCALE_UP, 3, "alarm hot")
    assert parsed["cold"].kind is IntentKind.SCALE_DOWN
    assert parse_alarm_actions("") == {}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        pytest.param("{nope", "ALARM_ACTIONS is not valid JSON", id="not json"),
        pytest.param("[]", "ALARM_ACTIONS must be a JSON object", id="not an object"),
        pytest.param('{"a": 3}', r"ALARM_ACTIONS\['a'\] must be an object", id="action not an object"),
        pytest.param(
            '{"a": {"action": "scale_up", "count": 0}}',
            r"ALARM_ACTIONS\['a'\]\.count: expected an integer",
            id="bad count",
        ),
        pytest.param('{"a": {"action": "pause"}}', "an alarm may scale, not pause", id="alarm may not pause"),
    ],
)
def test_bad_alarm_actions_name_the_variable(raw, message):
    with pytest.raises(ConfigError, match=message):
        parse_alarm_actions(raw)


def spot_warning(detail, time="2026-11-26T23:00:00Z"):
    return {**eventbridge("aws.ec2", "EC2 Spot Instance Interruption Warning", detail), "time": time}


def test_ec2s_spot_events_parse_into_their_requests():
    warning = parse(spot_warning({"instance-id": "i-0b22a22eec53b9321", "instance-action": "terminate"}), {}, "x")
    assert warning == SpotInterruption(
        "7bf73129-1428-4cd3-a780-95db273d1602", "i-0b22a22eec53b9321", "terminate", 1_795_734_000.0
    )
    rebalance = eventbridge("aws.ec2", "EC2 Instance Rebalance Recommendation", {"instance-id": "i-0123abcd"})
    assert parse(rebalance, {}, "x") == RebalanceRecommendation("7bf73129-1428-4cd3-a780-95db273d1602", "i-0123abcd")


@pytest.mark.parametrize(
    ("event", "message"),
    [
        pytest.param(
            spot_warning({"instance-action": "terminate"}),
            "detail.instance-id: expected an EC2 instance id (i- and 8 or 17 hex digits), got None",
            id="no instance id",
        ),
        pytest.param(
            spot_warning({"instance-id": "i-XYZ", "instance-action": "terminate"}),
            "detail.instance-id: expected an EC2 instance id (i- and 8 or 17 hex digits), got 'i-XYZ'",
            id="not an instance id",
        ),
        pytest.param(
            spot_warning({"instance-id": "i-0b22a22eec53b9321", "instance-action": "reboot"}),
            "detail.instance-action: expected one of terminate, stop, hibernate, got 'reboot'",
            id="unknown action",
        ),
        pytest.param(
            spot_warning({"instance-id": "i-0b22a22eec53b9321", "instance-action": "stop"}, time="yesterday"),
            "time: expected an ISO 8601 UTC time like 2026-12-04T15:00:00Z, got 'yesterday'",
            id="bad time",
        ),
        pytest.param(
            spot_warning({"instance-id": "i-0b22a22eec53b9321", "instance-action": "stop"}, time="2026-11-26T23:00:00"),
            "time: expected an ISO 8601 UTC time like 2026-12-04T15:00:00Z, got '2026-11-26T23:00:00'",
            id="time without its zone",
        ),
        pytest.param(
            eventbridge("aws.ec2", "EC2 Instance Rebalance Recommendation", {"instance-id": 7}),
            "detail.instance-id: expected an EC2 instance id (i- and 8 or 17 hex digits), got 7",
            id="rebalance without an id",
        ),
        pytest.param(
            eventbridge("aws.ec2", "EC2 Instance State-change Notification", {"instance-id": "i-0123abcd"}),
            "source/detail-type: expected a schedule tick",
            id="another EC2 event",
        ),
    ],
)
def test_malformed_spot_events_name_the_field(event, message):
    with pytest.raises(InvalidEvent, match=re.escape(message)):
        parse(event, {}, "x")
