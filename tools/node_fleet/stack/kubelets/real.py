"""The kubelets' part on a real API server (`RealKube`), where kube-scheduler, the ReplicaSet
controller, the disruption controller and pod GC are the real ones and the fleet runs none of its own.

- Leases: each Node with a running kubelet has its Lease in `kube-node-lease` (owned by the Node,
  40 s, as a kubelet makes it), renewed every few seconds, so the node lifecycle controller keeps
  the Node Ready.
- Pods: a pod bound to such a Node (by kube-scheduler, or created bound) is started: its status
  becomes Running and Ready through the status subresource. A pod being deleted (an eviction, a
  ReplicaSet scaling down) is ended: its containers stop at once, and the kubelet's final delete
  (grace period 0, on the pod's uid) removes it. A pod bound to a Node that is gone stays until
  pod GC removes it (after its 40 s quarantine), where the fake's fleet removes it at once.
- Workloads: `ReplicaSet`s are real apps/v1 ReplicaSets. One placed on given nodes starts as bound
  pods without an owner, which the ReplicaSet controller adopts (it claims the pods its selector
  matches) instead of making its own.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from node_fleet.stack.errors import StackError
from node_fleet.stack.kube_api.resources import PODS
from node_fleet.stack.kube_real import REPLICASETS, RealKube

from .controllers import ReplicaSet
from .pods import finished, running_status

LEASE_NAMESPACE = "kube-node-lease"
LEASE_DURATION_S = 40  # a kubelet's default
RENEW_EVERY_S = 5.0
ADOPTION_S = 30.0


def micro_time(ts: float) -> str:
    """A MicroTime (RFC 3339 with microseconds), as Lease times are written."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class NodeLeases:
    """When each Node's Lease was last renewed (real time: the node lifecycle controller reads it)."""

    def __init__(self) -> None:
        self.renewed: dict[str, float] = {}
        self.uids: dict[str, str] = {}

    def clear(self) -> None:
        self.renewed.clear()
        self.uids.clear()

    def renew(self, kube: RealKube, nodes: Iterable[str]) -> None:
        """Renew the Leases of `nodes` not renewed for RENEW_EVERY_S (a Node that is gone has none)."""
        now = time.time()
        for node in nodes:
            if now - self.renewed.get(node, 0.0) < RENEW_EVERY_S:
                continue
            if node not in self.uids:
                found = kube.get("nodes", node)
                if found is None:
                    continue
                self.uids[node] = found["metadata"]["uid"]
            owner = {"apiVersion": "v1", "kind": "Node", "name": node, "uid": self.uids[node]}
            kube.add(
                {
                    "apiVersion": "coordination.k8s.io/v1",
                    "kind": "Lease",
                    "metadata": {"name": node, "namespace": LEASE_NAMESPACE, "ownerReferences": [owner]},
                    "spec": {
                        "holderIdentity": node,
                        "leaseDurationSeconds": LEASE_DURATION_S,
                        "renewTime": micro_time(now),
                    },
                }
            )
            self.renewed[node] = now


def run_pods(kube: RealKube, pods: Iterable[Mapping[str, Any]], nodes: Iterable[str], now: float) -> None:
    """Start the pods bound to `nodes` that are not running yet, and end the ones being deleted."""
    serving = set(nodes)
    for pod in pods:
        meta = pod["metadata"]
        if pod["spec"].get("nodeName") not in serving:
            continue
        if meta.get("deletionTimestamp"):
            body = {"gracePeriodSeconds": 0, "preconditions": {"uid": meta["uid"]}}
            kube.request("DELETE", kube.path(PODS, meta["namespace"], meta["name"]), body, ok=(200, 404, 409))
        elif (pod.get("status") or {}).get("phase") != "Running" and not finished(pod):
            kube.apply_status({"apiVersion": "v1", "kind": "Pod", "metadata": meta, "status": running_status(now)})


def replicaset(rs: ReplicaSet, template: Mapping[str, Any]) -> dict[str, Any]:
    """The apps/v1 ReplicaSet of a workload; `template` is one of its pods (as the fleet builds them)."""
    spec = {k: v for k, v in template["spec"].items() if k != "nodeName"}
    meta = {k: template["metadata"][k] for k in ("labels", "annotations") if template["metadata"].get(k)}
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {"name": rs.owner_name, "namespace": rs.namespace, "labels": dict(rs.labels)},
        "spec": {
            "replicas": rs.replicas,
            "selector": {"matchLabels": dict(rs.labels)},
            "template": {"metadata": meta, "spec": spec},
        },
    }


def start_workload(
    kube: RealKube, rs: ReplicaSet, template: Mapping[str, Any], pods: Sequence[dict[str, Any]], now: float
) -> None:
    """Create the workload's ReplicaSet (`template`: one of its pods). With `pods` bound to nodes,
    those run first, unowned, and the ReplicaSet adopts them; returns once it owns exactly them."""
    for pod in pods:
        pod["metadata"].pop("ownerReferences", None)
        pod["status"] = running_status(now)
    kube.add(*pods)
    if pods:
        # The controller's informers must have seen them before it first counts its pods, or it
        # makes pods of its own (and then deletes the surplus): a watch event takes milliseconds.
        time.sleep(0.3)
    kube.add(replicaset(rs, template))
    if pods:
        wanted = {p["metadata"]["name"] for p in pods}
        deadline = time.monotonic() + ADOPTION_S
        while _owned(kube, rs) != wanted:
            if time.monotonic() > deadline:
                raise StackError(f"ReplicaSet {rs.namespace}/{rs.owner_name} did not adopt exactly {sorted(wanted)}")
            time.sleep(0.05)


def scale(kube: RealKube, rs: ReplicaSet) -> None:
    path = kube.path(REPLICASETS, rs.namespace, rs.owner_name)
    kube.request("PATCH", path, {"spec": {"replicas": rs.replicas}}, content_type="application/merge-patch+json")


def _owned(kube: RealKube, rs: ReplicaSet) -> set[str]:
    """The live pods of the namespace that match the workload's labels, if every one of them is
    owned by its ReplicaSet (an empty set while one is not)."""
    path = kube.path(PODS, rs.namespace)
    selector = ",".join(f"{k}={v}" for k, v in rs.labels.items())
    pods = kube.request("GET", path, params={"labelSelector": selector})["items"]
    live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
    if not all(rs.owns(p) for p in live):
        return set()
    return {p["metadata"]["name"] for p in live}
