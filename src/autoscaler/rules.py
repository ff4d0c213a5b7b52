"""Which pods may move and which nodes may go: the eligibility rules scale-down is planned by
and a drain is checked against again before it terminates, so the two never disagree.

Pure, like the planner: plain values in, a reason (or None) out.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from autoscaler.model import DO_NOT_DISRUPT, SAFE_TO_EVICT, SAFE_TO_EVICT_LOCAL_VOLUMES, Node, NodeVerdict, Pod


def movers(pods: Iterable[Pod]) -> list[Pod]:
    """The pods that would have to move off their node: not DaemonSet or mirror pods."""
    return [p for p in pods if not p.stays]


def pod_blocker(pod: Pod) -> str | None:
    """Why this pod cannot be moved off its node, or None if it can (DaemonSet and mirror pods
    stay with the node and are not asked)."""
    ann = pod.annotations
    if ann.get(SAFE_TO_EVICT) == "false":
        return f"{pod.key} is annotated {SAFE_TO_EVICT}=false"
    if ann.get(DO_NOT_DISRUPT) == "true":
        return f"{pod.key} is annotated {DO_NOT_DISRUPT}=true"
    if ann.get(SAFE_TO_EVICT) == "true":
        return None
    if pod.owner_kind is None:
        return f"{pod.key} has no controller"
    if pod.namespace == "kube-system" and not (pod.has_pdb or pod.pdbs):
        return f"{pod.key} is a kube-system pod without a PodDisruptionBudget"
    if pod.local_storage and not _local_volumes_safe(pod):
        return f"{pod.key} uses local storage"
    if pod.placement.volume_problem is not None:
        return f"{pod.key}: {pod.placement.volume_problem}"
    return None


def first_blocker(pods: Iterable[Pod]) -> str | None:
    """Why the first pod that cannot move cannot; None when all of them can."""
    return next((why for p in pods if (why := pod_blocker(p)) is not None), None)


def node_blocker(node: Node, moving: Iterable[Pod]) -> NodeVerdict | None:
    """Why `node`, with the pods that would move off it, may never be removed; None if it may
    (room and budgets are the planner's to judge)."""
    if node.scale_down_disabled:
        return NodeVerdict(False, "scale_down_disabled", "annotated scale-down-disabled=true")
    why = first_blocker(moving)
    return None if why is None else NodeVerdict(False, "pod_cannot_move", why)


def requested_utilization(node: Node, pods: Sequence[Pod]) -> float:
    """Requests over allocatable, DaemonSet and mirror pods included (they use the node too)."""
    cpu = sum(p.cpu_m for p in pods) / node.alloc_cpu_m if node.alloc_cpu_m else 1.0
    mem = sum(p.mem_mib for p in pods) / node.alloc_mem_mib if node.alloc_mem_mib else 1.0
    return max(cpu, mem)


def _local_volumes_safe(pod: Pod) -> bool:
    """Every local volume is listed in safe-to-evict-local-volumes (Cluster Autoscaler's rule)."""
    # Split on "," and nothing trimmed, as Cluster Autoscaler reads it: " scratch" is not "scratch".
    listed = {v for v in pod.annotations.get(SAFE_TO_EVICT_LOCAL_VOLUMES, "").split(",") if v}
    return bool(pod.local_volumes) and set(pod.local_volumes) <= listed
