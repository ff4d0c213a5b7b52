"""Flux objects, fuzzed: `verdict` and `evaluate` never raise and a garbage object holds (only explicit
evidence opens the gate); `gate_objects` raises ValueError only; the gate memory reads back or raises
ValueError. The seeds are the table tests' objects (tests/flux_objects.py). Profiles and shared
strategies: fuzzing.py.
"""

from __future__ import annotations

import json
import math
from typing import Any

from fuzzing import (
    NOW,
    fuzz,
    json_values,
    mutations,
)
from hypothesis import given
from hypothesis import strategies as st

from autoscaler.gitops.flux import CANARY_AT_REST, CANARY_FAILED, CANARY_PAUSED, State, supported, verdict
from autoscaler.gitops.gate import GateMemory, evaluate, gate_objects
from flux_objects import canary, cond, helm_release, kustomization

FLUX_BASES = [
    kustomization([cond("Ready", "True", "ReconciliationSucceeded"), cond("Healthy", "True", "Succeeded")]),
    kustomization([cond("Ready", "Unknown", "Progressing"), cond("Reconciling", "True", "Progressing")]),
    kustomization([cond("Ready", "False", "HealthCheckFailed"), cond("Stalled", "True", "BuildFailed")]),
    kustomization([cond("Ready", "False", "ReconciliationFailed")], generation=4),
    helm_release([cond("Ready", "True", "UpgradeSucceeded"), cond("Released", "True", "UpgradeSucceeded")]),
    helm_release([cond("Ready", "Unknown", "Progressing"), cond("Reconciling", "True", "Progressing")]),
    canary("Progressing"),
    canary("Succeeded"),
    canary("Failed"),
    canary("WaitingPromotion"),
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
