"""A Flux-like object set on the fake API server, whose status a scenario changes.

Three Kustomizations as the flux2-kustomize-helm-example lays them out (flux-system, then
infrastructure, then apps, each `dependsOn` the one before), with the status kustomize-controller
(v1) writes: Ready=True/ReconciliationSucceeded, lastAppliedRevision, and status.history (one
snapshot per applied digest, whose firstReconciled is when that change was first applied: the gate's
settle window counts from it).

`start_reconcile(name)` is what kustomize-controller shows while it applies a new revision:
Ready=Unknown and Reconciling=True, both with reason Progressing, and lastAttemptedRevision set;
the gate holds scale-down. `finish_reconcile(name)` is the end of it: Ready=True with the new
revision applied, Reconciling gone, and a new history snapshot first reconciled now.

And the demo app's Flagger Canary (apps/demo-app, as gitops/apps/demo-app/canary.yaml declares it),
promoted long ago. `canary_step(phase)` writes what Flagger writes as its analysis of a new revision
goes through `PROMOTION` (or `ROLLBACK`): status.phase, the iteration count and failed checks, the
Promoted condition. The phases are Flagger's own (the Canary CRD's status.phase enum; a test holds them
to it): the gate holds in every one but Succeeded and Failed.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from typing import Any

from node_fleet.stack.kubelets import iso

GROUP = "kustomize.toolkit.fluxcd.io"
NAMESPACE = "flux-system"
CHAIN = ("flux-system", "infrastructure", "apps")
FIRST_REVISION = "main@sha1:5a1c0de1f0c2b7e9d4a6f8e0b3c2d1a0f9e8d7c6"

CANARY_GROUP = "flagger.app"
CANARY_NAMESPACE, CANARY_NAME = "apps", "demo-app"
PROMOTION = ("Progressing", "Promoting", "Finalising", "Succeeded")
"""A new revision that passes its checks: analysed, promoted, the old pods scaled away."""
ROLLBACK = ("Progressing", "Failed")
"""A new revision that fails its checks `threshold` times: the primary keeps serving."""
# Promoted condition of each phase, as Flagger's MakeStatusConditions sets it: (status, reason).
_PROMOTED = {
    "Initialized": ("True", "Initialized"),
    "Succeeded": ("True", "Succeeded"),
    "Failed": ("False", "Failed"),
}


def _digest(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def revision(n: int) -> str:
    """A plausible Git revision for the n-th commit of the demo."""
    return f"main@sha1:{hashlib.sha1(f'demo-{n}'.encode(), usedforsecurity=False).hexdigest()}"


class FakeFlux:
    """The Kustomizations on `kube` (a FakeKube with the Flux kinds installed); `clock` stamps them."""

    def __init__(self, kube: Any, clock: Callable[[], float] = time.time) -> None:
        self.kube = kube
        self.clock = clock
        self._commits = 1
        self.in_progress: set[str] = set()

    def seed(self, applied_ago_s: float = 3600.0) -> None:
        """Every Kustomization Ready, its revision applied `applied_ago_s` ago (outside any settle window)."""
        at = self.clock() - applied_ago_s
        for i, name in enumerate(CHAIN):
            self.kube.add(self._object(name, FIRST_REVISION, at, depends_on=CHAIN[i - 1] if i else None))
        self.kube.add(_canary(iso(at)))
        self.canary_step("Succeeded", at=at)

    def canary(self) -> dict[str, Any]:
        found = self.kube.get("canaries", CANARY_NAME, CANARY_NAMESPACE, CANARY_GROUP)
        if found is None:
            raise KeyError(f"Canary {CANARY_NAMESPACE}/{CANARY_NAME} is not there")
        return found

    @property
    def canary_phase(self) -> str:
        return self.canary()["status"]["phase"]

    def advance_canary(self) -> str:
        """The next phase of `PROMOTION` (a new analysis from a phase at rest); returns it."""
        phase = self.canary_phase
        following = PROMOTION[PROMOTION.index(phase) + 1] if phase in PROMOTION[:-1] else PROMOTION[0]
        self.canary_step(following)
        return following

    def canary_step(self, phase: str, failed_checks: int = 0, at: float | None = None) -> None:
        """Flagger moves the canary to `phase`; during Progressing each call is one more iteration."""
        obj = self.canary()
        status = obj.get("status", {})
        when = iso(self.clock() if at is None else at)
        iterations = status.get("iterations", 0) + 1 if phase == "Progressing" else 0
        promoted, reason = _PROMOTED.get(phase, ("Unknown", phase))
        message = {
            "Progressing": "New revision detected, progressing canary analysis.",
            "Succeeded": "Canary analysis completed successfully, promotion finished.",
            "Failed": "Canary analysis failed, Deployment scaled to zero.",
        }.get(phase, f"Canary {phase.lower()}.")
        obj["status"] = {
            "phase": phase,
            "failedChecks": failed_checks,
            "canaryWeight": 0,
            "iterations": iterations,
            "lastAppliedSpec": status.get("lastAppliedSpec", "5f7b6c8d9"),
            "lastTransitionTime": when,
            "conditions": [
                {
                    "type": "Promoted",
                    "status": promoted,
                    "reason": reason,
                    "message": message,
                    "lastTransitionTime": when,
                    "lastUpdateTime": when,
                }
            ],
        }
        self.kube.add(obj)

    def get(self, name: str) -> dict[str, Any]:
        found = self.kube.get("kustomizations", name, NAMESPACE, GROUP)
        if found is None:
            raise KeyError(f"Kustomization {NAMESPACE}/{name} is not there")
        return found

    def start_reconcile(self, name: str = "apps") -> str:
        """kustomize-controller starts applying a new revision of `name`; returns the revision."""
        obj = self.get(name)
        self._commits += 1
        new = revision(self._commits)
        now = iso(self.clock())
        status = obj["status"]
        status["lastAttemptedRevision"] = new
        generation = obj["metadata"].get("generation", 1)
        status["conditions"] = [
            {
                "type": "Reconciling",
                "status": "True",
                "reason": "Progressing",
                "message": f"Building manifests for revision {new} with a timeout of 5m0s",
                "lastTransitionTime": now,
                "observedGeneration": generation,
            },
            {
                "type": "Ready",
                "status": "Unknown",
                "reason": "Progressing",
                "message": "Reconciliation in progress",
                "lastTransitionTime": now,
                "observedGeneration": generation,
            },
        ]
        self.kube.add(obj)
        self.in_progress.add(name)
        return new

    def finish_reconcile(self, name: str = "apps") -> None:
        """The reconcile of `name` succeeded: its new revision is applied, now."""
        obj = self.get(name)
        status = obj["status"]
        new = status.get("lastAttemptedRevision") or revision(self._commits)
        now_ts = self.clock()
        now = iso(now_ts)
        generation = obj["metadata"].get("generation", 1)
        status["lastAppliedRevision"] = new
        status["observedGeneration"] = generation
        status["conditions"] = [_ready(new, now, generation)]
        status["history"] = [_snapshot(name, new, now, now), *status.get("history", [])][:5]
        self.kube.add(obj)
        self.in_progress.discard(name)

    def _object(self, name: str, rev: str, at: float, depends_on: str | None) -> dict[str, Any]:
        when = iso(at)
        spec: dict[str, Any] = {
            "interval": "10m",
            "retryInterval": "1m",
            "timeout": "5m",
            "path": f"./gitops/{'clusters/demo' if name == 'flux-system' else name}",
            "prune": True,
            "wait": True,
            "sourceRef": {"kind": "GitRepository", "name": "flux-system"},
        }
        if depends_on:
            spec["dependsOn"] = [{"name": depends_on}]
        return {
            "apiVersion": f"{GROUP}/v1",
            "kind": "Kustomization",
            "metadata": {"name": name, "namespace": NAMESPACE, "generation": 1, "creationTimestamp": when},
            "spec": spec,
            "status": {
                "observedGeneration": 1,
                "lastAppliedRevision": rev,
                "lastAttemptedRevision": rev,
                "conditions": [_ready(rev, when, 1)],
                "history": [_snapshot(name, rev, when, when)],
            },
        }


def _canary(created: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{CANARY_GROUP}/v1beta1",
        "kind": "Canary",
        "metadata": {"name": CANARY_NAME, "namespace": CANARY_NAMESPACE, "generation": 1, "creationTimestamp": created},
        "spec": {
            "provider": "kubernetes",
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": CANARY_NAME},
            "service": {"port": 80, "targetPort": 9898},
            "analysis": {"interval": "1m", "iterations": 5, "threshold": 2},
        },
    }


def _ready(rev: str, when: str, generation: int) -> dict[str, Any]:
    return {
        "type": "Ready",
        "status": "True",
        "reason": "ReconciliationSucceeded",
        "message": f"Applied revision: {rev}",
        "lastTransitionTime": when,
        "observedGeneration": generation,
    }


def _snapshot(name: str, rev: str, first: str, last: str) -> dict[str, Any]:
    return {
        "digest": _digest(f"{name}@{rev}"),
        "firstReconciled": first,
        "lastReconciled": last,
        "lastReconciledDuration": "2.1s",
        "lastReconciledStatus": "ReconciliationSucceeded",
        "totalReconciliations": 1,
        "metadata": {"revision": rev},
    }
