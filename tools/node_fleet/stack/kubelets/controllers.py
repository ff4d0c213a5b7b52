"""The controllers: ReplicaSets that keep their pods' count, and the pod garbage collection
(a terminating pod, or one bound to a Node that is gone, is removed)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from node_fleet.stack.kube_api import FakeKube, objects

from .pods import finished, iso, owner_name, terminating


@dataclass
class ReplicaSet:
    """A Deployment's ReplicaSet, as far as the simulation needs one."""

    name: str
    namespace: str
    replicas: int
    cpu_m: int
    mem_mib: int
    usage: float | None = None
    """Share of its CPU (and memory) requests a pod uses; None: the fleet's usage_factor."""
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    grace_period_s: int = 30

    @property
    def owner_name(self) -> str:
        return f"{self.name}-6b8f7c9d5"

    def owns(self, pod: Mapping[str, Any]) -> bool:
        return pod["metadata"].get("namespace") == self.namespace and owner_name(pod) == self.owner_name


class ReplicaSetController:
    """Every ReplicaSet by (namespace, name), and the serial that names their new pods."""

    def __init__(self) -> None:
        self.sets: dict[tuple[str, str], ReplicaSet] = {}
        self._serial = 0

    def new_pod(self, rs: ReplicaSet, now: float, node: str | None) -> dict[str, Any]:
        self._serial += 1
        pod = objects.pod(
            f"{rs.owner_name}-{self._serial:05d}",
            rs.namespace,
            node=node,
            cpu=f"{rs.cpu_m}m",
            memory=f"{rs.mem_mib}Mi",
            owner=("ReplicaSet", rs.owner_name),
            labels=rs.labels,
            annotations=rs.annotations or None,
            created=iso(now),
            grace_period_s=rs.grace_period_s,
        )
        if node is None:
            # Not tried by the scheduler yet: no condition at all.
            pod["status"] = {"phase": "Pending", "qosClass": "Burstable"}
        return pod

    def reconcile(self, kube: FakeKube, now: float) -> None:
        """Replace the pods that went away and remove the ones over the replica count."""
        if not self.sets:
            return
        pods = kube.objects("pods")
        created: list[dict[str, Any]] = []
        for rs in self.sets.values():
            live = [p for p in pods if rs.owns(p) and not terminating(p) and not finished(p)]
            missing = rs.replicas - len(live)
            if missing > 0:
                created.extend(self.new_pod(rs, now, None) for _ in range(missing))
            elif missing < 0:
                # Unbound pods go first, then the newest (as the ReplicaSet controller ranks them).
                live.sort(
                    key=lambda p: (p["metadata"].get("creationTimestamp", ""), p["metadata"]["name"]), reverse=True
                )
                live.sort(key=lambda p: bool(p["spec"].get("nodeName")))
                for pod in live[:-missing]:
                    kube.remove("pods", pod["metadata"]["name"], rs.namespace)
        if created:
            kube.add(*created)


def collect_pods(kube: FakeKube) -> None:
    """Remove terminating pods (their containers stop at once) and pods bound to a Node that is gone."""
    nodes = {n["metadata"]["name"] for n in kube.objects("nodes")}
    for pod in kube.objects("pods"):
        meta = pod["metadata"]
        bound = (pod.get("spec") or {}).get("nodeName")
        if meta.get("deletionTimestamp") or (bound and bound not in nodes):
            kube.remove("pods", meta["name"], meta.get("namespace", ""))
