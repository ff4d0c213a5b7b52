"""The placement predicate: may this pod run on this node, given what already runs where.

One implementation of kube-scheduler's filters, used by the scale-up estimate, by the
scale-down "fits elsewhere" check and by the simulator's scheduler, so the three agree by
construction. Pure: plain values in, a verdict out.

Covered (each a kube-scheduler filter plugin, named in the verdict):
- NodeUnschedulable: a cordoned node takes nothing.
- NodeResourcesFit: CPU, memory and the node's allocatable pod count, DaemonSet pods included.
- NodeAffinity: nodeSelector and required node affinity (every operator, matchFields on
  metadata.name).
- TaintToleration: NoSchedule and NoExecute taints must be tolerated.
- NodePorts: hostPort conflicts by protocol, port and address.
- InterPodAffinity: required pod affinity and anti-affinity, both ways (an existing pod's
  anti-affinity keeps the new pod away too), on any topology key.
- PodTopologySpread: DoNotSchedule constraints, with minDomains, nodeAffinityPolicy and
  nodeTaintsPolicy.
- VolumeBinding: a bound volume's node affinity (node-local volumes pin, zonal ones hold to a
  zone).

Not covered: preferred (soft) rules, which never filter; namespaceSelector with labels (the
namespaces are not read; such a term counts every namespace, which is exact for anti-affinity
in the safe direction); dynamic provisioning limits of unbound claims (StorageClass
allowedTopologies); extended resources such as GPUs (a pod that requests one is not placed by
resources, only by its selector, which is how such pods are steered in practice).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from autoscaler.model import (
    NODE_NAME_FIELD,
    HostPort,
    LabelSelector,
    Node,
    NodeSelectorTerm,
    Pod,
    PodAffinityTerm,
    Requirement,
    SpreadConstraint,
    Taint,
    Toleration,
)

# The filters, in kube-scheduler's order; a verdict names the first one that fails.
UNSCHEDULABLE = "NodeUnschedulable"
TAINTS = "TaintToleration"
NODE_AFFINITY = "NodeAffinity"
PORTS = "NodePorts"
RESOURCES = "NodeResourcesFit"
VOLUMES = "VolumeBinding"
SPREAD = "PodTopologySpread"
POD_AFFINITY = "InterPodAffinity"

EXPLAIN = {
    UNSCHEDULABLE: "node(s) were unschedulable",
    RESOURCES: "Insufficient resources",
    NODE_AFFINITY: "node(s) didn't match Pod's node affinity/selector",
    TAINTS: "node(s) had untolerated taint",
    PORTS: "node(s) didn't have free ports for the requested pod ports",
    VOLUMES: "node(s) had volume node affinity conflict",
    POD_AFFINITY: "node(s) didn't match pod affinity/anti-affinity rules",
    SPREAD: "node(s) didn't match pod topology spread constraints",
}


# -- matching ------------------------------------------------------------------------------------

_INT = re.compile(r"[+-]?[0-9]+")
# What the scheduler tests a cordoned node's pods against (NodeUnschedulable).
_UNSCHEDULABLE_TAINT = Taint("node.kubernetes.io/unschedulable", "", "NoSchedule")


def requirement_matches(r: Requirement, value: str | None) -> bool:
    op = r.operator
    if op == "In":
        return value is not None and value in r.values
    if op == "NotIn":
        return value is None or value not in r.values
    if op == "Exists":
        return value is not None
    if op == "DoesNotExist":
        return value is None
    if op in ("Gt", "Lt"):
        if value is None or len(r.values) != 1:
            return False
        have, want = _parse_int64(value), _parse_int64(r.values[0])
        if have is None or want is None:
            return False
        return have > want if op == "Gt" else have < want
    return False  # an operator the API would have refused matches nothing


def _parse_int64(text: str) -> int | None:
    """strconv.ParseInt(text, 10, 64): ASCII digits and a sign, no separators, within int64."""
    if not _INT.fullmatch(text):
        return None
    n = int(text)
    return n if -(2**63) <= n < 2**63 else None


def selector_matches(selector: LabelSelector | None, labels: Mapping[str, str]) -> bool:
    if selector is None:
        return False
    return all(labels.get(k) == v for k, v in selector.match_labels) and all(
        requirement_matches(r, labels.get(r.key)) for r in selector.match_expressions
    )


def term_matches(term: NodeSelectorTerm, name: str, labels: Mapping[str, str]) -> bool:
    return bool(term) and all(
        requirement_matches(r, name if r.key == NODE_NAME_FIELD else labels.get(r.key)) for r in term
    )


def terms_match(terms: Sequence[NodeSelectorTerm], name: str, labels: Mapping[str, str]) -> bool:
    return any(term_matches(t, name, labels) for t in terms)


def node_affinity_matches(pod: Pod, name: str, labels: Mapping[str, str]) -> bool:
    p = pod.placement
    if any(labels.get(k) != v for k, v in p.node_selector):
        return False
    return p.node_affinity is None or terms_match(p.node_affinity, name, labels)


def tolerates(toleration: Toleration, taint: Taint) -> bool:
    if toleration.effect and toleration.effect != taint.effect:
        return False
    if not toleration.key:
        return toleration.operator == "Exists"
    if toleration.key != taint.key:
        return False
    return toleration.operator == "Exists" or toleration.value == taint.value


def untolerated(pod: Pod, taints: Iterable[Taint]) -> Taint | None:
    """The first NoSchedule or NoExecute taint the pod does not tolerate."""
    for taint in taints:
        if taint.effect != "PreferNoSchedule" and not any(tolerates(t, taint) for t in pod.placement.tolerations):
            return taint
    return None


def _ports_conflict(a: HostPort, b: HostPort) -> bool:
    wild = ("", "0.0.0.0", "::")
    return a.port == b.port and a.protocol == b.protocol and (a.ip == b.ip or a.ip in wild or b.ip in wild)


def _term_namespaces_match(term: PodAffinityTerm, owner_namespace: str, namespace: str) -> bool:
    if term.all_namespaces:
        return True
    return namespace in term.namespaces if term.namespaces else namespace == owner_namespace


def term_selects(term: PodAffinityTerm, owner: Pod, other: Pod) -> bool:
    """Does `owner`'s affinity term count `other`?"""
    return _term_namespaces_match(term, owner.namespace, other.namespace) and selector_matches(
        term.selector, other.labels
    )


# -- the room ------------------------------------------------------------------------------------


@dataclass(slots=True)
class Slot:
    """One node as a destination: what is left on it, and what runs there."""

    name: str
    labels: Mapping[str, str]
    taints: tuple[Taint, ...]
    cpu_m: int
    mem_mib: int
    pods_left: int
    unschedulable: bool = False
    pods: list[Pod] = field(default_factory=list)
    ports: list[HostPort] = field(default_factory=list)
    new: bool = False
    """A worker that does not exist yet (the template, launching or to be launched)."""
    zone: str | None = None

    @classmethod
    def of(cls, node: Node) -> Slot:
        return cls(
            node.name,
            node.labels,
            node.taints,
            node.alloc_cpu_m,
            node.alloc_mem_mib,
            node.alloc_pods,
            node.cordoned,
            zone=node.az,
        )


@dataclass(frozen=True, slots=True)
class Move:
    """One pod placed on one slot; undoing it frees exactly what it took."""

    pod: Pod
    slot: Slot


class Room:
    """Every destination node and the pods on it, consumed as pods are placed.

    The scale-down check places a node's pods and undoes the moves if one does not fit; the
    selection keeps them, so two removals never count on the same room.
    """

    def __init__(self) -> None:
        self.slots: dict[str, Slot] = {}
        self._anti_holders: list[Move] = []

    def add(self, slot: Slot, pods: Iterable[Pod] = ()) -> Slot:
        """A destination and the pods that already run (or will surely run) there."""
        self.slots[slot.name] = slot
        for pod in pods:
            self._take(pod, slot)
        return slot

    def withdraw(self, name: str) -> Slot | None:
        """Take a node out of the destinations (it is being removed); its pods stop counting."""
        slot = self.slots.pop(name, None)
        if slot is not None:
            self._anti_holders = [m for m in self._anti_holders if m.slot is not slot]
        return slot

    def restore(self, slot: Slot) -> None:
        self.slots[slot.name] = slot
        self._anti_holders.extend(Move(p, slot) for p in slot.pods if p.placement.anti_affinity)

    def place(self, pod: Pod, slot: Slot) -> Move:
        self._take(pod, slot)
        return Move(pod, slot)

    def undo(self, moves: Iterable[Move]) -> None:
        for move in moves:
            slot, pod = move.slot, move.pod
            slot.pods.remove(pod)
            slot.cpu_m += pod.cpu_m
            slot.mem_mib += pod.mem_mib
            slot.pods_left += 1
            for port in pod.placement.host_ports:
                slot.ports.remove(port)
            if pod.placement.anti_affinity:
                self._anti_holders = [m for m in self._anti_holders if m.pod is not pod or m.slot is not slot]

    def _take(self, pod: Pod, slot: Slot) -> None:
        slot.pods.append(pod)
        slot.cpu_m -= pod.cpu_m
        slot.mem_mib -= pod.mem_mib
        slot.pods_left -= 1
        slot.ports.extend(pod.placement.host_ports)
        if pod.placement.anti_affinity:
            self._anti_holders.append(Move(pod, slot))

    # -- the predicate ---------------------------------------------------------------------------

    def static_failure(self, pod: Pod, slot: Slot) -> str | None:
        """The filters that depend only on the pod and the node, not on other pods."""
        p = pod.placement
        if slot.unschedulable and not any(tolerates(t, _UNSCHEDULABLE_TAINT) for t in p.tolerations):
            return UNSCHEDULABLE
        if untolerated(pod, slot.taints) is not None:
            return TAINTS
        if not node_affinity_matches(pod, slot.name, slot.labels):
            return NODE_AFFINITY
        if p.volume_problem is not None or not all(terms_match(v, slot.name, slot.labels) for v in p.volume_affinity):
            return VOLUMES
        return None

    def failure(self, pod: Pod, slot: Slot) -> str | None:
        """The first filter that rejects `pod` on `slot`, or None if it fits there now."""
        why = self.static_failure(pod, slot)
        if why is not None and why != VOLUMES:
            return why
        p = pod.placement
        if p.host_ports and any(_ports_conflict(a, b) for a in p.host_ports for b in slot.ports):
            return PORTS
        # A request of zero is not compared (fitsRequest): a BestEffort pod fits an over-committed node.
        if (
            (pod.cpu_m > 0 and pod.cpu_m > slot.cpu_m)
            or (pod.mem_mib > 0 and pod.mem_mib > slot.mem_mib)
            or slot.pods_left < 1
        ):
            return RESOURCES
        if why is not None:
            return why
        if p.spread and not self._spread_ok(pod, slot):
            return SPREAD
        if (p.affinity or p.anti_affinity or self._anti_holders) and not self._pod_affinity_ok(pod, slot):
            return POD_AFFINITY
        return None

    def first_fit(self, pod: Pod, slots: Iterable[Slot] | None = None) -> Slot | None:
        for slot in self.slots.values() if slots is None else slots:
            if self.failure(pod, slot) is None:
                return slot
        return None

    def place_all(self, pods: Sequence[Pod], exclude: Slot | None = None) -> tuple[list[Move], Pod | None]:
        """Place every pod (largest first) on the first slot that takes it. On failure nothing is
        placed and the pod that found no room is returned."""
        moves: list[Move] = []
        for pod in sorted(pods, key=lambda q: (q.cpu_m, q.mem_mib), reverse=True):
            slot = self.first_fit(pod, (s for s in self.slots.values() if s is not exclude))
            if slot is None:
                self.undo(reversed(moves))
                return [], pod
            moves.append(self.place(pod, slot))
        return moves, None

    def why_not(self, pod: Pod, slots: Iterable[Slot] | None = None) -> str:
        """kube-scheduler's kind of message: how many nodes failed which filter."""
        counts = Counter(self.failure(pod, s) for s in (self.slots.values() if slots is None else slots))
        counts.pop(None, None)
        total = sum(counts.values())
        parts = ", ".join(f"{n} {EXPLAIN[f]}" for f, n in counts.most_common())
        return f"0/{total} nodes are available: {parts}" if total else "no node to place it on"

    def main_failure(self, pod: Pod, slots: Iterable[Slot] | None = None) -> str | None:
        counts = Counter(self.failure(pod, s) for s in (self.slots.values() if slots is None else slots))
        counts.pop(None, None)
        return counts.most_common(1)[0][0] if counts else None

    # -- inter-pod affinity ----------------------------------------------------------------------

    def _domain_pods(self, key: str, value: str) -> Iterator[Pod]:
        for slot in self.slots.values():
            if slot.labels.get(key) == value:
                yield from slot.pods

    def _pod_affinity_ok(self, pod: Pod, slot: Slot) -> bool:
        p = pod.placement
        for term in p.anti_affinity:
            value = slot.labels.get(term.topology_key)
            if value is not None and any(
                term_selects(term, pod, q) for q in self._domain_pods(term.topology_key, value)
            ):
                return False
        for move in self._anti_holders:
            for term in move.pod.placement.anti_affinity:
                value = move.slot.labels.get(term.topology_key)
                if (
                    value is not None
                    and move.slot.name in self.slots
                    and slot.labels.get(term.topology_key) == value
                    and term_selects(term, move.pod, pod)
                ):
                    return False
        met = True
        for term in p.affinity:
            value = slot.labels.get(term.topology_key)
            if value is None:
                return False  # every term's topology key must be on the node, first pod or not
            if not any(term_selects(term, pod, q) for q in self._domain_pods(term.topology_key, value)):
                met = False
        if met:
            return True
        # The first pod of a group that selects itself (every term) may go anywhere while no pod
        # matching any term runs on a node that has that term's key.
        return all(term_selects(t, pod, pod) for t in p.affinity) and not any(
            t.topology_key in s.labels and term_selects(t, pod, q)
            for t in p.affinity
            for s in self.slots.values()
            for q in s.pods
        )

    # -- topology spread -------------------------------------------------------------------------

    def _spread_ok(self, pod: Pod, slot: Slot) -> bool:
        for c in pod.placement.spread:
            value = slot.labels.get(c.topology_key)
            if value is None:
                return False
            counts = self._spread_counts(pod, c)
            if value not in counts:  # the node itself is not eligible under the policies
                counts[value] = sum(1 for q in slot.pods if self._spread_selects(c, pod, q))
            floor = 0 if len(counts) < c.min_domains else min(counts.values())
            own = 1 if selector_matches(c.selector, pod.labels) else 0
            if counts[value] + own - floor > c.max_skew:
                return False
        return True

    def _spread_selects(self, c: SpreadConstraint, pod: Pod, other: Pod) -> bool:
        return other.namespace == pod.namespace and selector_matches(c.selector, other.labels)

    def _spread_counts(self, pod: Pod, c: SpreadConstraint) -> dict[str, int]:
        counts: dict[str, int] = {}
        keys = [k.topology_key for k in pod.placement.spread]
        for slot in self.slots.values():
            value = slot.labels.get(c.topology_key)
            if value is None or any(k not in slot.labels for k in keys):
                continue
            if c.honor_node_affinity and not node_affinity_matches(pod, slot.name, slot.labels):
                continue
            if c.honor_taints and untolerated(pod, slot.taints) is not None:
                continue
            counts[value] = counts.get(value, 0) + sum(1 for q in slot.pods if self._spread_selects(c, pod, q))
        return counts


def landing_daemonsets(slot: Slot, daemonsets: Iterable[Pod]) -> list[Pod]:
    """The DaemonSet pods the DaemonSet controller would start on this node: its selector and
    affinity match and it tolerates the node's taints (as kube-scheduler checks for them)."""
    return [
        ds
        for ds in daemonsets
        if node_affinity_matches(ds, slot.name, slot.labels) and untolerated(ds, slot.taints) is None
    ]
