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
