"""Events, fuzzed: `parse` returns a valid request or raises InvalidEvent; the Lambda handler answers
"rejected" to what parse rejects and touches no port (the unit tests' fakes, every call recorded,
and the real idempotency layer on moto's DynamoDB). Profiles and shared strategies: fuzzing.py.
"""

from __future__ import annotations

import copy
import json
import math
import os
import re
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer
from fuzzing import (
    ALARM,
    ALARM_ACTIONS,
    ALARM_ACTIONS_ENV,
    EVENT_DOCS,
    EVENT_FILES,
    EVENT_JSON,
    EVENT_KEYS,
    EVENT_WORDS,
    FALLBACK_ID,
    NOW,
    clear_settings_env,
    fuzz,
    mutations,
    note_outcome,
)
from hypothesis import given
from hypothesis import strategies as st
from moto import mock_aws

from autoscaler import handler
from autoscaler.events import (
    SPOT_ACTIONS,
    AlarmChange,
    InvalidEvent,
    Manual,
    RebalanceRecommendation,
    SpotInterruption,
    Tick,
    parse,
)
from autoscaler.model import IntentKind, MetricsView
from autoscaler.ports import GateAnswer, Ports
from autoscaler.service import Wiring
from aws_table import create_state_table
from builders import pod, worker
from fakes import FakeCluster, FakeFleet, FakeMetrics, MemoryLease, Recorded
from lambda_context import LambdaContext
from node_fleet.sim.ports import MemoryStateStore

# Powertools warns when an invocation ends with no metric (a rejected webhook request adds none).
pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish:UserWarning")


@st.composite
def manual_bodies(draw: st.DrawFn) -> dict[str, Any]:
    """Manual actions near the valid ones: right fields with wrong values, wrong fields, edge counts."""
    body: dict[str, Any] = {"action": draw(st.sampled_from(EVENT_WORDS[11:]) | EVENT_JSON)}
    number = st.integers(min_value=-3, max_value=1003) | st.sampled_from((True, 2.0, "2", None, 10**30)) | EVENT_JSON
    for name in ("count", "desired", "reason", "id", "extra"):
        if draw(st.booleans()):
            if name == "reason":
                body[name] = draw(st.text(max_size=300) | EVENT_JSON)
            elif name == "id":
                body[name] = draw(st.sampled_from(("evt-1", "", "  ")) | EVENT_JSON)
            else:
                body[name] = draw(number)
    return body


@st.composite
def envelopes(draw: st.DrawFn) -> dict[str, Any]:
    """EventBridge envelopes with sources, detail types and details near the ones that act."""
    event: dict[str, Any] = {}
    for name, values in (
        ("source", st.sampled_from(EVENT_WORDS[:4])),
        ("detail-type", st.sampled_from(EVENT_WORDS[4:6])),
        ("id", st.sampled_from(("c4c1c1c9-6542", "", " "))),
    ):
        if draw(st.integers(min_value=0, max_value=5)):
            event[name] = draw(values | EVENT_JSON)
    choice = draw(st.integers(min_value=0, max_value=3))
    if choice == 0:
        event["detail"] = draw(manual_bodies())
    elif choice == 1:
        state = draw(st.sampled_from(({"value": "ALARM"}, {"value": "OK"}, {})) | EVENT_JSON)
        event["detail"] = {"alarmName": draw(st.sampled_from((ALARM, "other", "")) | EVENT_JSON), "state": state}
    elif choice == 2:
        event["detail"] = draw(EVENT_JSON)
    return event


ANY_EVENT = (
    EVENT_JSON
    | mutations(EVENT_DOCS, EVENT_JSON, EVENT_KEYS)
    | manual_bodies()
    | envelopes()
    | st.sampled_from(EVENT_DOCS)
)


def parse_or_reject(event: Any) -> Tick | AlarmChange | Manual | SpotInterruption | RebalanceRecommendation | None:
    """The parsed request (checked to be valid), or None when parse rejected the event."""
    try:
        request = parse(event, ALARM_ACTIONS, FALLBACK_ID)
    except InvalidEvent as exc:
        assert str(exc), "an InvalidEvent must say what is wrong"
        return None
    assert isinstance(request, Tick | AlarmChange | Manual | SpotInterruption | RebalanceRecommendation), request
    if isinstance(request, SpotInterruption | RebalanceRecommendation):
        assert re.fullmatch(r"i-([0-9a-f]{8}|[0-9a-f]{17})", request.instance_id), request
    if isinstance(request, SpotInterruption):
        assert request.action in SPOT_ACTIONS and math.isfinite(request.warned_at), request
    assert isinstance(request.event_id, str) and request.event_id.strip(), request
    if isinstance(request, AlarmChange):
        assert isinstance(request.alarm_name, str) and request.alarm_name.strip()
        assert isinstance(request.state, str) and request.state.strip()
        if request.intent is not None:
            assert request.state == "ALARM" and request.alarm_name in ALARM_ACTIONS, request
    if isinstance(request, Manual):
        intent = request.intent
        assert intent.kind in IntentKind
        assert type(intent.count) is int, intent
        if intent.kind in (IntentKind.SCALE_UP, IntentKind.SCALE_DOWN):
            assert 1 <= intent.count <= 1000, intent
        elif intent.kind is IntentKind.SET:
            assert 0 <= intent.count <= 1000, intent
        else:
            assert intent.count == 0, intent
    return request


@fuzz(1000)
@given(event=EVENT_JSON)
def test_parse_random_json_gives_a_valid_request_or_invalid_event(event):
    parse_or_reject(event)


@fuzz(1000)
@given(event=mutations(EVENT_DOCS, EVENT_JSON, EVENT_KEYS) | manual_bodies() | envelopes())
def test_parse_mutated_events_gives_a_valid_request_or_invalid_event(event):
    parse_or_reject(event)


def test_every_sample_event_still_parses_as_its_file_says():
    outcomes = {p.name: parse_or_reject(doc) for p, doc in zip(EVENT_FILES, EVENT_DOCS, strict=True)}
    gitops = {"gitops_webhook_progressing.json"}  # the hook's Function URL request, not the autoscaler's
    rejected = {name for name, request in outcomes.items() if request is None}
    assert rejected == {"manual_invalid_count.json", *gitops}, outcomes


# --------------------------------------------------------------------------------------------------
# The autoscaler's Lambda handler


@pytest.fixture(scope="module")
def lambda_env():
    """The autoscaler's environment and moto's DynamoDB (with the state table from template.yaml) for
    the whole module; each example wires fresh recording fakes."""
    saved = dict(os.environ)
    clear_settings_env()
    os.environ.update(
        {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "eu-west-1",
            "CLUSTER_NAME": "fuzz",
            "ALARM_ACTIONS": ALARM_ACTIONS_ENV,
        }
    )
    saved_wiring = handler._wiring
    with mock_aws():
        table = create_state_table(boto3.client("dynamodb"))
        idempotency = DynamoDBPersistenceLayer(
            table_name=table, key_attr="pk", sort_key_attr="sk", expiry_attr="expires_at"
        )
        yield idempotency
    handler._wiring = saved_wiring
    os.environ.clear()
    os.environ.update(saved)


def wire(idempotency) -> tuple[Wiring, list[tuple], list]:
    """The handler's wiring over the unit tests' fakes (three workers, one pod), every port call
    recorded in `calls`."""
    calls: list[tuple] = []
    notes: list = []
    workers = [worker(i) for i in range(3)]
    view = MetricsView(cluster_cpu=0.4, node_cpu={"n0": 0.3, "n1": 0.1, "n2": 0.1})
    ports = Ports(
        Recorded("fleet", FakeFleet([i for i, _ in workers]), calls),
        Recorded("cluster", FakeCluster([n for _, n in workers], [pod("web-0", "n0")]), calls),
        Recorded("metrics", FakeMetrics(view), calls),
        Recorded("state", MemoryStateStore(), calls),
    )

    def gate(now):
        calls.append(("gate", now))
        return GateAnswer(False)

    w = Wiring(
        ports,
        Recorded("lease", MemoryLease(), calls),
        gate=gate,
        idempotency=idempotency,
        notify=lambda subject, message: notes.append((subject, message)),
        sleep=lambda s: calls.append(("sleep", s)),
        clock=lambda: NOW,
    )
    handler._wiring = w
    return w, calls, notes


@fuzz(1000)
@given(event=ANY_EVENT)
def test_the_handler_rejects_what_parse_rejects_and_touches_nothing(lambda_env, event):
    _, calls, notes = wire(lambda_env)
    expected = parse_or_reject(event)
    answer = handler.lambda_handler(copy.deepcopy(event), LambdaContext())
    note_outcome(f"{type(expected).__name__}: {answer['status']}")
    if expected is None:
        assert answer["status"] == "rejected" and answer["error"], answer
        assert calls == [] and notes == [], f"acted on an invalid event: {calls}"
    else:
        assert answer["status"] in ("acted", "ignored", "noted", "lease_taken"), answer
        json.dumps(answer)
