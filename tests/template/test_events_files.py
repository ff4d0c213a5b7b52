"""events/: each file is what AWS delivers, and each would reach its function through the template's rules.

Files named gitops_* are for GitopsHookFunction, the others for AutoscalerFunction.
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from template_helpers import EVENTS, ROOT

EVENT_FILES = sorted(EVENTS.glob("*.json"))
EVENTBRIDGE_KEYS = {"version", "id", "detail-type", "source", "account", "time", "region", "resources", "detail"}
MANUAL_ACTIONS = {"scale_up", "scale_down", "set", "pause", "resume"}
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
ISO_SECONDS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")

# file -> (source, detail-type) for EventBridge events; None for the Function URL request and "sqs"
# for the tick queue's records.
EXPECTED = {
    "schedule_tick.json": ("aws.events", "Scheduled Event"),
    "alarm_state_alarm.json": ("aws.cloudwatch", "CloudWatch Alarm State Change"),
    "alarm_state_ok.json": ("aws.cloudwatch", "CloudWatch Alarm State Change"),
    "manual_scale_up.json": ("node-fleet.manual", "node-fleet manual action"),
    "manual_scale_down.json": ("node-fleet.manual", "node-fleet manual action"),
    "manual_set.json": ("node-fleet.manual", "node-fleet manual action"),
    "manual_pause.json": ("node-fleet.manual", "node-fleet manual action"),
    "manual_resume.json": ("node-fleet.manual", "node-fleet manual action"),
    "manual_invalid_count.json": ("node-fleet.manual", "node-fleet manual action"),
    "gitops_schedule_tick.json": ("aws.events", "Scheduled Event"),
    "gitops_webhook_progressing.json": None,
    "queued_tick.json": "sqs",
    "spot_interruption_warning.json": ("aws.ec2", "EC2 Spot Instance Interruption Warning"),
    "rebalance_recommendation.json": ("aws.ec2", "EC2 Instance Rebalance Recommendation"),
}


def load(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / name).read_text())


def stack_name() -> str:
    return tomllib.loads((ROOT / "samconfig.toml").read_text())["default"]["global"]["parameters"]["stack_name"]


def matches(pattern: Any, value: Any, stack: str) -> bool:
    """EventBridge pattern matching, as far as the template's rules use it (values, prefix, nesting)."""
    if isinstance(pattern, dict):
        return isinstance(value, dict) and all(k in value and matches(p, value[k], stack) for k, p in pattern.items())
    candidates = value if isinstance(value, list) else [value]
    for option in pattern:
        for candidate in candidates:
            if isinstance(option, dict) and "prefix" in option:
                prefix = option["prefix"]
                if isinstance(prefix, dict):  # !Sub "${AWS::StackName}-..."
                    prefix = prefix["Fn::Sub"].replace("${AWS::StackName}", stack)
                if isinstance(candidate, str) and candidate.startswith(prefix):
                    return True
            elif option == candidate:
                return True
    return False


def test_every_file_is_known():
    assert {p.name for p in EVENT_FILES} == set(EXPECTED)


@pytest.mark.parametrize("path", EVENT_FILES, ids=lambda p: p.name)
def test_each_event_is_what_aws_sends(path: Path):
    event = json.loads(path.read_text())
    expected = EXPECTED[path.name]
    if expected is None:
        assert event["version"] == "2.0" and event["routeKey"] == "$default"
        return
    if expected == "sqs":
        (record,) = event["Records"]
        assert record["eventSource"] == "aws:sqs" and UUID.match(record["messageId"])
        assert ":sqs:" in record["eventSourceARN"] and "TickQueue" in record["eventSourceARN"]
        return
    assert set(event) == EVENTBRIDGE_KEYS, f"{path.name}: EventBridge events have exactly {sorted(EVENTBRIDGE_KEYS)}"
    assert (event["source"], event["detail-type"]) == expected
    assert event["version"] == "0"
    assert UUID.match(event["id"]), "EventBridge ids are UUIDs (manual events are idempotent by id)"
    assert ISO_SECONDS.match(event["time"])
    assert re.fullmatch(r"\d{12}", event["account"])
    assert isinstance(event["detail"], dict) and isinstance(event["resources"], list)


def test_event_ids_are_unique():
    ids = [json.loads(p.read_text()).get("id") for p in EVENT_FILES]
    ids = [i for i in ids if i]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize(
    "name", [n for n, e in EXPECTED.items() if isinstance(e, tuple) and not n.startswith("gitops_")]
)
def test_autoscaler_events_match_its_rules(template, name):
    events = template["Resources"]["AutoscalerFunction"]["Properties"]["Events"]
    event = load(name)
    if event["detail-type"] == "Scheduled Event":
        assert event["detail"] == {}
        assert ":rule/" in event["resources"][0]
        return
    patterns = [e["Properties"]["Pattern"] for e in events.values() if e["Type"] == "EventBridgeRule"]
    assert any(matches(p, event, stack_name()) for p in patterns), f"{name} matches none of {patterns}"


def test_alarm_events():
    alarm, ok = load("alarm_state_alarm.json"), load("alarm_state_ok.json")
    assert alarm["detail"]["state"]["value"] == "ALARM" and alarm["detail"]["previousState"]["value"] == "OK"
    assert ok["detail"]["state"]["value"] == "OK" and ok["detail"]["previousState"]["value"] == "ALARM"
    for event in (alarm, ok):
        name = event["detail"]["alarmName"]
        assert event["resources"] == [f"arn:aws:cloudwatch:{event['region']}:{event['account']}:alarm:{name}"]
        json.loads(event["detail"]["state"]["reasonData"])
        assert event["detail"]["configuration"]["metrics"]


def test_alarm_event_names_a_configured_alarm(template):
    actions = json.loads(template["Parameters"]["AlarmActions"]["Default"])
    assert load("alarm_state_alarm.json")["detail"]["alarmName"] in actions


def test_manual_events():
    details = {name: load(name)["detail"] for name in EXPECTED if name.startswith("manual_")}
    assert details["manual_scale_up.json"] == {"action": "scale_up", "count": 2}
    assert details["manual_scale_down.json"] == {"action": "scale_down", "count": 1}
    assert details["manual_set.json"] == {"action": "set", "desired": 4}
    assert details["manual_pause.json"]["action"] == "pause" and details["manual_pause.json"]["reason"]
    assert details["manual_resume.json"] == {"action": "resume"}
    invalid = details["manual_invalid_count.json"]
    assert invalid["action"] in MANUAL_ACTIONS and invalid["count"] < 0


def test_spot_events_are_in_ec2s_documented_shape():
    """EC2's own samples: detail holds the instance id (and for a warning, what EC2 will do to it),
    resources its ARN."""
    warning, rebalance = load("spot_interruption_warning.json"), load("rebalance_recommendation.json")
    assert set(warning["detail"]) == {"instance-id", "instance-action"}
    assert warning["detail"]["instance-action"] in ("terminate", "stop", "hibernate")
    assert set(rebalance["detail"]) == {"instance-id"}
    for event in (warning, rebalance):
        instance_id = event["detail"]["instance-id"]
        assert re.fullmatch(r"i-[0-9a-f]{17}", instance_id)
        assert event["resources"] == [f"arn:aws:ec2:{event['region']}:{event['account']}:instance/{instance_id}"]


def test_gitops_tick_names_the_hook_rule():
    event = load("gitops_schedule_tick.json")
    assert event["detail"] == {} and "GitopsHookFunctionTick" in event["resources"][0]


def test_webhook_request_is_a_function_url_request_carrying_a_flux_event():
    request = load("gitops_webhook_progressing.json")
    assert request["requestContext"]["http"]["method"] == "POST"
    assert request["isBase64Encoded"] is False
    headers = request["headers"]
    assert all(k == k.lower() for k in headers), "function URLs lower-case header names"
    assert headers["content-type"] == "application/json"
    assert re.fullmatch(r"sha256=[0-9a-f]{64}", headers["x-signature"]), "placeholder signature, re-signed by tests"
    assert int(headers["content-length"]) == len(request["body"].encode())
    flux = json.loads(request["body"])
    assert flux["reason"] == "Progressing" and flux["severity"] == "info"
    assert flux["involvedObject"]["kind"] == "Kustomization"
    assert flux["involvedObject"]["apiVersion"] == "kustomize.toolkit.fluxcd.io/v1"
    assert flux["reportingController"] == "kustomize-controller"
    assert ISO_SECONDS.match(flux["timestamp"])
