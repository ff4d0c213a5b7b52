"""The scheduler: first-fit of pending pods onto nodes by CPU and memory requests and taints."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from node_fleet.stack.kube_api import FakeKube

from .pods import cpu_m, finished, iso, mem_b, requests, running_status, terminating


def schedule(kube: FakeKube, now: float) -> None:
    """Bind pending pods, oldest first, first-fit by requests onto Ready, schedulable, tolerated nodes;
    mark the ones that fit nowhere Unschedulable."""
    nodes = [n for n in kube.objects("nodes") if _schedulable(n)]
    pods = kube.objects("pods")
    free: dict[str, list[int]] = {}
    for node in nodes:
        alloc = node["status"].get("allocatable") or {}
        free[node["metadata"]["name"]] = [cpu_m(alloc.get("cpu", "0")), mem_b(alloc.get("memory", "0"))]
    for pod in pods:
        bound = pod["spec"].get("nodeName")
        if bound in free and not finished(pod):
            cpu, mem = requests(pod)
            free[bound][0] -= cpu
            free[bound][1] -= mem
    pending = [p for p in pods if not p["spec"].get("nodeName") and not terminating(p) and not finished(p)]
    pending.sort(key=lambda p: (p["metadata"].get("creationTimestamp", ""), p["metadata"]["name"]))
    node_count = len(kube.objects("nodes"))
    changed = []
    for pod in pending:
        cpu, mem = requests(pod)
        target = next(
            (
                n["metadata"]["name"]
                for n in nodes
                if _tolerates(pod, n)
                and free[n["metadata"]["name"]][0] >= cpu
                and free[n["metadata"]["name"]][1] >= mem
            ),
            None,
        )
        if target is not None:
            free[target][0] -= cpu
            free[target][1] -= mem
            changed.append(_bind(pod, target, now))
        elif _mark_unschedulable(pod, now, node_count):
            changed.append(pod)
    if changed:
        kube.add(*changed)


def _schedulable(node: Mapping[str, Any]) -> bool:
    if (node.get("spec") or {}).get("unschedulable"):
        return False
    conditions = (node.get("status") or {}).get("conditions") or ()
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _tolerates(pod: Mapping[str, Any], node: Mapping[str, Any]) -> bool:
    tolerations = pod["spec"].get("tolerations") or ()
    for taint in (node.get("spec") or {}).get("taints") or ():
        if taint.get("effect") not in ("NoSchedule", "NoExecute"):
            continue
        if not any(_tolerated(t, taint) for t in tolerations):
            return False
    return True


def _tolerated(toleration: Mapping[str, Any], taint: Mapping[str, Any]) -> bool:
    if toleration.get("effect") and toleration["effect"] != taint.get("effect"):
        return False
    key, operator = toleration.get("key", ""), toleration.get("operator", "Equal")
    if not key:
        return operator == "Exists"
    if key != taint.get("key"):
        return False
    return operator == "Exists" or toleration.get("value", "") == taint.get("value", "")


def _bind(pod: dict[str, Any], node: str, now: float) -> dict[str, Any]:
    pod["spec"]["nodeName"] = node
    pod["status"] = pod.get("status", {}) | running_status(now)
    return pod


def _mark_unschedulable(pod: dict[str, Any], now: float, node_count: int) -> bool:
    """Set PodScheduled=False/Unschedulable (keeping the time it first did); True if it changed."""
    status = pod.setdefault("status", {})
    conditions = status.setdefault("conditions", [])
    for condition in conditions:
        if condition.get("type") == "PodScheduled":
            if condition.get("status") == "False" and condition.get("reason") == "Unschedulable":
                return False
            conditions.remove(condition)
            break
    conditions.append(
        {
            "type": "PodScheduled",
            "status": "False",
            "lastProbeTime": None,
            "lastTransitionTime": iso(now),
            "reason": "Unschedulable",
            "message": f"0/{node_count} nodes are available: insufficient cpu or memory, or untolerated taints.",
        }
    )
    return True
