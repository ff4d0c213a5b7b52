"""Table tests: one Flux object's status, as the controllers write it, to a verdict."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from autoscaler.gitops.flux import CANARY, HELM_RELEASE, KUSTOMIZATION, RESOURCES, State, supported, verdict
from flux_objects import DELETE, HANDLED_BEFORE, NOW, REQUESTED, REV, canary, cond, helm_release, iso, kustomization

READY_KS = cond("Ready", "True", "ReconciliationSucceeded", f"Applied revision: {REV}")
HEALTHY = cond("Healthy", "True", "Succeeded", "Health check passed in 12.3s")
PROGRESSING_READY = cond("Ready", "Unknown", "Progressing", "Reconciliation in progress")
RECONCILING = cond("Reconciling", "True", "Progressing", f"Detecting drift for revision {REV} with a timeout of 3m0s")
RETRYING = cond("Reconciling", "True", "ProgressingWithRetry", f"Detecting drift for revision {REV}")


A = "metadata__annotations__reconcile.fluxcd.io/requestedAt"

KUSTOMIZATION_CASES = [
    # (desc, object, state, words the detail must contain)
    ("ready", kustomization([READY_KS, HEALTHY]), State.READY, "ReconciliationSucceeded"),
    (
        "reconcile in progress",
        kustomization([PROGRESSING_READY, RECONCILING]),
        State.IN_PROGRESS,
        "Ready=Unknown (Progressing",
    ),
    (
        "health checks running",
        kustomization(
            [
                PROGRESSING_READY,
                cond("Reconciling", "True", "Progressing", "Running health checks for revision with a timeout of 3m0s"),
                cond("Healthy", "Unknown", "Progressing", "Running health checks"),
            ]
        ),
        State.IN_PROGRESS,
        "Ready=Unknown",
    ),
    (
        "Reconciling=True/Progressing alone holds",
        kustomization([READY_KS, RECONCILING]),
        State.IN_PROGRESS,
        "Reconciling=True (Progressing",
    ),
    (
        # kstatus calls this InProgress forever: stale observedGeneration and Reconciling=True.
        "failed, waiting for a retry (observedGeneration stale, Ready stamped with the new generation)",
        kustomization(
            [
                cond("Ready", "False", "ReconciliationFailed", "Deployment/apps/demo-app dry-run failed", gen=4),
                cond("Reconciling", "True", "ProgressingWithRetry", "Detecting drift", gen=4),
            ],
            generation=4,
            observed=3,
        ),
        State.FAILED,
        "ReconciliationFailed",
    ),
    (
        "health check failed",
        kustomization(
            [
                cond("Ready", "False", "HealthCheckFailed", "health check failed after 3m0s: timeout waiting for"),
                cond("Healthy", "False", "HealthCheckFailed", "timeout waiting for: [Deployment/apps/demo-app]"),
                RETRYING,
            ]
        ),
        State.FAILED,
        "HealthCheckFailed",
    ),
    (
        "dependency not ready",
        kustomization(
            [
                cond("Ready", "False", "DependencyNotReady", "dependency 'flux-system/infrastructure' is not ready"),
                RETRYING,
            ]
        ),
        State.FAILED,
        "DependencyNotReady",
    ),
    (
        "build failed is retried too",
        kustomization([cond("Ready", "False", "BuildFailed", "kustomize build failed: accumulating resources")]),
        State.FAILED,
        "BuildFailed",
    ),
    (
        "stalled (terminal)",
        kustomization(
            [
                cond("Ready", "False", "InvalidCELExpression", "failed to parse expression"),
                cond("Stalled", "True", "InvalidCELExpression", "failed to parse expression"),
            ]
        ),
        State.STALLED,
        "InvalidCELExpression",
    ),
    (
        "stalled on access denied",
        kustomization(
            [
                cond("Ready", "False", "AccessDenied", "cross-namespace references are not allowed"),
                cond("Stalled", "True", "AccessDenied", "cross-namespace references are not allowed"),
            ]
        ),
        State.STALLED,
        "AccessDenied",
    ),
    (
        "suspended (status left as it was)",
        kustomization([PROGRESSING_READY, RECONCILING], spec__suspend=True),
        State.SUSPENDED,
        "spec.suspend",
    ),
    ("suspend false is not suspended", kustomization([READY_KS], spec__suspend=False), State.READY, "Ready=True"),
    (
        "requested but not handled",
        kustomization([READY_KS], **{A: REQUESTED}),
        State.IN_PROGRESS,
        f"reconcile requested at {REQUESTED}",
    ),
    (
        "requested but never handled",
        kustomization([READY_KS], **{A: REQUESTED, "status__lastHandledReconcileAt": DELETE}),
        State.IN_PROGRESS,
        "last handled: never",
    ),
    (
        "requested and handled",
        kustomization([READY_KS], **{A: REQUESTED, "status__lastHandledReconcileAt": REQUESTED}),
        State.READY,
        "Ready=True",
    ),
    (
        "requested, handled, and the reconcile failed",
        kustomization(
            [cond("Ready", "False", "ArtifactFailed", "source 'GitRepository/flux-system' not found"), RETRYING],
            **{A: REQUESTED, "status__lastHandledReconcileAt": REQUESTED},
        ),
        State.FAILED,
        "ArtifactFailed",
    ),
    (
        "new generation not attempted yet",
        kustomization([READY_KS], generation=4, observed=3),
        State.IN_PROGRESS,
        "generation 4 not attempted yet (observedGeneration 3)",
    ),
    (
        "new generation on a stalled object: the change brings a reconcile",
        kustomization(
            [
                cond("Ready", "False", "AccessDenied", "denied"),
                cond("Stalled", "True", "AccessDenied", "denied"),
            ],
            generation=4,
            observed=3,
        ),
        State.IN_PROGRESS,
        "generation 4",
    ),
    (
        "failure without per-condition generations cannot be told from a new generation: hold",
        kustomization(
            [cond("Ready", "False", "ReconciliationFailed", "apply failed", gen=None)], generation=4, observed=3
        ),
        State.IN_PROGRESS,
        "generation 4 not attempted yet",
    ),
    (
        "first reconcile not started: generation 1, no observedGeneration",
        kustomization([], generation=1, status__observedGeneration=DELETE),
        State.IN_PROGRESS,
        "no observedGeneration",
    ),
    ("missing status", kustomization(None), State.UNKNOWN, "no status"),
    ("empty status", kustomization([], status={}), State.UNKNOWN, "no status"),
    ("no Ready condition", kustomization([HEALTHY]), State.UNKNOWN, "no Ready condition"),
    (
        "Reconciling before any Ready condition",
        kustomization([RECONCILING]),
        State.IN_PROGRESS,
        "no Ready condition yet",
    ),
    (
        "a kustomize config file is not a Flux Kustomization",
        kustomization([READY_KS], apiVersion="kustomize.config.k8s.io/v1beta1"),
        State.UNKNOWN,
        "not a kind the gate reads",
    ),
]


HR_READY = cond(
    "Ready",
    "True",
    "UpgradeSucceeded",
    "Helm upgrade succeeded for release monitoring/kube-prometheus-stack.v4 with chart kube-prometheus-stack@77.0.1",
)
HR_RELEASED = cond("Released", "True", "UpgradeSucceeded", "Helm upgrade succeeded")
F = "metadata__annotations"

HELM_RELEASE_CASES = [
    ("ready after upgrade", helm_release([HR_READY, HR_RELEASED]), State.READY, "UpgradeSucceeded"),
    (
        "ready after install",
        helm_release([cond("Ready", "True", "InstallSucceeded", "Helm install succeeded")]),
        State.READY,
        "InstallSucceeded",
    ),
    (
        "ready after tests",
        helm_release([cond("Ready", "True", "TestSucceeded", "Helm test succeeded")]),
        State.READY,
        "TestSucceeded",
    ),
    (
        "upgrade in progress",
        helm_release(
            [
                cond("Ready", "Unknown", "Progressing", "Running 'upgrade' action with timeout of 10m0s", gen=4),
                cond("Reconciling", "True", "Progressing", "Running 'upgrade' action with timeout of 10m0s", gen=4),
                HR_RELEASED,
            ],
            generation=4,
            observed=3,
        ),
        State.IN_PROGRESS,
        "Running 'upgrade' action",
    ),
    (
        "install in progress",
        helm_release(
            [
                cond("Ready", "Unknown", "Progressing", "Running 'install' action with timeout of 10m0s"),
                cond("Reconciling", "True", "Progressing", "Running 'install' action with timeout of 10m0s"),
            ]
        ),
        State.IN_PROGRESS,
        "Running 'install' action",
    ),
    (
        "upgrade failed, remediation retries later",
        helm_release(
            [
                cond(
                    "Ready", "False", "UpgradeFailed", "Helm upgrade failed: timed out waiting for the condition", gen=4
                ),
                cond("Released", "False", "UpgradeFailed", "Helm upgrade failed", gen=4),
                cond("Reconciling", "True", "ProgressingWithRetry", "Detecting drift", gen=4),
            ],
            generation=4,
            observed=3,
            status__upgradeFailures=1,
            status__lastAttemptedGeneration=4,
        ),
        State.FAILED,
        "UpgradeFailed",
    ),
    (
        "failed: lastAttemptedGeneration says the generation was tried",
        helm_release(
            [cond("Ready", "False", "InstallFailed", "Helm install failed", gen=None)],
            generation=5,
            observed=4,
            status__lastAttemptedGeneration=5,
        ),
        State.FAILED,
        "InstallFailed",
    ),
    (
        "retries exhausted",
        helm_release(
            [
                cond("Ready", "False", "UpgradeFailed", "Helm upgrade failed"),
                cond("Stalled", "True", "RetriesExceeded", "Failed to upgrade after 3 attempt(s)"),
            ]
        ),
        State.STALLED,
        "RetriesExceeded",
    ),
    (
        "no rollback target",
        helm_release(
            [
                cond("Ready", "False", "UpgradeFailed", "Helm upgrade failed"),
                cond("Stalled", "True", "MissingRollbackTarget", "Failed to perform remediation: missing target"),
            ]
        ),
        State.STALLED,
        "MissingRollbackTarget",
    ),
    (
        "suspended",
        helm_release([HR_READY], spec__suspend=True),
        State.SUSPENDED,
        "spec.suspend",
    ),
    (
        "requested but not handled",
        helm_release([HR_READY], **{F: {"reconcile.fluxcd.io/requestedAt": REQUESTED}}),
        State.IN_PROGRESS,
        "reconcile requested at",
    ),
    (
        "force requested with requestedAt, not handled yet",
        helm_release(
            [HR_READY],
            **{
                F: {"reconcile.fluxcd.io/requestedAt": REQUESTED, "reconcile.fluxcd.io/forceAt": REQUESTED},
                "status__lastHandledReconcileAt": REQUESTED,
                "status__lastHandledForceAt": HANDLED_BEFORE,
            },
        ),
        State.IN_PROGRESS,
        f"forceAt {REQUESTED} not handled yet",
    ),
    (
        "reset requested with requestedAt, not handled yet",
        helm_release(
            [HR_READY],
            **{
                F: {"reconcile.fluxcd.io/requestedAt": REQUESTED, "reconcile.fluxcd.io/resetAt": REQUESTED},
                "status__lastHandledReconcileAt": REQUESTED,
            },
        ),
        State.IN_PROGRESS,
        "resetAt",
    ),
    (
        "a lone forceAt (not equal to requestedAt) brings no reconcile",
        helm_release([HR_READY], **{F: {"reconcile.fluxcd.io/forceAt": REQUESTED}}),
        State.READY,
        "Ready=True",
    ),
    (
        "force handled",
        helm_release(
            [HR_READY],
            **{
                F: {"reconcile.fluxcd.io/requestedAt": REQUESTED, "reconcile.fluxcd.io/forceAt": REQUESTED},
                "status__lastHandledReconcileAt": REQUESTED,
                "status__lastHandledForceAt": REQUESTED,
            },
        ),
        State.READY,
        "Ready=True",
    ),
    (
        "new generation not attempted",
        helm_release([HR_READY], generation=4, observed=3),
        State.IN_PROGRESS,
        "generation 4 not attempted yet",
    ),
    # helm-controller internal/controller/helmrelease_controller.go, reconcileRelease: every reconcile first
    # marks Reconciling=True/Progressing "Fulfilling prerequisites"; only a release action marks Ready Unknown.
    (
        "periodic check of a release in sync",
        helm_release([HR_READY, HR_RELEASED, cond("Reconciling", "True", "Progressing", "Fulfilling prerequisites")]),
        State.READY,
        "periodic check",
    ),
    # reconcileRelease: checkDependencies fails -> Ready=False DependencyNotReady, requeue after 30 s, with
    # Reconciling left True/Progressing; nothing is applied meanwhile.
    (
        "waiting for a dependency that is not ready",
        helm_release(
            [
                cond("Ready", "False", "DependencyNotReady", "dependency 'flux-system/cert-manager' is not ready"),
                cond("Reconciling", "True", "Progressing", "Fulfilling prerequisites"),
            ]
        ),
        State.FAILED,
        "waiting for a prerequisite",
    ),
    # reconcileRelease: isSourceReady false -> Ready=False "SourceNotReady", requeue at the interval.
    (
        "source not ready",
        helm_release(
            [
                cond("Ready", "False", "SourceNotReady", "HelmChart 'monitoring/monitoring-kps' is not ready"),
                cond("Reconciling", "True", "Progressing", "Fulfilling prerequisites"),
            ]
        ),
        State.FAILED,
        "SourceNotReady",
    ),
    # reconcileRelease: the chart artifact cannot be loaded -> Ready=False ArtifactFailed.
    (
        "chart fetch failed",
        helm_release(
            [
                cond("Ready", "False", "ArtifactFailed", "Could not load chart: 404 Not Found"),
                cond("Reconciling", "True", "Progressing", "Fulfilling prerequisites"),
            ]
        ),
        State.FAILED,
        "ArtifactFailed",
    ),
    (
        "a release action failing mid-way still holds while it retries at once",
        helm_release(
            [
                cond("Ready", "False", "UpgradeFailed", "Helm upgrade failed"),
                cond("Reconciling", "True", "Progressing", "Running 'rollback' action with timeout of 10m0s"),
            ]
        ),
        State.IN_PROGRESS,
        "Running 'rollback' action",
    ),
]

CANARY_CASES = [
    ("", State.UNKNOWN, "no phase"),
    ("Initializing", State.IN_PROGRESS, "canary phase Initializing"),
    ("Initialized", State.READY, "canary phase Initialized"),
    # Flagger runs confirm-rollout hooks before it scales the canary up (pkg/controller/scheduler.go).
    ("Waiting", State.WAITING, "paused at confirm-rollout"),
    ("Progressing", State.IN_PROGRESS, "canary phase Progressing (weight 20, iteration 0, failed 0)"),
    ("WaitingPromotion", State.IN_PROGRESS, "manual gate"),
    ("Promoting", State.IN_PROGRESS, "canary phase Promoting"),
    ("Finalising", State.IN_PROGRESS, "canary phase Finalising"),
    ("Succeeded", State.READY, "canary phase Succeeded"),
    ("Failed", State.STALLED, "rolled back"),
    ("Terminating", State.IN_PROGRESS, "canary phase Terminating"),
    ("Terminated", State.READY, "canary phase Terminated"),
]


@pytest.mark.parametrize(
    ("desc", "obj", "state", "detail"),
    KUSTOMIZATION_CASES + HELM_RELEASE_CASES,
    ids=[c[0] for c in KUSTOMIZATION_CASES + HELM_RELEASE_CASES],
)
def test_flux_object_verdict(desc, obj, state, detail):
    v = verdict(obj)
    assert (v.state, v.holds) == (state, state in (State.IN_PROGRESS, State.UNKNOWN)), desc
    assert detail in v.detail, f"{desc}: {v.detail!r}"
    assert (v.kind, v.namespace, v.name) == (obj.get("kind"), obj["metadata"]["namespace"], obj["metadata"]["name"])


@pytest.mark.parametrize(("phase", "state", "detail"), CANARY_CASES, ids=[c[0] or "empty" for c in CANARY_CASES])
def test_canary_phase(phase, state, detail):
    v = verdict(canary(phase))
    assert v.state is state
    assert detail in v.detail


def test_every_phase_flagger_declares_is_covered():
    # The Canary CRD's status.phase enum, as Flagger declares it.
    declared = {"", "Initializing", "Initialized", "Waiting", "Progressing", "WaitingPromotion", "Promoting"}
    declared |= {"Finalising", "Succeeded", "Failed", "Terminating", "Terminated"}
    assert {c[0] for c in CANARY_CASES} == declared


@pytest.mark.parametrize(
    ("desc", "obj", "state", "detail"),
    [
        ("missing status", canary(None), State.UNKNOWN, "no status"),
        ("suspended", canary("Progressing", spec__suspend=True), State.SUSPENDED, "spec.suspend"),
        ("phase Flagger never sets", canary("Dancing"), State.UNKNOWN, "'Dancing' is not one Flagger sets"),
        (
            "progress fields absent",
            canary("Progressing", status={"phase": "Progressing"}),
            State.IN_PROGRESS,
            "Progressing",
        ),
    ],
    ids=lambda x: x if isinstance(x, str) else "",
)
def test_canary_other_shapes(desc, obj, state, detail):
    v = verdict(obj)
    assert v.state is state, desc
    assert detail in v.detail, desc


class TestChangedAt:
    """When each kind last rolled out something: drives the gate's settle window."""

    def test_kustomization_uses_first_reconcile_of_newest_digest(self):
        obj = kustomization([READY_KS])
        obj["status"]["history"].append(
            {
                "digest": "sha256:old",
                "firstReconciled": iso(NOW - 90000),
                "lastReconciled": iso(NOW - 4000),
                "lastReconciledDuration": "3s",
                "lastReconciledStatus": "ReconciliationSucceeded",
                "totalReconciliations": 40,
            }
        )
        assert verdict(obj).changed_at == NOW - 3600

    def test_drift_checks_do_not_move_it(self):
        a, b = kustomization([READY_KS]), kustomization([READY_KS])
        b["status"]["history"][0]["lastReconciled"] = iso(NOW - 5)
        b["status"]["history"][0]["totalReconciliations"] = 13
        assert verdict(a).changed_at == verdict(b).changed_at == NOW - 3600

    def test_helm_release_uses_last_deployed(self):
        assert verdict(helm_release([HR_READY])).changed_at == NOW - 7200

    def test_canary_at_rest_uses_its_transition(self):
        assert verdict(canary("Succeeded")).changed_at == NOW - 900
        assert verdict(canary("Progressing")).changed_at is None

    def test_no_history(self):
        assert verdict(kustomization([READY_KS], status__history=DELETE)).changed_at is None
        assert verdict(kustomization([READY_KS], status__history=[])).changed_at is None


# Wrong types anywhere: the verdict is unknown, and nothing raises.
GARBAGE = [
    ("object is a list", lambda: [kustomization([READY_KS])]),
    ("object is null", lambda: None),
    ("kind is a number", lambda: kustomization([READY_KS], kind=7)),
    ("apiVersion is a list", lambda: kustomization([READY_KS], apiVersion=["v1"])),
    ("metadata is a string", lambda: kustomization([READY_KS], metadata="apps")),
    ("name missing", lambda: kustomization([READY_KS], metadata__name=DELETE)),
    ("name is a number", lambda: kustomization([READY_KS], metadata__name=12)),
    ("generation is a string", lambda: kustomization([READY_KS], metadata__generation="3")),
    ("generation is a boolean", lambda: kustomization([READY_KS], metadata__generation=True)),
    ("annotations is a list", lambda: kustomization([READY_KS], metadata__annotations=["a"])),
    ("requestedAt is a number", lambda: kustomization([READY_KS], **{A: 1785000000})),
    ("spec is a string", lambda: kustomization([READY_KS], spec="x")),
    ("suspend is a string", lambda: kustomization([READY_KS], spec__suspend="true")),
    ("status is a string", lambda: kustomization([READY_KS], status="Ready")),
    ("status is a list", lambda: kustomization([READY_KS], status=[READY_KS])),
    ("observedGeneration is a float", lambda: kustomization([READY_KS], status__observedGeneration=3.0)),
    ("lastHandledReconcileAt is a number", lambda: kustomization([READY_KS], status__lastHandledReconcileAt=5)),
    ("conditions is an object", lambda: kustomization([READY_KS], status__conditions={"Ready": "True"})),
    ("condition is a string", lambda: kustomization(["Ready=True"])),
    ("condition without type", lambda: kustomization([READY_KS], status__conditions__0__type=DELETE)),
    ("condition type is a number", lambda: kustomization([READY_KS], status__conditions__0__type=1)),
    ("condition status is a boolean", lambda: kustomization([READY_KS], status__conditions__0__status=True)),
    ("condition status missing", lambda: kustomization([READY_KS], status__conditions__0__status=DELETE)),
    ("Ready status not True/False/Unknown", lambda: kustomization([READY_KS], status__conditions__0__status="Yes")),
    ("condition reason is a list", lambda: kustomization([READY_KS], status__conditions__0__reason=["x"])),
    ("condition message is a number", lambda: kustomization([READY_KS], status__conditions__0__message=0)),
    (
        "condition observedGeneration is a string",
        lambda: kustomization([READY_KS], status__conditions__0__observedGeneration="3"),
    ),
    (
        "condition lastTransitionTime is not a time",
        lambda: kustomization([READY_KS], status__conditions__0__lastTransitionTime="yesterday"),
    ),
    ("history is an object", lambda: kustomization([READY_KS], status__history={"digest": "x"})),
    ("history entry is a string", lambda: kustomization([READY_KS], status__history=["x"])),
    (
        "history time is a number",
        lambda: kustomization([READY_KS], status__history__0__firstReconciled=1785000000),
    ),
    (
        "history time is garbage",
        lambda: kustomization([READY_KS], status__history__0__lastReconciled="2026-13-45T99:00:00Z"),
    ),
    ("HR lastDeployed garbage", lambda: helm_release([HR_READY], status__history__0__lastDeployed="soon")),
    ("HR lastAttemptedGeneration string", lambda: helm_release([HR_READY], status__lastAttemptedGeneration="3")),
    ("HR forceAt is a number", lambda: helm_release([HR_READY], **{F: {"reconcile.fluxcd.io/forceAt": 1}})),
    ("HR lastHandledForceAt is a list", lambda: helm_release([HR_READY], status__lastHandledForceAt=[])),
    ("canary phase is a number", lambda: canary("Progressing", status__phase=3)),
    ("canary status is a string", lambda: canary("Progressing", status="Progressing")),
    ("canary weight is a string", lambda: canary("Progressing", status__canaryWeight="20%")),
    ("canary weight is NaN", lambda: canary("Progressing", status__canaryWeight=float("nan"))),
    ("canary iterations is a boolean", lambda: canary("Progressing", status__iterations=True)),
    ("canary transition time is a number", lambda: canary("Succeeded", status__lastTransitionTime=17)),
    ("canary suspend is a number", lambda: canary("Succeeded", spec__suspend=1)),
    ("canary metadata missing", lambda: canary("Succeeded", metadata=DELETE)),
]


@pytest.mark.parametrize(("desc", "make"), GARBAGE, ids=[g[0] for g in GARBAGE])
def test_garbage_gives_unknown(desc, make):
    v = verdict(make())
    assert v.state is State.UNKNOWN, f"{desc}: {v}"
    assert v.holds
    json.dumps(v.to_dict())  # names stay printable even when they were garbage


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)


def paths(obj: Any, prefix: tuple = ()) -> list[tuple]:
    found = [prefix]
    if isinstance(obj, dict):
        for key, value in obj.items():
            found += paths(value, (*prefix, key))
    elif isinstance(obj, list):
        for index, value in enumerate(obj):
            found += paths(value, (*prefix, index))
    return found


BASES = [
    kustomization([READY_KS, HEALTHY], **{A: REQUESTED}),
    kustomization([PROGRESSING_READY, RECONCILING]),
    helm_release([HR_READY, HR_RELEASED], **{F: {"reconcile.fluxcd.io/forceAt": REQUESTED}}),
    canary("Progressing"),
    canary("Succeeded"),
]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(base=st.sampled_from(BASES), pick=st.integers(min_value=0), junk=JSON)
def test_junk_at_any_path_never_raises(base, pick, junk):
    obj = copy.deepcopy(base)
    where = paths(obj)[1:]
    path = where[pick % len(where)]
    target = obj
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = junk
    v = verdict(obj)
    assert v.state in State
    json.dumps(v.to_dict())


@settings(max_examples=200, deadline=None)
@given(obj=JSON, kind=st.sampled_from([r.kind for r in RESOURCES]))
def test_random_json_never_raises(obj, kind):
    if isinstance(obj, dict):
        obj["kind"] = kind
    v = verdict(obj)
    assert v.state in State


def test_supported_kinds_name_current_api_versions():
    assert (KUSTOMIZATION.group, KUSTOMIZATION.version, KUSTOMIZATION.plural) == (
        "kustomize.toolkit.fluxcd.io",
        "v1",
        "kustomizations",
    )
    assert (HELM_RELEASE.version, HELM_RELEASE.plural) == ("v2", "helmreleases")
    assert (CANARY.group, CANARY.version, CANARY.plural) == ("flagger.app", "v1beta1", "canaries")
    assert supported({"kind": "Kustomization"}) is KUSTOMIZATION  # apiVersion may be left out
    assert supported({"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization"}) is None
    assert supported({"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository"}) is None


def test_long_messages_are_cut():
    obj = kustomization([cond("Ready", "False", "HealthCheckFailed", "x" * 5000)])
    assert len(verdict(obj).detail) < 300
