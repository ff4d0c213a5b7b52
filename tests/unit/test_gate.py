"""The gate over all objects: holds, the settle window, the cap on one continuous hold, its memory."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from autoscaler.gitops.flux import State
from autoscaler.gitops.gate import DEFAULT_MAX_HOLD_S, GateMemory, evaluate, gate_objects

NOW = 1_785_000_000.0
REV = "main@sha1:6b1a4e0e9c3d2f7a8b5c4d3e2f1a0b9c8d7e6f5a"


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")


def cond(kind: str, status: str, reason: str, message: str = "", gen: int = 3) -> dict[str, Any]:
    return {
        "type": kind,
        "status": status,
        "reason": reason,
        "message": message,
        "observedGeneration": gen,
        "lastTransitionTime": iso(NOW - 60),
    }


READY_KS = cond("Ready", "True", "ReconciliationSucceeded", f"Applied revision: {REV}")
PROGRESSING_READY = cond("Ready", "Unknown", "Progressing", "Reconciliation in progress")
RECONCILING = cond("Reconciling", "True", "Progressing", f"Detecting drift for revision {REV}")
RETRYING = cond("Reconciling", "True", "ProgressingWithRetry", f"Detecting drift for revision {REV}")


def kustomization(conditions: list[dict[str, Any]] | None, name: str = "apps", changed_at: float = NOW - 86400):
    obj: dict[str, Any] = {
        "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
        "kind": "Kustomization",
        "metadata": {"name": name, "namespace": "flux-system", "generation": 3},
        "spec": {"interval": "5m", "path": "./gitops/apps/production", "prune": True, "wait": True},
        "status": {
            "observedGeneration": 3,
            "lastAppliedRevision": REV,
            "conditions": conditions,
            "history": [
                {
                    "digest": "sha256:9f2c0d6e",
                    "firstReconciled": iso(changed_at),
                    "lastReconciled": iso(NOW - 60),
                    "lastReconciledStatus": "ReconciliationSucceeded",
                    "totalReconciliations": 12,
                }
            ],
        },
    }
    if conditions is None:
        del obj["status"]
    return obj


def helm_release(last_deployed: float) -> dict[str, Any]:
    return {
        "apiVersion": "helm.toolkit.fluxcd.io/v2",
        "kind": "HelmRelease",
        "metadata": {"name": "kube-prometheus-stack", "namespace": "monitoring", "generation": 3},
        "spec": {"interval": "30m"},
        "status": {
            "observedGeneration": 3,
            "conditions": [cond("Ready", "True", "UpgradeSucceeded", "Helm upgrade succeeded")],
            "history": [{"version": 4, "status": "deployed", "lastDeployed": iso(last_deployed)}],
        },
    }


def canary(phase: str, transition: float = NOW - 86400) -> dict[str, Any]:
    return {
        "apiVersion": "flagger.app/v1beta1",
        "kind": "Canary",
        "metadata": {"name": "demo-app", "namespace": "apps"},
        "spec": {"targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "demo-app"}},
        "status": {"phase": phase, "canaryWeight": 10, "lastTransitionTime": iso(transition)},
    }


SETTLE = 120.0
CAP = 1800.0


def ks(name: str, conditions, changed_at: float = NOW - 86400, suspend: bool = False):
    obj = kustomization(conditions, name, changed_at)
    obj["spec"]["suspend"] = suspend
    return obj


def ready(name: str = "apps", changed_at: float = NOW - 86400):
    return ks(name, [READY_KS], changed_at)


def busy(name: str = "apps"):
    return ks(name, [PROGRESSING_READY, RECONCILING])


def run(objects, now, prior=None, settle_s=SETTLE, max_hold_s=CAP):
    return evaluate(objects, now=now, prior=prior, settle_s=settle_s, max_hold_s=max_hold_s)


def test_nothing_holds():
    out = run([ready("infrastructure"), ready("apps"), canary("Succeeded")], NOW)
    assert not out.blocked
    assert out.reasons == [] and out.holding == () and not out.cap_hit
    assert out.memory == GateMemory()


@pytest.mark.parametrize(
    ("desc", "obj", "blocks"),
    [
        ("in progress", busy(), True),
        ("unknown (no status)", kustomization(None), True),
        ("active canary", canary("Progressing"), True),
        (
            "failed, waiting for a retry",
            ks("apps", [cond("Ready", "False", "HealthCheckFailed", "x"), RETRYING]),
            False,
        ),
        (
            "stalled",
            ks("apps", [cond("Ready", "False", "AccessDenied", "x"), cond("Stalled", "True", "AccessDenied", "x")]),
            False,
        ),
        ("suspended", ks("apps", [PROGRESSING_READY], suspend=True), False),
        ("ready", ready(), False),
    ],
    ids=lambda x: x if isinstance(x, str) else "",
)
def test_which_states_block(desc, obj, blocks):
    assert run([obj], NOW).blocked is blocks, desc


def test_every_holding_object_is_named():
    out = run([busy("infrastructure"), ready("monitoring"), busy("apps"), kustomization(None)], NOW)
    assert out.blocked
    assert [(r["kind"], r["namespace"], r["name"], r["state"]) for r in out.reasons] == [
        ("Kustomization", "flux-system", "infrastructure", "in_progress"),
        ("Kustomization", "flux-system", "apps", "in_progress"),
        ("Kustomization", "flux-system", "apps", "unknown"),
    ]
    assert all(r["detail"] for r in out.reasons)
    assert out.memory.held_since == NOW
    assert set(out.memory.object_held_since) == {
        "Kustomization/flux-system/infrastructure",
        "Kustomization/flux-system/apps",
    }


def test_stalled_and_unknown_are_reported_for_alarms():
    stalled = ks("infra", [cond("Ready", "False", "X", "x"), cond("Stalled", "True", "AccessDenied", "denied")])
    out = run([stalled, kustomization(None)], NOW)
    assert [v.name for v in out.stalled] == ["infra"]
    assert [v.state for v in out.unknown] == [State.UNKNOWN]


class TestSettleWindow:
    def test_after_a_hold_ends(self):
        first = run([busy()], NOW)
        assert first.blocked
        ended = run([ready()], NOW + 60, first.memory)
        assert ended.blocked and ended.holding == ()
        assert ended.settle_until == NOW + 60 + SETTLE
        (reason,) = ended.reasons
        assert reason["state"] == "settling" and "a hold ended at" in reason["detail"]
        assert run([ready()], NOW + 60 + SETTLE - 1, ended.memory).blocked
        done = run([ready()], NOW + 60 + SETTLE, ended.memory)
        assert not done.blocked and done.memory.held_since is None

    def test_after_a_rollout_between_two_polls(self):
        # The reconcile started and finished between polls: the gate never saw it hold.
        out = run([ready("apps", changed_at=NOW - 30)], NOW, GateMemory())
        assert out.blocked and out.settle_until == NOW - 30 + SETTLE
        assert "Kustomization/flux-system/apps rolled out a change" in out.reasons[0]["detail"]

    def test_helm_release_deploy(self):
        hr = helm_release(last_deployed=NOW - 10)
        assert run([hr], NOW).settle_until == NOW - 10 + SETTLE

    def test_old_rollout_does_not_block(self):
        assert not run([ready(changed_at=NOW - SETTLE - 1)], NOW).blocked

    def test_zero_settle(self):
        first = run([busy()], NOW)
        assert not run([ready()], NOW + 60, first.memory, settle_s=0).blocked

    def test_deleted_object_ends_its_hold(self):
        first = run([busy("apps"), ready("infra")], NOW)
        out = run([ready("infra")], NOW + 60, first.memory)
        assert out.blocked and out.settle_until == NOW + 60 + SETTLE

    def test_window_does_not_show_while_objects_hold(self):
        out = run([busy(), ready("infra", changed_at=NOW - 5)], NOW)
        assert out.settle_until is None
        assert [r["state"] for r in out.reasons] == ["in_progress"]


class TestCap:
    def test_stuck_object_is_released_after_the_cap(self):
        memory = None
        for t in range(0, int(CAP), 60):
            out = run([busy()], NOW + t, memory)
            assert out.blocked and not out.cap_hit, t
            memory = out.memory
        capped = run([busy()], NOW + CAP, memory)
        assert not capped.blocked and capped.cap_hit
        assert [v.name for v in capped.capped] == ["apps"] and capped.holding == ()
        assert capped.reasons == []
        # Stays released while it stays stuck; its hold is still remembered.
        later = run([busy()], NOW + CAP + 600, capped.memory)
        assert not later.blocked and later.cap_hit
        assert later.memory.object_held_since["Kustomization/flux-system/apps"] == NOW

    def test_a_new_rollout_still_holds_while_a_stuck_object_is_capped(self):
        capped = run([busy("stuck")], NOW + CAP, run([busy("stuck")], NOW).memory)
        assert not capped.blocked
        out = run([busy("stuck"), busy("apps")], NOW + CAP + 60, capped.memory)
        assert out.blocked and out.cap_hit
        assert [v.name for v in out.holding] == ["apps"] and [v.name for v in out.capped] == ["stuck"]

    def test_stuck_object_finally_finishing_settles(self):
        capped = run([busy()], NOW + CAP, run([busy()], NOW).memory)
        out = run([ready()], NOW + CAP + 60, capped.memory)
        assert out.blocked and out.settle_until == NOW + CAP + 60 + SETTLE and not out.cap_hit

    def test_chain_of_holds_by_different_objects_is_capped_too(self):
        m = run([busy("a")], NOW).memory
        m = run([busy("a"), busy("b")], NOW + 1200, m).memory
        out = run([ready("a"), busy("b")], NOW + 1500, m)
        assert out.blocked
        out = run([ready("a"), busy("b")], NOW + CAP, out.memory)
        assert not out.blocked and out.cap_hit and out.held_for_s == CAP
        assert [v.name for v in out.capped] == ["b"]
        # The chain breaks: the next hold starts a fresh count.
        gap = run([ready("a"), ready("b")], NOW + CAP + 60, out.memory, settle_s=0)
        assert not gap.blocked and gap.memory.held_since is None
        fresh = run([busy("c")], NOW + CAP + 120, gap.memory)
        assert fresh.blocked and fresh.held_for_s == 0

    def test_held_for(self):
        m = run([busy()], NOW).memory
        assert run([busy()], NOW + 300, m).held_for_s == 300
        assert run([ready()], NOW + 300, m, settle_s=0).held_for_s == 0

    def test_default_cap_is_thirty_minutes(self):
        assert DEFAULT_MAX_HOLD_S == 1800.0


class TestMemory:
    def test_round_trips_through_json(self):
        m = run([busy("a"), busy("b")], NOW).memory
        m = run([busy("b")], NOW + 60, m).memory
        data = json.loads(json.dumps(m.to_dict()))
        assert GateMemory.from_dict(data) == m
        assert data == {
            "held_since": NOW,
            "last_finished": NOW + 60,
            "object_held_since": {"Kustomization/flux-system/b": NOW},
        }

    def test_reads_dynamodb_decimals(self):
        m = GateMemory.from_dict(
            {"held_since": Decimal("1785000000.5"), "last_finished": None, "object_held_since": {"k": Decimal(3)}}
        )
        assert m.held_since == 1785000000.5 and m.object_held_since == {"k": 3.0}

    def test_empty_dict_is_fresh(self):
        assert GateMemory.from_dict({}) == GateMemory()

    @pytest.mark.parametrize(
        "data",
        [
            None,
            [],
            {"held_since": "yesterday"},
            {"held_since": True},
            {"last_finished": float("nan")},
            {"object_held_since": []},
            {"object_held_since": {"k": None}},
            {"object_held_since": {"k": "1"}},
        ],
    )
    def test_garbled_memory_is_a_value_error(self, data):
        with pytest.raises(ValueError, match="gate memory"):
            GateMemory.from_dict(data)

    def test_first_run_counts_holds_from_now(self):
        out = run([busy()], NOW, None)
        assert out.memory.object_held_since == {"Kustomization/flux-system/apps": NOW}

    def test_memory_from_the_future_is_clamped(self):
        m = GateMemory(held_since=NOW + 999, object_held_since={"Kustomization/flux-system/apps": NOW + 999})
        out = run([busy()], NOW, m)
        assert out.memory.held_since == NOW and out.held_for_s == 0


@pytest.mark.parametrize(("settle_s", "max_hold_s"), [(-1, CAP), (SETTLE, 0), (SETTLE, -5)])
def test_bad_settings(settle_s, max_hold_s):
    with pytest.raises(ValueError, match="settle_s"):
        run([], NOW, settle_s=settle_s, max_hold_s=max_hold_s)


def test_garbage_objects_hold_and_never_raise():
    out = run([None, 5, "x", {"kind": "Kustomization", "status": []}], NOW)
    assert out.blocked and len(out.holding) == 4
    json.dumps(out.to_dict())


def test_verdict_dict_is_json():
    out = run([busy(), canary("Failed")], NOW)
    data = json.loads(json.dumps(out.to_dict()))
    assert data["blocked"] is True
    assert data["stalled"][0]["kind"] == "Canary"


class TestGateObjects:
    def test_plain_list(self):
        out = gate_objects([ready("infra"), busy("apps"), canary("WaitingPromotion")])
        assert out == {
            "blocked": True,
            "reasons": [
                {
                    "kind": "Kustomization",
                    "namespace": "flux-system",
                    "name": "apps",
                    "state": "in_progress",
                    "detail": out["reasons"][0]["detail"],
                },
                {
                    "kind": "Canary",
                    "namespace": "apps",
                    "name": "demo-app",
                    "state": "in_progress",
                    "detail": out["reasons"][1]["detail"],
                },
            ],
        }
        assert "Ready=Unknown" in out["reasons"][0]["detail"]
        json.dumps(out)

    def test_kubernetes_list(self):
        data = {"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": ""}, "items": [ready()]}
        assert gate_objects(data) == {"blocked": False, "reasons": []}

    def test_typed_list_from_the_api(self):
        data = {"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "KustomizationList", "items": [busy()]}
        assert gate_objects(data)["blocked"]

    def test_empty(self):
        assert gate_objects([]) == {"blocked": False, "reasons": []}
        assert gate_objects({"kind": "List", "items": None}) == {"blocked": False, "reasons": []}

    def test_garbage_status_is_unknown_not_an_error(self):
        garbage = kustomization([READY_KS])
        garbage["status"]["conditions"] = "Ready"
        out = gate_objects([garbage])
        assert out["blocked"] and out["reasons"][0]["state"] == "unknown"

    @pytest.mark.parametrize(
        ("data", "message"),
        [
            ("objects", "expected a JSON list of objects or a Kubernetes List.*got a JSON string"),
            (None, "got a JSON null"),
            (42, "got a JSON number"),
            ({"kind": "Kustomization", "metadata": {}}, "got an object of kind 'Kustomization'"),
            ({"items": []}, "got an object of kind None"),
            ({"kind": "List", "items": {"a": 1}}, r"List.items must be a JSON list, got a JSON object"),
            ([ready(), "apps"], "item 1: expected a Kubernetes object, got a JSON string"),
            ([[ready()]], "item 0: expected a Kubernetes object, got a JSON list"),
            (
                [{"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository", "metadata": {}}],
                "item 0: apiVersion 'source.toolkit.fluxcd.io/v1' kind 'GitRepository' is not a kind the gate reads",
            ),
            ([{"metadata": {"name": "x"}}], "item 0: apiVersion None kind None"),
        ],
    )
    def test_unreadable_input(self, data, message):
        with pytest.raises(ValueError, match=message):
            gate_objects(data)


def test_gate_and_flux_import_no_outside_library():
    code = (
        "import sys, autoscaler.gitops.gate, autoscaler.gitops.flux\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('boto3', 'botocore', 'requests', 'kubernetes', 'urllib3', 'aws_lambda_powertools'))\n"
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""
