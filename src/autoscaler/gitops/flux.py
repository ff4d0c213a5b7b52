"""Verdict for one Flux Kustomization, HelmRelease or Flagger Canary: may capacity go while it is so?

Pure: the objects come in as the JSON the Kubernetes API returns (dicts), nothing is fetched here.

The rules follow what kustomize-controller (v1), helm-controller (v2) and Flagger write in status, not
generic kstatus: kstatus calls a Kustomization that keeps failing "in progress" forever (it stays
Reconciling=True with a stale status.observedGeneration), which would hold scale-down forever, and calls
every Canary "current". Here:

- in progress (holds): a requested reconcile not yet handled, a generation not yet attempted,
  Ready=Unknown, Reconciling=True with reason Progressing, an active canary phase;
- failed (does not hold): Ready=False after an attempt, or while a HelmRelease waits for a prerequisite
  (a dependency, its source); the controller retries on its own, and nothing runs in between;
- stalled (does not hold, alarm): Stalled=True, or a canary rolled back; nothing happens until someone
  changes something;
- waiting (does not hold): a canary paused at its confirm-rollout gate, before anything runs;
- suspended (ignored); ready (does not hold), also during a HelmRelease's periodic check;
- unknown (holds): the status cannot be read. Wrong types anywhere give unknown; nothing here raises.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from autoscaler.gitops.status_fields import (
    Unreadable,
    as_boolean,
    as_integer,
    as_mapping,
    as_text,
    as_time,
    describe,
    identity,
    read_conditions,
)

REQUESTED_AT = "reconcile.fluxcd.io/requestedAt"
FORCE_AT = "reconcile.fluxcd.io/forceAt"
RESET_AT = "reconcile.fluxcd.io/resetAt"


@dataclass(frozen=True, slots=True)
class Resource:
    """A kind the gate reads, with what CustomObjectsApi.list_cluster_custom_object needs to list it."""

    group: str
    version: str
    plural: str
    kind: str


KUSTOMIZATION = Resource("kustomize.toolkit.fluxcd.io", "v1", "kustomizations", "Kustomization")
HELM_RELEASE = Resource("helm.toolkit.fluxcd.io", "v2", "helmreleases", "HelmRelease")
CANARY = Resource("flagger.app", "v1beta1", "canaries", "Canary")
RESOURCES = (KUSTOMIZATION, HELM_RELEASE, CANARY)
_BY_KIND = {r.kind: r for r in RESOURCES}

# Flagger phases (status.phase), as pkg/apis/flagger/v1beta1/status.go declares them. An analysis is
# running, or paused at the promotion gate with the canary serving, in these: evicting pods then skews its
# metrics and can roll the release back.
CANARY_ACTIVE = frozenset({"Initializing", "Progressing", "Promoting", "Finalising", "Terminating", "WaitingPromotion"})
# "Waiting": the rollout is paused at its confirm-rollout hooks, which Flagger runs before it scales the
# canary up (docs: webhooks, confirm-rollout). Nothing of the new revision runs yet.
CANARY_PAUSED = frozenset({"Waiting"})
CANARY_AT_REST = frozenset({"Initialized", "Succeeded", "Terminated"})
CANARY_FAILED = "Failed"

# Ready=False reasons helm-controller sets before it applies anything (internal/controller/
# helmrelease_controller.go, reconcileRelease: dependencies, source, values, chart, client), while
# Reconciling stays True/Progressing ("Fulfilling prerequisites") until its retry. Nothing is rolled out.
HELM_PREREQUISITE_REASONS = frozenset(
    {
        "DependencyNotReady",
        "ArtifactFailed",
        "SourceNotReady",
        "ValuesError",
        "ChartMutateError",
        "RESTClientError",
        "FactoryError",
    }
)


class State(enum.StrEnum):
    IN_PROGRESS = "in_progress"
    FAILED = "failed"
    """Failed and waiting for the controller's retry: nothing is running now."""
    STALLED = "stalled"
    """Terminal until someone changes something: a human must act."""
    WAITING = "waiting"
    """Paused at a gate before anything of the new revision runs (a canary's confirm-rollout)."""
    SUSPENDED = "suspended"
    READY = "ready"
    UNKNOWN = "unknown"

    @property
    def holds(self) -> bool:
        return self in (State.IN_PROGRESS, State.UNKNOWN)


@dataclass(frozen=True, slots=True)
class Verdict:
    kind: str
    namespace: str
    name: str
    state: State
    detail: str
    """The fact that decided the state, in words."""
    changed_at: float | None = None
    """When the object last rolled something out (epoch seconds), for the settle window; None if unknown.
    Periodic drift checks that change nothing do not move it."""

    @property
    def holds(self) -> bool:
        return self.state.holds

    @property
    def key(self) -> str:
        return f"{self.kind}/{self.namespace}/{self.name}"

    def to_dict(self) -> dict[str, str]:
        return {
            "kind": self.kind,
            "namespace": self.namespace,
            "name": self.name,
            "state": self.state.value,
            "detail": self.detail,
        }


def supported(obj: Any) -> Resource | None:
    """The Resource this object is an instance of, or None (by kind, and by group when apiVersion is set).

    A kustomize config file (kustomize.config.k8s.io Kustomization) is not a Flux Kustomization.
    """
    if not isinstance(obj, Mapping):
        return None
    resource = _BY_KIND.get(obj.get("kind")) if isinstance(obj.get("kind"), str) else None
    if resource is None:
        return None
    api_version = obj.get("apiVersion")
    if api_version is None:
        return resource
    if not isinstance(api_version, str) or api_version.split("/", 1)[0] != resource.group:
        return None
    return resource


def verdict(obj: Any) -> Verdict:
    """Decide one object's state. Never raises: whatever cannot be read gives State.UNKNOWN."""
    kind, namespace, name = identity(obj)
    resource = supported(obj)
    if resource is None:
        return Verdict(kind, namespace, name, State.UNKNOWN, f"not a kind the gate reads ({describe(obj)})")
    try:
        if resource is CANARY:
            state, detail, changed_at = _canary(obj)
        else:
            state, detail, changed_at = _flux(obj, resource)
    except Unreadable as exc:
        return Verdict(kind, namespace, name, State.UNKNOWN, f"status unreadable: {exc}")
    return Verdict(kind, namespace, name, state, detail, changed_at)


def verdicts(objects: Sequence[Any]) -> tuple[Verdict, ...]:
    return tuple(verdict(obj) for obj in objects)


# --- Kustomization and HelmRelease ------------------------------------------------------------------


def _flux(obj: Mapping[str, Any], resource: Resource) -> tuple[State, str, float | None]:
    metadata = as_mapping(obj.get("metadata"), "metadata")
    as_text(metadata.get("name"), "metadata.name", required=True)
    spec = as_mapping(obj.get("spec", {}), "spec")
    annotations = as_mapping(metadata.get("annotations", {}), "metadata.annotations")
    generation = as_integer(metadata.get("generation"), "metadata.generation")

    # The controller leaves status as it was while suspended: it says nothing about now.
    if as_boolean(spec.get("suspend"), "spec.suspend"):
        return State.SUSPENDED, "spec.suspend is true: Flux does not reconcile it", None

    raw_status = obj.get("status")
    if raw_status is None or raw_status == {}:
        return State.UNKNOWN, "no status: the controller has not reported on it yet", None
    status = as_mapping(raw_status, "status")
    conditions = read_conditions(status.get("conditions"))
    observed = as_integer(status.get("observedGeneration"), "status.observedGeneration")
    changed_at = _changed_at(status, resource)

    pending = _pending_request(annotations, status, resource)
    if pending:
        return State.IN_PROGRESS, pending, changed_at

    # A failed attempt leaves status.observedGeneration behind but stamps its own generation on the
    # conditions it sets, so the newest generation anywhere in status is the last one attempted.
    attempted = [g for g in (observed, *(c.observed_generation for c in conditions.values())) if g is not None]
    if resource is HELM_RELEASE:
        last = as_integer(status.get("lastAttemptedGeneration"), "status.lastAttemptedGeneration")
        if last is not None:
            attempted.append(last)
    if generation is not None and (not attempted or generation > max(attempted)):
        seen = f"observedGeneration {observed}" if observed is not None else "no observedGeneration"
        return State.IN_PROGRESS, f"generation {generation} not attempted yet ({seen})", changed_at

    stalled = conditions.get("Stalled")
    if stalled is not None and stalled.status == "True":
        return State.STALLED, f"Stalled=True{stalled.why}: no retry until the source or spec changes", changed_at

    ready = conditions.get("Ready")
    if ready is None:
        reconciling = conditions.get("Reconciling")
        if reconciling is not None and reconciling.status == "True":
            return State.IN_PROGRESS, f"Reconciling=True{reconciling.why}, no Ready condition yet", changed_at
        return State.UNKNOWN, "no Ready condition", changed_at
    if ready.status == "Unknown":
        return State.IN_PROGRESS, f"Ready=Unknown{ready.why}", changed_at
    reconciling = conditions.get("Reconciling")
    if reconciling is not None and reconciling.status == "True" and reconciling.reason == "Progressing":
        if resource is HELM_RELEASE and ready.status == "True":
            # helm-controller marks Ready Unknown before any release action; left True, this is the
            # periodic check of a release that is in sync.
            return State.READY, f"Ready=True{ready.why}, periodic check: Reconciling=True{reconciling.why}", changed_at
        if resource is HELM_RELEASE and ready.status == "False" and ready.reason in HELM_PREREQUISITE_REASONS:
            return (
                State.FAILED,
                f"Ready=False{ready.why}: waiting for a prerequisite, nothing applied; the controller retries later",
                changed_at,
            )
        return State.IN_PROGRESS, f"Reconciling=True{reconciling.why}", changed_at
    if ready.status == "False":
        return State.FAILED, f"Ready=False{ready.why}; the controller retries later", changed_at
    if ready.status == "True":
        return State.READY, f"Ready=True{ready.why}", changed_at
    raise Unreadable(f"Ready status {ready.status!r} is not True, False or Unknown")


def _pending_request(annotations: Mapping[str, Any], status: Mapping[str, Any], resource: Resource) -> str:
    """Why a reconcile is coming because someone asked for one (e.g. `flux reconcile`), or ''."""
    requested = as_text(annotations.get(REQUESTED_AT), f"annotation {REQUESTED_AT}")
    handled = as_text(status.get("lastHandledReconcileAt"), "status.lastHandledReconcileAt")
    if requested is not None and requested != handled:
        return f"reconcile requested at {requested} not handled yet (last handled: {handled or 'never'})"
    if resource is HELM_RELEASE:
        # helm-controller acts on forceAt/resetAt only when they equal requestedAt, so a lone one
        # brings no reconcile and must not hold.
        for annotation, field in ((FORCE_AT, "lastHandledForceAt"), (RESET_AT, "lastHandledResetAt")):
            value = as_text(annotations.get(annotation), f"annotation {annotation}")
            last = as_text(status.get(field), f"status.{field}")
            if value is not None and value == requested and value != last:
                return f"{annotation.split('/')[1]} {value} not handled yet (last handled: {last or 'never'})"
    return ""


def _changed_at(status: Mapping[str, Any], resource: Resource) -> float | None:
    """When the object last rolled out something new (not when it last re-checked the same thing)."""
    history = status.get("history")
    if history is None:
        return None
    if not isinstance(history, list):
        raise Unreadable("status.history is not a list")
    entries = [as_mapping(e, "status.history[]") for e in history]
    if not entries:
        return None
    if resource is HELM_RELEASE:
        # One snapshot per Helm release (install, upgrade, rollback); lastDeployed is when it ran.
        times = [as_time(e.get("lastDeployed"), "status.history[].lastDeployed") for e in entries]
        return max((t for t in times if t is not None), default=None)
    # Kustomization: one snapshot per applied digest; a drift check of the same digest only moves
    # lastReconciled, so the newest snapshot's firstReconciled is when its change was first applied.
    newest, newest_at = None, None
    for entry in entries:
        at = as_time(entry.get("lastReconciled"), "status.history[].lastReconciled")
        if at is not None and (newest_at is None or at > newest_at):
            newest, newest_at = entry, at
    if newest is None:
        return None
    return as_time(newest.get("firstReconciled"), "status.history[].firstReconciled")


# --- Flagger Canary -------------------------------------------------------------------------------


def _canary(obj: Mapping[str, Any]) -> tuple[State, str, float | None]:
    metadata = as_mapping(obj.get("metadata"), "metadata")
    as_text(metadata.get("name"), "metadata.name", required=True)
    spec = as_mapping(obj.get("spec", {}), "spec")
    if as_boolean(spec.get("suspend"), "spec.suspend"):
        return State.SUSPENDED, "spec.suspend is true: Flagger does not run its analysis", None
    raw_status = obj.get("status")
    if raw_status is None or raw_status == {}:
        return State.UNKNOWN, "no status: Flagger has not reported on it yet", None
    status = as_mapping(raw_status, "status")
    phase = as_text(status.get("phase"), "status.phase")
    changed = as_time(status.get("lastTransitionTime"), "status.lastTransitionTime")
    progress = _canary_progress(status)
    if not phase:
        return State.UNKNOWN, "no phase: Flagger has not initialized it yet", None
    if phase in CANARY_ACTIVE:
        gate = " (waiting at a manual gate)" if phase.startswith("Waiting") else ""
        return State.IN_PROGRESS, f"canary phase {phase}{gate}{progress}", None
    if phase in CANARY_PAUSED:
        return State.WAITING, f"canary phase {phase}: paused at confirm-rollout, the canary is not scaled up", changed
    if phase == CANARY_FAILED:
        return (
            State.STALLED,
            "canary phase Failed: analysis failed and the release was rolled back; Flagger waits for a new revision",
            changed,
        )
    if phase in CANARY_AT_REST:
        return State.READY, f"canary phase {phase}", changed
    raise Unreadable(f"canary phase {phase!r} is not one Flagger sets")


def _canary_progress(status: Mapping[str, Any]) -> str:
    parts = []
    for field, label in (("canaryWeight", "weight"), ("iterations", "iteration"), ("failedChecks", "failed")):
        value = status.get(field)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise Unreadable(f"status.{field} is not a number")
        parts.append(f"{label} {value:g}")
    return f" ({', '.join(parts)})" if parts else ""
