"""Bad input, fuzzed with hypothesis: events, Flux objects, Prometheus answers, trace files, snapshots.

What every target must do with input it did not expect: never an unhandled exception, and never an
action on invalid input.

- Events: `parse` returns a valid request or raises InvalidEvent; the Lambda handler answers
  "rejected" to what parse rejects and touches no port (recording fakes, the real idempotency layer
  on moto's DynamoDB).
- Flux objects: `verdict` and `evaluate` never raise and a garbage object holds (only explicit
  evidence opens the gate); `gate_objects` raises ValueError only; the gate memory reads back or
  raises ValueError.
- The Flux webhook: only 202/400/401, and no write to the gate store without a valid signature.
- Prometheus answers (canned, through a requests transport adapter; no socket): `sample()` always
  returns a MetricsView and a number only where the answer held a well-formed fresh sample.
- Trace files: only TraceError escapes (ValueError for an unknown format), naming the file.
- The planner on random valid snapshots: within max_nodes and min_nodes, and never removes what
  it must not.

Default profile: about a thousand examples a target (well under 90 s on two cores). The `long`
profile runs ten times as many: `HYPOTHESIS_PROFILE=long pytest tests/reliability/test_fuzz.py`.

The shapes this fuzzing found breaking a target (since fixed) stay at the end as regression cases,
each with its minimal example.
"""

from __future__ import annotations

import base64
import copy
import csv
import dataclasses
import functools
import hashlib
import hmac
import io
import json
import logging
import math
import os
import re
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import boto3
import pytest
import requests
import urllib3
from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import event as hypothesis_event
from hypothesis import strategies as st
from moto import mock_aws
from requests.adapters import BaseAdapter

from autoscaler import handler
from autoscaler.adapters.prometheus import MARKER_LABEL, PrometheusMetrics, PrometheusOptions
from autoscaler.config import Settings
from autoscaler.events import AlarmChange, InvalidEvent, Manual, Tick, parse, parse_alarm_actions
from autoscaler.gitops.flux import CANARY_AT_REST, CANARY_FAILED, CANARY_PAUSED, State, supported, verdict
from autoscaler.gitops.gate import GateMemory, evaluate, gate_objects
from autoscaler.model import (
    DO_NOT_DISRUPT,
    SAFE_TO_EVICT,
    SCALE_DOWN_DISABLED_ANNOTATIONS,
    Action,
    ClusterSnapshot,
    Drain,
    Instance,
    InstanceState,
    Intent,
    IntentKind,
    Launch,
    MetricsView,
    Node,
    Pod,
    ScalingState,
)
from autoscaler.planner import LAUNCH_VISIBILITY_GRACE_S, plan
from autoscaler.ports import EvictionOutcome, LaunchResult, Ports
from autoscaler.service import Wiring
from aws_table import create_state_table
from gitops_hooks import handler as hook_handler
from node_fleet.sim import traces
from node_fleet.sim.workload import TraceError, Workload

# Powertools warns when an invocation ends with no metric (a rejected webhook request adds none).
pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish:UserWarning")

# --------------------------------------------------------------------------------------------------
# Profiles and budgets

settings.register_profile("long", deadline=None, max_examples=10 * settings.get_profile("default").max_examples)
LONG = os.environ.get("HYPOTHESIS_PROFILE") == "long"
if LONG:
    settings.load_profile("long")
SCALE = 10 if LONG else 1


def fuzz(examples: int) -> settings:
    """`examples` in the default profile, ten times as many in `long`; no deadline (a loaded
    machine makes pure code slow too); the fixtures used are module-scoped and reset per example."""
    return settings(
        max_examples=examples * SCALE,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    )


NOW = 1_800_000_000.0  # 2027-01-15T08:00:00Z


def note_outcome(label: str) -> None:
    """Counted in `pytest --hypothesis-show-statistics`, to see that the fuzzing reaches every outcome."""
    hypothesis_event(label)


# --------------------------------------------------------------------------------------------------
# JSON-like values


def json_values(
    vocabulary: tuple[str, ...] = (), keys: tuple[str, ...] = (), max_leaves: int = 12
) -> st.SearchStrategy:
    """Anything json.loads can return, with a bias to the words the target looks for."""
    text = st.text(max_size=16)
    if vocabulary:
        text = text | st.sampled_from(vocabulary)
    scalars = (
        st.none()
        | st.booleans()
        | st.integers(min_value=-(2**70), max_value=2**70)
        | st.floats()
        | st.sampled_from((0, 1, -1, 2, 1000, 1001, 2**63, 0.0, 1.5, -0.0, "", " ", "0", "1", "true", "null"))
        | text
    )
    key = st.text(max_size=12) | st.sampled_from(keys) if keys else st.text(max_size=12)
    return st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(key, inner, max_size=5),
        max_leaves=max_leaves,
    )


ODD_VALUES = (None, True, False, 0, -1, 1.5, float("nan"), float("inf"), "", " ", "x" * 300, [], {}, [1], {"k": 1})


def _locations(doc: Any, parent: Any = None, key: Any = None) -> Iterator[tuple[Any, Any]]:
    """(container, key) of every value under the root."""
    if parent is not None:
        yield parent, key
    if isinstance(doc, dict):
        for k in list(doc):
            yield from _locations(doc[k], doc, k)
    elif isinstance(doc, list):
        for i in range(len(doc)):
            yield from _locations(doc[i], doc, i)


@st.composite
def mutations(draw: st.DrawFn, bases: list[Any], junk: st.SearchStrategy, new_keys: tuple[str, ...] = ()) -> Any:
    """A real document with one to four changes: a key dropped, a value replaced by random JSON,
    by a value of another type, or wrapped; a key added."""
    doc = copy.deepcopy(draw(st.sampled_from(bases)))
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        places = list(_locations(doc))
        if not places:
            break
        parent, key = draw(st.sampled_from(places))
        op = draw(st.sampled_from(("drop", "replace", "retype", "wrap", "add")))
        if op == "drop":
            del parent[key]
        elif op == "replace":
            parent[key] = draw(junk)
        elif op == "retype":
            old = parent[key]
            parent[key] = copy.deepcopy(draw(st.sampled_from((*ODD_VALUES, str(old)[:40], [old], {"value": old}))))
        elif op == "wrap":
            parent[key] = [parent[key]] if draw(st.booleans()) else {"value": parent[key]}
        elif isinstance(parent[key], dict):
            name = draw(st.sampled_from(new_keys) | st.text(max_size=8)) if new_keys else draw(st.text(max_size=8))
            parent[key][name] = draw(junk)
        else:
            parent[key] = draw(junk)
    return doc


# --------------------------------------------------------------------------------------------------
# Events: parse


EVENTS_DIR = Path(__file__).resolve().parents[2] / "events"
EVENT_FILES = sorted(EVENTS_DIR.glob("*.json"))
EVENT_DOCS = [json.loads(p.read_text(encoding="utf-8")) for p in EVENT_FILES]
ALARM = "node-fleet-scale-cpu-high"
ALARM_ACTIONS_ENV = json.dumps({ALARM: {"action": "scale_up", "count": 2}})
ALARM_ACTIONS = parse_alarm_actions(ALARM_ACTIONS_ENV)
FALLBACK_ID = "52fdfc07-2182-154f-163f-5f0f9a621d72"
EVENT_WORDS = (
    "aws.events",
    "aws.scheduler",
    "aws.cloudwatch",
    "node-fleet.manual",
    "Scheduled Event",
    "CloudWatch Alarm State Change",
    "ALARM",
    "OK",
    "INSUFFICIENT_DATA",
    ALARM,
    "other-alarm",
    "scale_up",
    "scale_down",
    "set",
    "pause",
    "resume",
    "SCALE_UP",
)
EVENT_KEYS = ("source", "detail-type", "id", "detail", "action", "count", "desired", "reason", "alarmName", "state")
EVENT_JSON = json_values(EVENT_WORDS, EVENT_KEYS)


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


def parse_or_reject(event: Any) -> Tick | AlarmChange | Manual | None:
    """The parsed request (checked to be valid), or None when parse rejected the event."""
    try:
        request = parse(event, ALARM_ACTIONS, FALLBACK_ID)
    except InvalidEvent as exc:
        assert str(exc), "an InvalidEvent must say what is wrong"
        return None
    assert isinstance(request, Tick | AlarmChange | Manual), request
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
# Events: the autoscaler's Lambda handler with recording fakes


@dataclass
class Recording:
    """Every port call any fake saw, in order."""

    calls: list[tuple] = field(default_factory=list)


class RecordingFleet:
    def __init__(self, log: Recording) -> None:
        self.log = log
        self.instances = [
            Instance(f"i-{i:04d}", InstanceState.RUNNING, "eu-west-1a", "t3.large", NOW - 3600) for i in range(3)
        ]

    def zones(self):
        self.log.calls.append(("fleet.zones",))
        return ("eu-west-1a", "eu-west-1b")

    def list_workers(self):
        self.log.calls.append(("fleet.list_workers",))
        return list(self.instances)

    def launch(self, az, count, token):
        self.log.calls.append(("fleet.launch", az, count, token))
        return LaunchResult(tuple(f"i-new-{token[:8]}-{k}" for k in range(count)))

    def terminate(self, instance_id):
        self.log.calls.append(("fleet.terminate", instance_id))


class RecordingCluster:
    def __init__(self, log: Recording) -> None:
        self.log = log

    def list_nodes(self):
        self.log.calls.append(("cluster.list_nodes",))
        return [Node(f"n{i}", 2000, 7680, f"i-{i:04d}", "eu-west-1a") for i in range(3)]

    def list_pods(self):
        self.log.calls.append(("cluster.list_pods",))
        return [Pod("web-0", "default", 500, 512, node="n0")]

    def disruption_budgets(self):
        return {}

    def daemonset_pods(self):
        return []

    def cordon(self, node):
        self.log.calls.append(("cluster.cordon", node))

    def uncordon(self, node):
        self.log.calls.append(("cluster.uncordon", node))

    def evict(self, pod):
        self.log.calls.append(("cluster.evict", pod.name))
        return EvictionOutcome.EVICTED

    def delete_node(self, node):
        self.log.calls.append(("cluster.delete_node", node))


class RecordingMetrics:
    def __init__(self, log: Recording) -> None:
        self.log = log

    def sample(self, now):
        self.log.calls.append(("metrics.sample", now))
        return MetricsView(cluster_cpu=0.4, node_cpu={"n0": 0.3, "n1": 0.1, "n2": 0.1})


class RecordingState:
    def __init__(self, log: Recording) -> None:
        self.log = log
        self.state = ScalingState()

    def load(self):
        self.log.calls.append(("state.load",))
        return self.state

    def save(self, state):
        self.log.calls.append(("state.save", state.version))
        self.state = replace(state, version=state.version + 1)
        return self.state


class RecordingLease:
    def __init__(self, log: Recording) -> None:
        self.log = log

    def acquire(self, owner, now, duration_s):
        self.log.calls.append(("lease.acquire", owner))
        return True

    def release(self, owner):
        self.log.calls.append(("lease.release", owner))


@dataclass
class Context:
    """A LambdaContext as the runtime passes it."""

    function_name: str = "node-fleet-fuzz"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = "arn:aws:lambda:eu-west-1:123456789012:function:node-fleet-fuzz"
    aws_request_id: str = FALLBACK_ID
    log_group_name: str = "/aws/lambda/node-fleet-fuzz"
    log_stream_name: str = "2027/01/15/[$LATEST]fuzz"

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 30_000


def _clear_settings_env() -> None:
    """Defaults for every setting, and no endpoint override that would take boto3 past moto's mock."""
    for name in [f.name.upper() for f in dataclasses.fields(Settings)] + ["ALARM_ACTIONS"]:
        os.environ.pop(name, None)
    for name in [n for n in os.environ if n.startswith("AWS_ENDPOINT_URL")]:
        os.environ.pop(name)


@pytest.fixture(scope="module")
def lambda_env():
    """The autoscaler's environment and moto's DynamoDB (with the state table from template.yaml) for
    the whole module; each example wires fresh recording fakes."""
    saved = dict(os.environ)
    _clear_settings_env()
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


def wire(idempotency) -> tuple[Wiring, Recording, list]:
    log, notes = Recording(), []
    ports = Ports(RecordingFleet(log), RecordingCluster(log), RecordingMetrics(log), RecordingState(log))

    def gate(now):
        log.calls.append(("gate", now))
        from autoscaler.gitops.reader import GateAnswer

        return GateAnswer(False)

    w = Wiring(
        ports,
        RecordingLease(log),
        gate=gate,
        idempotency=idempotency,
        notify=lambda subject, message: notes.append((subject, message)),
        sleep=lambda s: log.calls.append(("sleep", s)),
        clock=lambda: NOW,
    )
    handler._wiring = w
    return w, log, notes


@fuzz(1000)
@given(event=ANY_EVENT)
def test_the_handler_rejects_what_parse_rejects_and_touches_nothing(lambda_env, event):
    _, log, notes = wire(lambda_env)
    expected = parse_or_reject(event)
    answer = handler.lambda_handler(copy.deepcopy(event), Context())
    note_outcome(f"{type(expected).__name__}: {answer['status']}")
    if expected is None:
        assert answer["status"] == "rejected" and answer["error"], answer
        assert log.calls == [] and notes == [], f"acted on an invalid event: {log.calls}"
    else:
        assert answer["status"] in ("acted", "ignored", "lease_taken"), answer
        json.dumps(answer)


# --------------------------------------------------------------------------------------------------
# Flux objects: verdict, evaluate, gate_objects, the gate's memory


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")


def _cond(kind: str, status: str, reason: str, gen: int = 3) -> dict[str, Any]:
    return {
        "type": kind,
        "status": status,
        "reason": reason,
        "message": f"{kind} {reason}",
        "observedGeneration": gen,
        "lastTransitionTime": _iso(NOW - 60),
    }


def _kustomization(conditions: list[dict], generation: int = 3) -> dict[str, Any]:
    return {
        "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
        "kind": "Kustomization",
        "metadata": {
            "name": "apps",
            "namespace": "flux-system",
            "generation": generation,
            "annotations": {"reconcile.fluxcd.io/requestedAt": "2027-01-15T07:59:00Z"},
        },
        "spec": {"interval": "5m", "path": "./apps", "prune": True, "wait": True, "timeout": "3m"},
        "status": {
            "observedGeneration": 3,
            "lastHandledReconcileAt": "2027-01-15T07:59:00Z",
            "conditions": conditions,
            "history": [
                {
                    "digest": "sha256:9f2c",
                    "firstReconciled": _iso(NOW - 3600),
                    "lastReconciled": _iso(NOW - 60),
                    "totalReconciliations": 12,
                }
            ],
        },
    }


def _helm_release(conditions: list[dict]) -> dict[str, Any]:
    return {
        "apiVersion": "helm.toolkit.fluxcd.io/v2",
        "kind": "HelmRelease",
        "metadata": {
            "name": "kube-prometheus-stack",
            "namespace": "monitoring",
            "generation": 3,
            "annotations": {
                "reconcile.fluxcd.io/requestedAt": "2027-01-15T07:00:00Z",
                "reconcile.fluxcd.io/forceAt": "2027-01-15T07:00:00Z",
            },
        },
        "spec": {"interval": "30m", "chart": {"spec": {"chart": "kube-prometheus-stack", "version": "77.x"}}},
        "status": {
            "observedGeneration": 3,
            "lastAttemptedGeneration": 3,
            "lastHandledReconcileAt": "2027-01-15T07:00:00Z",
            "lastHandledForceAt": "2027-01-15T07:00:00Z",
            "conditions": conditions,
            "history": [{"version": 4, "status": "deployed", "lastDeployed": _iso(NOW - 7200)}],
        },
    }


def _canary(phase: str) -> dict[str, Any]:
    return {
        "apiVersion": "flagger.app/v1beta1",
        "kind": "Canary",
        "metadata": {"name": "demo-app", "namespace": "apps", "generation": 1},
        "spec": {"targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "demo-app"}},
        "status": {
            "phase": phase,
            "canaryWeight": 20,
            "iterations": 1,
            "failedChecks": 0,
            "lastTransitionTime": _iso(NOW - 900),
            "conditions": [_cond("Promoted", "Unknown", "Progressing")],
        },
    }


FLUX_BASES = [
    _kustomization([_cond("Ready", "True", "ReconciliationSucceeded"), _cond("Healthy", "True", "Succeeded")]),
    _kustomization([_cond("Ready", "Unknown", "Progressing"), _cond("Reconciling", "True", "Progressing")]),
    _kustomization([_cond("Ready", "False", "HealthCheckFailed"), _cond("Stalled", "True", "BuildFailed")]),
    _kustomization([_cond("Ready", "False", "ReconciliationFailed")], generation=4),
    _helm_release([_cond("Ready", "True", "UpgradeSucceeded"), _cond("Released", "True", "UpgradeSucceeded")]),
    _helm_release([_cond("Ready", "Unknown", "Progressing"), _cond("Reconciling", "True", "Progressing")]),
    _canary("Progressing"),
    _canary("Succeeded"),
    _canary("Failed"),
    _canary("WaitingPromotion"),
]
FLUX_WORDS = (
    "Kustomization",
    "HelmRelease",
    "Canary",
    "kustomize.toolkit.fluxcd.io/v1",
    "helm.toolkit.fluxcd.io/v2",
    "flagger.app/v1beta1",
    "kustomize.config.k8s.io/v1beta1",
    "Ready",
    "Stalled",
    "Reconciling",
    "True",
    "False",
    "Unknown",
    "Progressing",
    "Succeeded",
    "Failed",
    "Initialized",
    "2027-01-15T07:59:00Z",
    "not a time",
    "List",
    "KustomizationList",
)
FLUX_KEYS = (
    "apiVersion",
    "kind",
    "metadata",
    "name",
    "namespace",
    "generation",
    "annotations",
    "spec",
    "suspend",
    "status",
    "conditions",
    "type",
    "observedGeneration",
    "phase",
    "history",
    "items",
)
FLUX_JSON = json_values(FLUX_WORDS, FLUX_KEYS)


@st.composite
def random_flux_objects(draw: st.DrawFn) -> Any:
    """Random JSON, often an object that claims a kind the gate reads."""
    obj = draw(FLUX_JSON)
    if isinstance(obj, dict) and draw(st.booleans()):
        obj["kind"] = draw(st.sampled_from(("Kustomization", "HelmRelease", "Canary")))
        if draw(st.booleans()):
            obj["status"] = draw(FLUX_JSON)
    return obj


ANY_FLUX_OBJECT = random_flux_objects() | mutations(FLUX_BASES, FLUX_JSON, FLUX_KEYS)


def opening_evidence(obj: Any, state: State) -> bool:
    """Whether `obj` says, in so many words, what a non-holding `state` claims."""
    if not isinstance(obj, dict):
        return False
    spec, status = obj.get("spec"), obj.get("status")
    if state is State.SUSPENDED:
        return isinstance(spec, dict) and spec.get("suspend") is True
    if not isinstance(status, dict):
        return False
    if obj.get("kind") == "Canary":
        phase = status.get("phase")
        return (
            (state is State.READY and phase in CANARY_AT_REST)
            or (state is State.STALLED and phase == CANARY_FAILED)
            or (state is State.WAITING and phase in CANARY_PAUSED)
        )
    conditions = status.get("conditions")
    if not isinstance(conditions, list):
        return False
    wanted = {State.READY: ("Ready", "True"), State.FAILED: ("Ready", "False"), State.STALLED: ("Stalled", "True")}
    kind, value = wanted[state]
    return any(isinstance(c, dict) and c.get("type") == kind and c.get("status") == value for c in conditions)


@fuzz(1500)
@given(obj=ANY_FLUX_OBJECT)
def test_a_verdict_never_raises_and_only_evidence_opens_the_gate(obj):
    v = verdict(obj)
    assert v.state in State
    json.dumps(v.to_dict())
    if not v.holds:
        assert opening_evidence(obj, v.state), f"{v.state} without evidence: {v}"
        assert supported(obj) is not None
    if supported(obj) is None:
        assert v.state is State.UNKNOWN


GARBAGE_FLUX = FLUX_JSON.filter(lambda o: supported(o) is None)
MEMORIES = st.none() | st.builds(
    GateMemory,
    held_since=st.none() | st.floats(min_value=NOW - 86_400, max_value=NOW + 60),
    last_finished=st.none() | st.floats(min_value=NOW - 86_400, max_value=NOW + 60),
)


@fuzz(1000)
@given(
    objects=st.lists(ANY_FLUX_OBJECT, max_size=5),
    garbage=st.lists(GARBAGE_FLUX, max_size=2),
    now=st.floats(min_value=NOW - 3600, max_value=NOW + 3600),
    prior=MEMORIES,
    settle_s=st.sampled_from((0.0, 120.0, 3600.0)),
)
def test_evaluate_never_raises_and_a_garbage_object_holds(objects, garbage, now, prior, settle_s):
    result = evaluate([*objects, *garbage], now, prior, settle_s, 1800.0)
    json.dumps(result.to_dict())
    json.dumps(result.memory.to_dict())
    assert GateMemory.from_dict(json.loads(json.dumps(result.memory.to_dict()))) == result.memory
    if garbage and not result.cap_hit:
        assert result.blocked, "a garbage object opened the gate"
        assert any(v.state is State.UNKNOWN for v in result.holding)


@fuzz(1000)
@given(
    data=FLUX_JSON
    | st.lists(ANY_FLUX_OBJECT, max_size=4)
    | st.builds(
        lambda kind, items: {"kind": kind, "items": items},
        st.sampled_from(("List", "KustomizationList", "Pod")),
        FLUX_JSON | st.lists(ANY_FLUX_OBJECT, max_size=3),
    )
)
def test_gate_objects_answers_or_raises_value_error(data):
    try:
        answer = gate_objects(data)
    except ValueError as exc:
        assert str(exc)
        return
    assert set(answer) == {"blocked", "reasons"} and isinstance(answer["blocked"], bool)
    json.dumps(answer)
    items = data if isinstance(data, list) else data.get("items") or []
    if any(verdict(item).holds for item in items):
        assert answer["blocked"]


@fuzz(1000)
@given(
    data=json_values(
        ("held_since", "last_finished", "object_held_since"), ("held_since", "last_finished", "object_held_since")
    )
)
def test_gate_memory_reads_back_or_raises_value_error(data):
    try:
        memory = GateMemory.from_dict(data)
    except ValueError as exc:
        assert str(exc)
        return
    for value in (memory.held_since, memory.last_finished, *memory.object_held_since.values()):
        assert value is None or math.isfinite(value)


# --------------------------------------------------------------------------------------------------
# The Flux webhook (and the hook's Lambda entry)


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


class HookObjects:
    def list_custom(self, group, version, plural):
        return [FLUX_BASES[0]] if plural == "kustomizations" else None


def hook_wiring() -> hook_handler.HookWiring:
    return hook_handler.HookWiring(HookObjects(), HookStore(), HOOK_KEY, clock=lambda: NOW)


NOTICE = {
    "involvedObject": {
        "kind": "Kustomization",
        "namespace": "flux-system",
        "name": "apps",
        "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
    },
    "severity": "info",
    "timestamp": _iso(NOW - 5),
    "message": "Deployment/demo/demo-app configured",
    "reason": "Progressing",
    "reportingController": "kustomize-controller",
    "metadata": {"revision": "main@sha1:731f7ead"},
}
NOTICE_WORDS = (
    "Progressing",
    "ReconciliationSucceeded",
    _iso(NOW),
    _iso(NOW - 1000),
    _iso(NOW + 1000),
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
    notice = dict(NOTICE, timestamp=_iso(NOW + draw(st.integers(min_value=-400, max_value=100))))
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
    _clear_settings_env()
    os.environ.update({"CLUSTER_NAME": "fuzz", "WEBHOOK_MAX_AGE_S": "300"})
    yield
    hook_handler._wiring = saved_wiring
    os.environ.clear()
    os.environ.update(saved_env)


@fuzz(1000)
@given(event=HOOK_EVENTS)
def test_the_hook_handler_writes_only_for_a_schedule_tick_or_a_signed_notice(hook_env, event):
    w = hook_handler._wiring = hook_wiring()
    answer = hook_handler.lambda_handler(copy.deepcopy(event), Context())
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
# Prometheus answers


PROM_URL = "http://prometheus.fuzz:9090"
STALENESS_S = 180.0
NODE_LABEL = "instance"
SCALAR_QUERIES = ("cluster_cpu", "cluster_mem")
KEYED_QUERIES = ("node_cpu", "node_mem")
MARKERS = (*SCALAR_QUERIES, *KEYED_QUERIES, "custom", "unschedulable")
MARKER_VALUES = (*MARKERS, *(f"{m}/freshness" for m in MARKERS), "", "CLUSTER_CPU")
NODE_NAMES = ("n0", "n1", "n2", "", "n0/x")
GOOD_VALUES = ("0", "0.42", "1", "0.999", "1e-3", "-0.5", "12345.678")
BAD_VALUES = ("NaN", "+Inf", "-Inf", "nan", "inf", "", " ", "abc", "0.4.2", "0x10", "1e999")
PROM_JSON = json_values(
    (*BAD_VALUES, *MARKER_VALUES, "success", "error", "vector", "scalar", "matrix"),
    ("metric", "value", MARKER_LABEL, NODE_LABEL, "status", "data", "resultType", "result"),
)


def _timestamps() -> st.SearchStrategy:
    """Freshness answers (the newest sample time, as a value string): fresh, stale, in the future, or junk."""
    fresh = st.floats(min_value=NOW - STALENESS_S + 1, max_value=NOW).map(repr)
    stale = st.floats(min_value=0, max_value=NOW - STALENESS_S - 1).map(repr)
    future = st.floats(min_value=NOW + 120, max_value=1e300).map(repr)
    return fresh | stale | future | st.sampled_from(BAD_VALUES) | PROM_JSON


@st.composite
def series(draw: st.DrawFn) -> Any:
    """One item of a vector result: usually right-shaped, with a marker, a node label and a value."""
    labels: Any = {}
    if draw(st.integers(min_value=0, max_value=7)):
        labels[MARKER_LABEL] = draw(st.sampled_from(MARKER_VALUES))
    if draw(st.booleans()):
        labels[NODE_LABEL] = draw(st.sampled_from(NODE_NAMES) | PROM_JSON)
    if draw(st.integers(min_value=0, max_value=9)) == 0:
        labels = draw(PROM_JSON | st.just([[MARKER_LABEL, "cluster_cpu"]]))
    freshness = str(labels.get(MARKER_LABEL, "")).endswith("/freshness") if isinstance(labels, dict) else False
    value = draw(_timestamps()) if freshness else draw(st.sampled_from(GOOD_VALUES + BAD_VALUES) | PROM_JSON)
    pair: Any = [draw(st.floats(min_value=NOW - 1e6, max_value=NOW + 1e6) | PROM_JSON), value]
    if draw(st.integers(min_value=0, max_value=9)) == 0:
        pair = draw(PROM_JSON | st.sampled_from(([NOW], [NOW, "0.5", "x"], "a5", {"1": "0.5"})))
    item: Any = {"metric": labels, "value": pair}
    if draw(st.integers(min_value=0, max_value=14)) == 0:
        item = draw(PROM_JSON)
    return item


@st.composite
def well_formed_series(draw: st.DrawFn) -> dict[str, Any]:
    """A right-shaped series for one of the queries, fresh, so that whole answers often are trustworthy."""
    marker = draw(st.sampled_from(MARKERS[:4]))
    fresh = draw(st.booleans())
    labels = {MARKER_LABEL: marker + ("/freshness" if fresh else "")}
    if marker in KEYED_QUERIES:
        labels[NODE_LABEL] = draw(st.sampled_from(NODE_NAMES[:3]))
    value = (
        draw(st.floats(min_value=NOW - STALENESS_S + 1, max_value=NOW).map(repr))
        if fresh
        else draw(st.sampled_from(GOOD_VALUES))
    )
    return {"metric": labels, "value": [NOW, value]}


@st.composite
def complete_bodies(draw: st.DrawFn) -> dict[str, Any]:
    """The answer a healthy Prometheus gives (every query, its freshness, three nodes), the freshness
    sometimes stale, then perhaps one series swapped for an odd one."""
    result = []
    for name in MARKERS[:4]:
        for node in NODE_NAMES[:3] if name in KEYED_QUERIES else (None,):
            extra = {} if node is None else {NODE_LABEL: node}
            value = draw(st.sampled_from(GOOD_VALUES))
            ts = draw(st.floats(min_value=NOW - 2 * STALENESS_S, max_value=NOW))
            result.append({"metric": {MARKER_LABEL: name, **extra}, "value": [NOW, value]})
            result.append({"metric": {MARKER_LABEL: f"{name}/freshness", **extra}, "value": [NOW, repr(ts)]})
    if draw(st.booleans()):
        result[draw(st.integers(min_value=0, max_value=len(result) - 1))] = draw(series())
    return {"status": "success", "data": {"resultType": "vector", "result": draw(st.permutations(result))}}


@st.composite
def vector_bodies(draw: st.DrawFn) -> Any:
    result: Any = draw(st.lists(well_formed_series() | series(), max_size=10))
    if draw(st.integers(min_value=0, max_value=9)) == 0:
        result = draw(PROM_JSON)
    data: Any = {
        "resultType": draw(st.sampled_from(("vector", "vector", "vector", "scalar", "matrix", "string")) | PROM_JSON),
        "result": result,
    }
    if draw(st.integers(min_value=0, max_value=9)) == 0:
        data = draw(PROM_JSON)
    body: Any = {"status": draw(st.sampled_from(("success", "success", "success", "error")) | PROM_JSON), "data": data}
    if draw(st.integers(min_value=0, max_value=4)) == 0:
        body["errorType"], body["error"] = draw(PROM_JSON), draw(PROM_JSON)
    if draw(st.integers(min_value=0, max_value=14)) == 0:
        body = draw(PROM_JSON)
    return body


@st.composite
def custom_bodies(draw: st.DrawFn) -> Any:
    kind = draw(st.sampled_from(("scalar", "vector", "other")))
    value = draw(st.sampled_from(GOOD_VALUES + BAD_VALUES) | PROM_JSON)
    if kind == "scalar":
        pair = [NOW, value] if draw(st.integers(min_value=0, max_value=5)) else draw(PROM_JSON)
        data: Any = {"resultType": "scalar", "result": pair}
    elif kind == "vector":
        items = draw(st.lists(st.just({"metric": {}, "value": [NOW, value]}) | series(), max_size=3))
        data = {"resultType": "vector", "result": items}
    else:
        data = draw(PROM_JSON)
    return {"status": draw(st.sampled_from(("success", "success", "error")) | PROM_JSON), "data": data}


TRANSPORT_ERRORS = (
    requests.exceptions.ConnectionError("refused"),
    requests.exceptions.ReadTimeout("slow"),
    requests.exceptions.ConnectTimeout("slow"),
    requests.exceptions.ChunkedEncodingError("cut"),
    requests.exceptions.ContentDecodingError("gzip"),
    requests.exceptions.TooManyRedirects("loop"),
    requests.exceptions.SSLError("bad certificate"),
)


@st.composite
def http_answers(draw: st.DrawFn, body: st.SearchStrategy) -> Any:
    """(status, raw body bytes), or a transport exception to raise."""
    choice = draw(st.integers(min_value=0, max_value=19))
    if choice == 0:
        return draw(st.sampled_from(TRANSPORT_ERRORS))
    status = 200 if choice > 3 else draw(st.sampled_from((200, 204, 302, 400, 401, 404, 422, 429, 500, 503)))
    if choice == 1:
        return status, draw(st.binary(max_size=64) | st.text(max_size=64).map(str.encode))
    return status, json.dumps(draw(body), allow_nan=True).encode()


CUSTOM_QUERY = "sum(queue_depth)"


class CannedAdapter(BaseAdapter):
    """A transport that answers the custom query with `custom` and every other query (the batch, or
    each query alone after a PromQL error) with `batch`; no socket."""

    def __init__(self, batch: Any, custom: Any) -> None:
        super().__init__()
        self.batch, self.custom = batch, custom
        self.sent: list[str] = []

    def send(self, request, stream=False, timeout=None, verify=True, cert=None, proxies=None):
        query = parse_qs(request.body or "").get("query", [""])[0]
        self.sent.append(query)
        answer = self.custom if query == CUSTOM_QUERY else self.batch
        if isinstance(answer, Exception):
            raise answer
        status, body = answer
        response = requests.Response()
        response.status_code = status
        # The adapter streams the body (to hold its deadline), so it reads the raw stream.
        response.raw = urllib3.HTTPResponse(io.BytesIO(body), status=status, preload_content=False)
        response.headers["content-type"] = "application/json"
        response.url = request.url
        response.request = request
        return response

    def close(self) -> None:
        pass


def prometheus(batch: Any, custom: Any = None) -> tuple[PrometheusMetrics, CannedAdapter]:
    """The adapter over canned answers; a custom query is configured when `custom` is given."""
    options = PrometheusOptions(
        url=PROM_URL,
        staleness_s=STALENESS_S,
        node_label=NODE_LABEL,
        retries=0,
        custom_query=CUSTOM_QUERY if custom is not None else None,
    )
    session = requests.Session()
    metrics = PrometheusMetrics(options, session=session)
    adapter = CannedAdapter(batch, custom)
    session.mount(PROM_URL + "/", adapter)  # in place of the retrying HTTPAdapter the constructor mounted
    return metrics, adapter


def _number(value: Any) -> float | None:
    """A sample value as Prometheus writes it (a string; a plain JSON number is tolerated) if finite."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    try:
        number = float(value)
    except (ValueError, OverflowError):
        return None
    return number if math.isfinite(number) else None


def _good_series(item: Any) -> tuple[dict[str, str], float] | None:
    """(labels, value) of a right-shaped vector item with a finite value; None for anything else."""
    if not isinstance(item, dict):
        return None
    labels = {} if item.get("metric") is None else item["metric"]  # a series without labels
    if not isinstance(labels, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in labels.items()):
        return None
    pair = item.get("value")
    if not isinstance(pair, list) or len(pair) != 2:
        return None
    value = _number(pair[1])
    return None if value is None else (labels, value)


def _trusted_vector(answer: Any) -> list[Any] | None:
    """The result list of a successful instant-vector answer; None when the answer as a whole is bad."""
    if isinstance(answer, Exception) or answer[0] != 200:
        return None
    try:
        body = json.loads(answer[1])
    except ValueError:
        return None
    if not isinstance(body, dict) or body.get("status") != "success" or not isinstance(body.get("data"), dict):
        return None
    data = body["data"]
    if data.get("resultType") != "vector" or not isinstance(data.get("result"), list):
        return None
    return data["result"]


def _fresh(ts: float) -> bool:
    return NOW - STALENESS_S <= ts <= NOW + 60


def expected_scalar(result: list[Any] | None, name: str) -> tuple[bool, float | None]:
    """(may the adapter give a number, and which one if it must): exactly one right-shaped series for
    `name` and exactly one right-shaped fresh freshness series."""
    if result is None:
        return False, None
    mine = [s for s in map(_good_series, result) if s and s[0].get(MARKER_LABEL) == name]
    fresh = [s for s in map(_good_series, result) if s and s[0].get(MARKER_LABEL) == f"{name}/freshness"]
    ok = len(mine) == 1 and len(fresh) == 1 and _fresh(fresh[0][1])
    whole = all(_good_series(item) for item in result)  # nothing odd anywhere: the adapter must use it
    return ok, (mine[0][1] if ok and whole else None)


def allowed_per_node(result: list[Any] | None, name: str) -> dict[str, set[float]]:
    """Node -> the values the adapter may report for it: from right-shaped series of `name` for a node
    that has a right-shaped fresh freshness series."""
    if result is None:
        return {}
    good = [s for s in map(_good_series, result) if s]
    fresh_nodes = {
        labels.get(NODE_LABEL) for labels, ts in good if labels.get(MARKER_LABEL) == f"{name}/freshness" and _fresh(ts)
    }
    allowed: dict[str, set[float]] = {}
    for labels, value in good:
        node = labels.get(NODE_LABEL)
        if labels.get(MARKER_LABEL) == name and node and node in fresh_nodes:
            allowed.setdefault(node, set()).add(value)
    return allowed


def expected_custom(answer: Any) -> float | None:
    if isinstance(answer, Exception) or answer[0] != 200:
        return None
    try:
        body = json.loads(answer[1])
    except ValueError:
        return None
    if not isinstance(body, dict) or body.get("status") != "success" or not isinstance(body.get("data"), dict):
        return None
    data = body["data"]
    result = data.get("result")
    if data.get("resultType") == "scalar":
        return _number(result[1]) if isinstance(result, list) and len(result) == 2 else None
    if data.get("resultType") == "vector" and isinstance(result, list) and len(result) == 1:
        good = _good_series(result[0])
        return good[1] if good else None
    return None


@pytest.fixture(scope="module")
def quiet_prometheus():
    """The adapter logs a warning per unknown query; thousands of them only slow the run down."""
    from autoscaler.adapters.prometheus import metrics as prometheus_metrics

    log = logging.getLogger(prometheus_metrics.logger.name)
    level = log.level
    log.setLevel(logging.ERROR)
    yield
    log.setLevel(level)


@fuzz(1000)
@given(
    batch=http_answers(vector_bodies() | complete_bodies()),
    custom=st.none() | http_answers(custom_bodies()),
)
def test_prometheus_answers_give_numbers_only_from_well_formed_fresh_samples(quiet_prometheus, batch, custom):
    metrics, adapter = prometheus(batch, custom)
    view = metrics.sample(NOW)
    assert isinstance(view, MetricsView)
    assert adapter.sent.count(CUSTOM_QUERY) <= (custom is not None)
    assert len(adapter.sent) <= 6  # the batch, each of the four queries alone after a PromQL error, custom

    result = _trusted_vector(batch)
    for name in SCALAR_QUERIES:
        value = getattr(view, name)
        may, must = expected_scalar(result, name)
        if value is not None:
            assert may and type(value) is float and math.isfinite(value), f"{name}={value!r} from {batch!r}"
        if must is not None:
            assert value == must, f"{name}: {value!r}, expected {must!r} from {batch!r}"
    for name in KEYED_QUERIES:
        allowed = allowed_per_node(result, name)
        for node, value in getattr(view, name).items():
            assert node in allowed and value in allowed[node], f"{name}[{node}]={value!r} from {batch!r}"
            assert type(value) is float and math.isfinite(value)
    if custom is None:
        assert view.custom is None
    elif view.custom is not None:
        assert view.custom == expected_custom(custom), f"custom={view.custom!r} from {custom!r}"
    if not view.known:
        assert view.unknown_reason, "an unknown reading must say why"
    note_outcome(f"cluster_cpu {'known' if view.known else 'unknown'}, {len(view.node_cpu)} nodes known")


# --------------------------------------------------------------------------------------------------
# Trace files


ELB_MODEL = traces.ServiceModel(cost_m_per_rps=40.0)
RATE_CAP = 1e4
"""The fuzzing budget: a number above this in a request-rate file makes proportionally many pods
(up to the converters' replica cap), which is slow; files with one are left out."""
CELL_JUNK = st.sampled_from(
    (
        "",
        " ",
        "NaN",
        "nan",
        "inf",
        "-inf",
        "-1",
        "0",
        "-0",
        "1e309",
        "abc",
        "1.5",
        "1,5",
        '"',
        "0x10",
        "1_000",
        "٣",
        "2014-04-10",
        "2014-04-10 00:04:00",
        "2014-04-10T00:04:00+02:00",
        "9999-12-31 23:59:59",
        "\x00",
        "\t7\t",
    )
) | st.text(max_size=8)


def _stamp(minutes: int) -> str:
    return datetime.fromtimestamp(1_397_088_240 + 60 * minutes, UTC).strftime("%Y-%m-%d %H:%M:%S")


@st.composite
def _rows(draw: st.DrawFn, fmt: str) -> tuple[list[str], list[list[str]]]:
    """(header, rows) of a right-shaped file of the format."""
    n = draw(st.integers(min_value=0, max_value=6))
    small = st.integers(min_value=0, max_value=10_000)
    if fmt == "pods":
        header = ["name", "start_s", "end_s", "cpu_m", "mem_mib", "usage"]
        rows = []
        for i in range(n):
            start = draw(small)
            end = draw(st.sampled_from(("", str(start + draw(st.integers(min_value=1, max_value=5000))))))
            cpu, mem = draw(st.integers(min_value=1, max_value=4000)), draw(st.integers(min_value=1, max_value=16000))
            rows.append([f"web-{i}", str(start), end, str(cpu), str(mem), draw(st.sampled_from(("", "0", "0.6", "1")))])
        if not draw(st.integers(min_value=0, max_value=4)):
            header = header[:-1]
            rows = [r[:-1] for r in rows]
    elif fmt == "elb":
        header = ["timestamp", "value"]
        minutes = sorted(draw(st.sets(st.integers(min_value=0, max_value=90), max_size=n)))
        rows = [[_stamp(m), str(draw(small))] for m in minutes]
    elif fmt == "azure":
        width = draw(st.integers(min_value=1, max_value=5))
        header = ["HashFunction", "HashApp", "HashOwner", *(f"minute_{i}" for i in range(1, width + 1))]
        rows = [
            ["7aa0f8b2"] * 3 + [str(draw(st.integers(min_value=0, max_value=2000))) for _ in range(width)]
            for _ in range(n)
        ]
    else:
        header = ["name", "cpu_milli", "memory_mib", "num_gpu", "creation_time", "deletion_time"]
        rows = []
        for i in range(n):
            created = draw(st.sampled_from(("", "0", "100", "427061")))
            deleted = draw(
                st.sampled_from(("", "0", str(int(created or 0) + draw(st.integers(min_value=0, max_value=5000)))))
            )
            cpu, mem = (
                draw(st.integers(min_value=0, max_value=100_000)),
                draw(st.integers(min_value=0, max_value=200_000)),
            )
            rows.append([f"openb-pod-{i:04d}", str(cpu), str(mem), "1", created, deleted])
    return header, rows


@st.composite
def trace_files(draw: st.DrawFn) -> tuple[str, bytes]:
    """(the format it imitates, the file's bytes): a right-shaped file with cells, rows, the header or
    the encoding damaged, or random text or bytes."""
    fmt = draw(st.sampled_from(("pods", "elb", "azure", "alibaba")))
    choice = draw(st.integers(min_value=0, max_value=11))
    if choice == 0:
        return fmt, draw(st.binary(max_size=200))
    if choice == 1:
        return fmt, draw(st.text(max_size=200)).encode()
    header, rows = draw(_rows(fmt))
    table = [list(header), *rows]
    for _ in range(draw(st.integers(min_value=0 if choice > 5 else 1, max_value=4 if choice > 5 else 2))):
        target = draw(st.integers(min_value=0, max_value=len(table) - 1))
        op = draw(st.sampled_from(("cell", "cell", "cell", "drop cell", "add cell", "drop row", "dup row", "blank")))
        row = table[target]
        if op == "cell" and row:
            row[draw(st.integers(min_value=0, max_value=len(row) - 1))] = draw(CELL_JUNK)
        elif op == "drop cell" and row:
            row.pop(draw(st.integers(min_value=0, max_value=len(row) - 1)))
        elif op == "add cell":
            row.append(draw(CELL_JUNK))
        elif op == "drop row" and len(table) > 1:
            table.pop(target)
        elif op == "dup row":
            table.insert(target, list(row))
        elif op == "blank":
            table.insert(target, [])
    if draw(st.booleans()):
        out = io.StringIO()
        csv.writer(out, lineterminator=draw(st.sampled_from(("\n", "\r\n")))).writerows(table)
        text = out.getvalue()
    else:
        text = "".join(",".join(r) + "\n" for r in table)  # no quoting: commas and quotes in cells stay raw
    if draw(st.integers(min_value=0, max_value=19)) == 0:
        text = "\ufeff" + text
    return fmt, text.encode()


TRACE_CALLS: dict[str, Any] = {
    "load_pods_csv": traces.load_pods_csv,
    "from_elb(1 h)": lambda p: traces.from_elb(p, ELB_MODEL, start_s=0, duration_s=3600),
    "from_azure": lambda p: traces.from_azure(p, ELB_MODEL),
    "from_alibaba": traces.from_alibaba,
    "from_alibaba(window)": lambda p: traces.from_alibaba(p, start_s=50, duration_s=1000),
    **{f"load({fmt!r})": functools.partial(lambda fmt, p: traces.load(p, fmt), fmt) for fmt in traces.FORMATS},
}
RATES = {"elb", "azure", "nasa"}
"""The request-rate formats, whose numbers become replica counts."""
NATIVE = {
    "pods": ("load_pods_csv",),
    "elb": ("from_elb(1 h)",),
    "azure": ("from_azure",),
    "alibaba": ("from_alibaba", "from_alibaba(window)"),
}


@pytest.fixture(scope="module")
def trace_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("traces")


def check_workload(workload: Any) -> None:
    assert isinstance(workload, Workload) and workload.pods
    assert math.isfinite(workload.horizon_s) and workload.horizon_s > 0
    for pod in workload.pods:
        assert type(pod.cpu_m) is int and pod.cpu_m > 0 and type(pod.mem_mib) is int and pod.mem_mib > 0, pod
        assert math.isfinite(pod.start_s) and 0 <= pod.start_s < workload.horizon_s, pod
        assert pod.end_s is None or (math.isfinite(pod.end_s) and pod.start_s < pod.end_s <= workload.horizon_s), pod
        assert 0.0 <= pod.usage <= 1.0, pod


@fuzz(1200)
@given(file=trace_files(), call=st.sampled_from(sorted(TRACE_CALLS)), native=st.booleans())
def test_trace_files_load_or_raise_a_trace_error_naming_the_file(trace_dir, file, call, native):
    fmt, data = file
    if native and call not in NATIVE[fmt]:
        call = NATIVE[fmt][0]
    if RATES.intersection(call.split("'")) or call in ("from_elb(1 h)", "from_azure"):
        assume(_over_budget(data) is None)
    path = trace_dir / f"{fmt}-trace.csv"
    path.write_bytes(data)
    try:
        workload = TRACE_CALLS[call](path)
    except TraceError as exc:
        assert str(path) in str(exc), f"{exc} does not name the file"
        note_outcome(f"{call}: TraceError")
        return
    check_workload(workload)
    note_outcome(f"{call}: loaded")


@fuzz(300)
@given(
    tokens=st.lists(st.integers(min_value=0, max_value=10_000).map(str) | CELL_JUNK, max_size=30),
    sep=st.sampled_from((" ", "\n", "\t", "  \n")),
)
def test_nasa_archives_load_or_raise_a_trace_error_naming_the_file(trace_dir, tokens, sep):
    member = sep.join(tokens).encode()
    assume(_over_budget(member) is None)
    path = trace_dir / "nasa.tbz2"
    with tarfile.open(path, "w:bz2") as tar:
        info = tarfile.TarInfo("nasa/workload.txt")
        info.size = len(member)
        tar.addfile(info, io.BytesIO(member))
    try:
        workload = traces.from_nasa(path, ELB_MODEL, start_s=0, duration_s=600)
    except TraceError as exc:
        assert str(path) in str(exc)
        note_outcome("TraceError")
        return
    check_workload(workload)
    note_outcome("loaded")


@fuzz(200)
@given(fmt=st.text(max_size=10).filter(lambda f: f not in traces.FORMATS))
def test_an_unknown_trace_format_is_a_value_error(trace_dir, fmt):
    with pytest.raises(ValueError, match="unknown trace format") as err:
        traces.load(trace_dir / "any.csv", fmt)
    assert not isinstance(err.value, TraceError)


def _over_budget(data: bytes) -> str | None:
    """A number above RATE_CAP anywhere: a request-rate file would make that many pods (slow, not wrong)."""
    for token in re.split(rb"[\s,\"]+", data):
        try:
            value = float(token.decode())
        except (UnicodeDecodeError, ValueError, OverflowError):
            continue
        if not math.isfinite(value) or value > RATE_CAP:
            return f"{token[:20]!r} > {RATE_CAP:g}"
    return None


# --------------------------------------------------------------------------------------------------
# The planner on random valid snapshots


ZONES = ("eu-west-1a", "eu-west-1b", "eu-west-1c")


@st.composite
def planner_cases(draw: st.DrawFn) -> tuple[ClusterSnapshot, ScalingState, Settings, Intent | None]:
    """A snapshot with workers (some launching, some never joining, some gone), a control plane, nodes
    of no worker, pods of every kind, metrics known or not, and a state with clocks, launches and drains."""
    min_nodes = draw(st.integers(min_value=0, max_value=5))
    settings_ = Settings(
        min_nodes=min_nodes,
        max_nodes=draw(st.integers(min_value=max(1, min_nodes), max_value=12)),
        max_nodes_per_scale_up=draw(st.integers(min_value=1, max_value=6)),
        max_drains_in_parallel=draw(st.integers(min_value=1, max_value=3)),
        max_empty_bulk_delete=draw(st.integers(min_value=1, max_value=4)),
        scale_down_unneeded_time_s=draw(st.sampled_from((0, 60, 600))),
        scale_down_delay_after_add_s=draw(st.sampled_from((0, 600))),
        scale_down_delay_after_failure_s=draw(st.sampled_from((0, 180))),
        new_pod_scale_up_delay_s=draw(st.sampled_from((0, 30))),
        cpu_high_window_s=draw(st.sampled_from((0, 180))),
        max_node_provision_time_s=draw(st.sampled_from((60, 900))),
        scale_down_utilization_threshold=draw(st.sampled_from((0.5, 1.0, 0.0))),
        node_cpu_m=2000,
        node_mem_mib=7680,
    )
    zones = ZONES[: draw(st.integers(min_value=0, max_value=3))]
    calm = draw(st.booleans())  # quiet hours: everything running, nothing pending, old clocks (scale-down's turn)
    instances, nodes = [], []
    for i in range(draw(st.integers(min_value=3 if calm else 0, max_value=9))):
        inst = Instance(
            f"i-{i:04d}",
            InstanceState.RUNNING if calm else draw(st.sampled_from(list(InstanceState))),
            draw(st.sampled_from((*zones, "us-east-1a"))) if zones else "eu-west-1a",
            "t3.large",
            NOW - (7200.0 if calm else draw(st.sampled_from((0.0, 30.0, 200.0, 1000.0, 7200.0)))),
            draw(st.sampled_from(("on-demand", "spot"))),
        )
        instances.append(inst)
        if calm or draw(st.integers(min_value=0, max_value=4)):  # registered as a Node (else: launching, never joined)
            nodes.append(node_for(draw(NODE_FIELDS), f"n{i}", inst.id, inst.az))
    for j in range(draw(st.integers(min_value=0, max_value=2))):  # the server, and nodes of no tagged worker
        owner = draw(st.sampled_from((None, "i-unknown", f"i-{j:04d}")))
        nodes.append(node_for(draw(NODE_FIELDS), f"x{j}", owner, None, j == 0))
    names = [n.name for n in nodes]

    def subset(items: list[str], most: int | None = None) -> list[str]:
        return sorted(draw(st.sets(st.sampled_from(items), max_size=most))) if items else []

    places = names if calm and names else [None, *names]
    where = st.sampled_from(places)
    pods = [pod_on(draw(POD_FIELDS), k, draw(where)) for k in range(draw(st.integers(min_value=0, max_value=12)))]
    if calm or draw(st.integers(min_value=0, max_value=3)):
        cpu = draw(st.floats(min_value=0, max_value=1))
        known = names if calm else subset(names)
        node_cpu = {n: draw(st.sampled_from((0.05, 0.2, 0.9))) for n in known}
        custom = None if calm else draw(st.none() | st.floats(min_value=0, max_value=10))
        metrics = MetricsView(cluster_cpu=cpu, node_cpu=node_cpu, custom=custom)
    else:
        metrics = MetricsView(unknown_reason="prometheus down")
    ago = (
        st.sampled_from((None, NOW - 3600)) if calm else st.none() | st.sampled_from((NOW - 30, NOW - 300, NOW - 3600))
    )
    ids = [i.id for i in instances] + ["i-unseen-0", "i-unseen-1"]
    state = ScalingState(
        version=draw(st.integers(min_value=0, max_value=5)),
        last_scale_up=draw(ago),
        last_scale_down=draw(ago),
        last_failure=draw(ago),
        pressure_since=draw(ago),
        unneeded_since={
            n: draw(st.sampled_from((NOW - 700, NOW - 5, NOW))) for n in (names if calm else subset(names))
        },
        launches=tuple(
            Launch(i, "eu-west-1a", NOW - draw(st.sampled_from((10.0, 100.0, 1000.0))), NOW + 900)
            for i in draw(st.sets(st.sampled_from(ids), max_size=0 if calm else 3))
        ),
        drains=tuple(Drain(n, None, NOW - 60, NOW + 240) for n in subset(names, 2)),
        backoff_until=draw(st.none() | st.sampled_from((NOW - 10, NOW + 300))),
        paused=draw(st.sampled_from((False,) * 9 + (True,))),
    )
    intent = None
    if draw(st.sampled_from((False, False, False, True))):
        kind = draw(st.sampled_from(list(IntentKind)))
        count = (
            0
            if kind in (IntentKind.PAUSE, IntentKind.RESUME)
            else draw(st.integers(min_value=0 if kind is IntentKind.SET else 1, max_value=15))
        )
        intent = Intent(kind, count, "fuzz")
    snapshot = ClusterSnapshot(tuple(nodes), tuple(pods), tuple(instances), metrics, zones)
    return snapshot, state, settings_, intent


_RARELY = st.sampled_from((False,) * 5 + (True,))
NODE_FIELDS = st.tuples(
    st.sampled_from((2000, 4000, 500)),
    st.sampled_from((7680, 15360, 1024)),
    _RARELY,  # not Ready
    _RARELY,  # cordoned
    st.none() | st.tuples(st.sampled_from(SCALE_DOWN_DISABLED_ANNOTATIONS), st.sampled_from(("true", "false"))),
)
POD_FIELDS = st.tuples(
    st.sampled_from(("default", "default", "kube-system", "apps")),
    st.sampled_from((10, 250, 500, 1500, 2500)),
    st.sampled_from((16, 512, 2048, 8000)),
    st.sampled_from(("ReplicaSet", "ReplicaSet", "StatefulSet", "DaemonSet", "Job", None)),
    st.dictionaries(
        st.sampled_from((SAFE_TO_EVICT, DO_NOT_DISRUPT, "other")), st.sampled_from(("true", "false")), max_size=2
    ),
    st.booleans(),  # has a PodDisruptionBudget
    _RARELY,  # local storage
    st.sampled_from((None, 0.0, 60.0)),  # unschedulable for (when not bound)
)


def node_for(fields: tuple, name: str, instance_id: str | None, az: str | None, control_plane: bool = False) -> Node:
    cpu, mem, not_ready, cordoned, disabled = fields
    return Node(
        name,
        cpu,
        mem,
        instance_id,
        az,
        ready=not not_ready,
        cordoned=cordoned,
        control_plane=control_plane,
        annotations=dict([disabled]) if disabled else {},
        created_at=NOW - 3600,
    )


def pod_on(fields: tuple, k: int, node: str | None) -> Pod:
    namespace, cpu, mem, owner, annotations, has_pdb, local_storage, waiting = fields
    return Pod(
        f"p{k}",
        namespace,
        cpu,
        mem,
        node=node,
        owner_kind=owner,
        annotations=annotations,
        has_pdb=has_pdb,
        local_storage=local_storage,
        unschedulable_since=NOW - waiting if node is None and waiting is not None else None,
    )


def unmovable(pod: Pod) -> bool:
    """DESIGN.md's rule, written out again: a pod that pins its node."""
    ann = pod.annotations
    if ann.get(SAFE_TO_EVICT) == "false" or ann.get(DO_NOT_DISRUPT) == "true":
        return True
    if ann.get(SAFE_TO_EVICT) == "true":
        return False
    return pod.owner_kind is None or (pod.namespace == "kube-system" and not pod.has_pdb) or pod.local_storage


@fuzz(1000)
@given(case=planner_cases())
def test_the_planner_keeps_its_bounds_and_never_removes_what_it_must_not(case):
    snapshot, state, s, intent = case
    decision = plan(snapshot, state, s, NOW, intent)

    alive = {i.id: i for i in snapshot.instances if i.alive}
    seen = {i.id for i in snapshot.instances}
    unseen = {
        x.instance_id
        for x in state.launches
        if x.instance_id not in seen and NOW - x.launched_at < LAUNCH_VISIBILITY_GRACE_S
    }
    fleet = len(alive) + len(unseen)
    draining = {d.node for d in state.drains}
    nodes = {n.name: n for n in snapshot.nodes}
    assert decision.state.version == state.version
    assert (decision.action is Action.SCALE_UP) == bool(decision.launches)
    assert (decision.action is Action.SCALE_DOWN) == bool(decision.remove)
    assert decision.reasons

    # Launches: within max_nodes, per cycle within max_nodes_per_scale_up, into the fleet's zones.
    assert all(count > 0 for count in decision.launches.values())
    if decision.launches:
        assert fleet + decision.launch_count <= s.max_nodes, (fleet, dict(decision.launches))
        assert set(decision.launches) <= (set(snapshot.zones) or {""})
        if intent is None:
            assert decision.launch_count <= s.max_nodes_per_scale_up
        assert not state.paused or (intent is not None and intent.kind is IntentKind.RESUME)

    # Removals: only Ready workers of this fleet that nothing pins, never below min_nodes Ready
    # workers; a NotReady worker only once it is dead (past the unready or provision time).
    assert len(set(decision.remove)) == len(decision.remove)
    for name in decision.remove:
        node = nodes[name]
        assert not node.control_plane, f"removes the control plane {name}"
        assert not node.scale_down_disabled, f"removes {name}, annotated scale-down-disabled"
        assert node.instance_id in alive, f"removes {name}, whose instance {node.instance_id} is not a live worker"
        assert decision.instances[name] == node.instance_id
        assert name not in draining
        if not node.ready:
            since = node.ready_since if node.ready_since is not None else node.created_at
            launched = alive[node.instance_id].launched_at
            assert NOW - since > s.scale_down_unready_time_s or NOW - launched > s.max_node_provision_time_s
        pinned = [p.key for p in snapshot.pods if p.node == name and not p.is_daemonset and unmovable(p)]
        assert not pinned, f"removes {name}, which holds {pinned}"
    removed_ready = [n for n in decision.remove if nodes[n].ready]
    if removed_ready:
        ready = {n.name for n in snapshot.nodes if n.ready and n.instance_id in alive and not n.control_plane}
        assert len(ready - draining) - len(removed_ready) >= s.min_nodes, "goes below min_nodes Ready workers"
    if decision.remove:
        assert not state.paused or (intent is not None and intent.kind is IntentKind.RESUME)
        unhelpable = {u.pod for u in decision.unhelpable}
        waiting = [p.key for p in snapshot.pods if p.node is None and p.unschedulable_since is not None]
        assert removed_ready == [] or set(waiting) <= unhelpable, "scale-down while pods a worker could host wait"
        if intent is None and removed_ready and set(decision.remove) == set(removed_ready):
            assert snapshot.metrics.known or fleet > s.max_nodes, "scale-down on unknown metrics"

    # Instances terminated as never joined: live, no Node object at all, past the provision time.
    registered = {n.instance_id for n in snapshot.nodes}
    for instance_id in decision.terminate_unjoined:
        inst = alive[instance_id]
        assert instance_id not in registered and NOW - inst.launched_at > s.max_node_provision_time_s
    # Node objects deleted as orphans: their worker is shutting down or gone.
    gone = {
        i.id
        for i in snapshot.instances
        if not i.alive and i.state in (InstanceState.SHUTTING_DOWN, InstanceState.TERMINATED)
    }
    for name in decision.delete_nodes:
        assert nodes[name].instance_id in gone and not nodes[name].control_plane
    note_outcome(f"{decision.action.value}{' (asked)' if intent else ''}")


# --------------------------------------------------------------------------------------------------
# REGRESSIONS: shapes this fuzzing found breaking a target, each with its minimal example.


def _vector(result: Any) -> tuple[int, bytes]:
    return 200, json.dumps({"status": "success", "data": {"resultType": "vector", "result": result}}).encode()


def _cpu(value: Any, metric: Any = None) -> dict[str, Any]:
    return {"metric": {MARKER_LABEL: "cluster_cpu"} if metric is None else metric, "value": value}


_FRESH_CPU = {"metric": {MARKER_LABEL: "cluster_cpu/freshness"}, "value": [NOW, repr(NOW - 10)]}

PROMETHEUS_REGRESSIONS = [
    ("vector result true", _vector(True), None),
    ("vector result a string", _vector("abc"), None),
    ("vector item null", _vector([None]), None),
    ("metric [null]", _vector([_cpu([NOW, "0.5"], [None])]), None),
    ("metric a string", _vector([_cpu([NOW, "0.5"], "ab")]), None),
    ("metric as label pairs", _vector([_cpu([NOW, "0.5"], [[MARKER_LABEL, "cluster_cpu"]]), _FRESH_CPU]), None),
    ("value an object", _vector([_cpu({"1": "0.5"}), _FRESH_CPU]), None),
    ("value the string 'a5'", _vector([_cpu("a5"), _FRESH_CPU]), None),
    ("value [t, false]", _vector([_cpu([NOW, False]), _FRESH_CPU]), None),
    ("value [t, true]", _vector([_cpu([NOW, True]), _FRESH_CPU]), None),
    ("value [t, '0.5', 'x']", _vector([_cpu([NOW, "0.5", "x"]), _FRESH_CPU]), None),
    (
        "value a 400-digit integer",
        (
            200,
            b'{"status":"success","data":{"resultType":"vector","result":[{"metric":{"node_fleet_query":"cluster_cpu"},"value":[1,'
            + b"9" * 400
            + b"]}]}}",
        ),
        None,
    ),
    (
        "node label an integer",
        _vector([{"metric": {MARKER_LABEL: "node_cpu", NODE_LABEL: 5}, "value": [NOW, "0.5"]}]),
        None,
    ),
    (
        "freshness in the future",
        _vector(
            [_cpu([NOW, "0.5"]), {"metric": {MARKER_LABEL: "cluster_cpu/freshness"}, "value": [NOW, repr(NOW + 1e9)]}]
        ),
        None,
    ),
    ("deeply nested answer", (200, b"[" * 100_000 + b"]" * 100_000), None),
    (
        "custom scalar an object",
        _vector([]),
        (200, b'{"status":"success","data":{"resultType":"scalar","result":{"1":"2"}}}'),
    ),
    (
        "custom scalar [t, true]",
        _vector([]),
        (200, b'{"status":"success","data":{"resultType":"scalar","result":[1,true]}}'),
    ),
    (
        "custom vector [null]",
        _vector([]),
        (200, b'{"status":"success","data":{"resultType":"vector","result":[null]}}'),
    ),
    ("custom vector true", _vector([]), (200, b'{"status":"success","data":{"resultType":"vector","result":true}}')),
    (
        "custom vector metric []",
        _vector([]),
        (200, b'{"status":"success","data":{"resultType":"vector","result":[{"metric":[],"value":[1,"0"]}]}}'),
    ),
]


@pytest.mark.parametrize(
    ("batch", "custom"), [c[1:] for c in PROMETHEUS_REGRESSIONS], ids=[c[0] for c in PROMETHEUS_REGRESSIONS]
)
def test_regression_prometheus(batch, custom):
    metrics, _ = prometheus(batch, custom)
    view = metrics.sample(NOW)
    assert view.cluster_cpu is None and view.custom is None and not view.node_cpu, view


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


TRACE_REGRESSIONS = [
    ("not UTF-8", traces.load_pods_csv, b"name,start_s,end_s,cpu_m,mem_mib\n\xff\xfe,0,,1,1\n"),
    (
        "a field over the csv limit",
        traces.load_pods_csv,
        b"name,start_s,end_s,cpu_m,mem_mib\n" + b"a" * 200_000 + b",0,,1,1\n",
    ),
    (
        "ELB times with and without an offset",
        TRACE_CALLS["from_elb(1 h)"],
        b"timestamp,value\n2014-04-10 00:04:00,94.0\n2014-04-10 00:09:00+00:00,56.0\n",
    ),
    (
        # With the ELB default model (15000 m per request/s) the replica count overflows to infinity.
        # Careful: with a cheaper model the same value is finite, and the converter allocates until
        # memory runs out (the unbounded replica count below).
        "ELB rate 1e308 overflows the replica count",
        lambda p: traces.from_elb(p, start_s=0, duration_s=3600),
        b"timestamp,value\n2014-04-10 00:04:00,1e308\n",
    ),
    (
        "Alibaba CPU of 400 digits",
        traces.from_alibaba,
        b"name,cpu_milli,memory_mib,creation_time,deletion_time\na," + b"9" * 400 + b",1,0,10\n",
    ),
    (
        "ELB rate 1e12 meets the replica cap",
        lambda p: traces.from_elb(p, start_s=0, duration_s=3600),
        b"timestamp,value\n2014-04-10 00:04:00,1e12\n",
    ),
]
"""A rate that is large but finite (an ELB value of 1e12) once asked rates_to_workload for ~10^13
replicas; the converters now refuse more than their replica cap with a TraceError."""


@pytest.mark.parametrize(("call", "data"), [c[1:] for c in TRACE_REGRESSIONS], ids=[c[0] for c in TRACE_REGRESSIONS])
def test_regression_traces(trace_dir, call, data):
    path = trace_dir / "bug.csv"
    path.write_bytes(data)
    try:
        workload = call(path)
    except TraceError as exc:
        assert str(path) in str(exc)
        return
    check_workload(workload)
