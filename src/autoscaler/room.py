"""The Room: every destination node with what runs there, and the placement predicate over it
(`Room.failure`, the filters `placement` names), consumed as pods are placed."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Sequence

from autoscaler.model import Pod
from autoscaler.placement import (
    EXPLAIN,
    NODE_AFFINITY,
    POD_AFFINITY,
    PORTS,
    RESOURCES,
    SPREAD,
    TAINTS,
    UNSCHEDULABLE,
    UNSCHEDULABLE_TAINT,
    VOLUMES,
    Move,
    Slot,
    node_affinity_matches,
    ports_conflict,
    selector_matches,
    term_selects,
    terms_match,
    tolerates,
    untolerated,
)
from autoscaler.scheduling import LabelSelector, PodAffinityTerm, SpreadConstraint
from autoscaler.spread_index import Domains, SpreadIndex

_Key = tuple[int, int]
"""(id of a pod object, id of its slot): one placement. A DaemonSet's template pod lands on many slots."""


def _first_label(selector: LabelSelector | None) -> tuple[str, str] | None:
    return selector.match_labels[0] if selector is not None and selector.match_labels else None


class Room:
    """Every destination node and the pods on it, consumed as pods are placed.

    The scale-down check places a node's pods and undoes the moves if one does not fit; the
    selection keeps them, so two removals never count on the same room. Pods are indexed by
    label, and spread constraints by domain, so checks stay cheap on a 1,000-node cluster.
    """

    def __init__(self) -> None:
        self.slots: dict[str, Slot] = {}
        self._where: dict[_Key, tuple[Pod, Slot]] = {}
        self._by_label: dict[tuple[str, str], dict[_Key, None]] | None = None
        self._anti_holders: dict[tuple[str, str], dict[_Key, None]] = {}
        """(topology key, domain) -> the placed pods whose required anti-affinity holds that domain."""
        self._spread: dict[tuple, SpreadIndex] = {}
        self._domains: dict[tuple, Domains] = {}
        self._spread_by_label: dict[tuple[str, str] | None, list[SpreadIndex]] = {}

    def add(self, slot: Slot, pods: Iterable[Pod] = ()) -> Slot:
        """A destination and the pods that already run (or will surely run) there."""
        self.slots[slot.name] = slot
        for domains in self._domains.values():
            domains.node_in(slot, +1)
        for pod in pods:
            self._take(pod, slot)
        return slot

    def withdraw(self, name: str) -> Slot | None:
        """Take a node out of the destinations (it is being removed); its pods stop counting."""
        slot = self.slots.get(name)
        if slot is not None:
            for pod in slot.pods:
                for index in self._indexes_for(pod):
                    index.pod_in(pod, slot, -1)
            for domains in self._domains.values():
                domains.node_in(slot, -1)
            del self.slots[name]
        return slot

    def restore(self, slot: Slot) -> None:
        self.slots[slot.name] = slot
        for domains in self._domains.values():
            domains.node_in(slot, +1)
        for pod in slot.pods:
            for index in self._indexes_for(pod):
                index.pod_in(pod, slot, +1)

    def place(self, pod: Pod, slot: Slot) -> Move:
        self._take(pod, slot)
        return Move(pod, slot)

    def undo(self, moves: Iterable[Move]) -> None:
        for move in moves:
            slot, pod = move.slot, move.pod
            # By identity: equal pods are different pods, and dataclass equality is slow.
            del slot.pods[next(i for i, q in enumerate(slot.pods) if q is pod)]
            slot.cpu_m += pod.cpu_m
            slot.mem_mib += pod.mem_mib
            slot.pods_left += 1
            for port in pod.placement.host_ports:
                slot.ports.remove(port)
            key = (id(pod), id(slot))
            del self._where[key]
            for term in pod.placement.anti_affinity:
                value = slot.labels.get(term.topology_key)
                if value is not None:
                    self._anti_holders[(term.topology_key, value)].pop(key, None)
            if self._by_label is not None:
                for label in pod.labels.items():
                    self._by_label[label].pop(key, None)
            if self._live(slot):  # a withdrawn slot's pods already left the spread counts
                for index in self._indexes_for(pod):
                    index.pod_in(pod, slot, -1)

    def _take(self, pod: Pod, slot: Slot) -> None:
        # Once per pod of the cluster when the destinations are built: kept lean.
        slot.pods.append(pod)
        slot.cpu_m -= pod.cpu_m
        slot.mem_mib -= pod.mem_mib
        slot.pods_left -= 1
        placement = pod.placement
        if placement.host_ports:
            slot.ports.extend(placement.host_ports)
        key = (id(pod), id(slot))
        self._where[key] = (pod, slot)
        for term in placement.anti_affinity:
            value = slot.labels.get(term.topology_key)
            if value is not None:
                self._anti_holders.setdefault((term.topology_key, value), {})[key] = None
        if self._by_label is not None:
            for label in pod.labels.items():
                self._by_label.setdefault(label, {})[key] = None
        if self._spread_by_label:
            for index in self._indexes_for(pod):
                index.pod_in(pod, slot, +1)

    def _indexes_for(self, pod: Pod) -> Iterator[SpreadIndex]:
        if not self._spread_by_label:
            return
        yield from self._spread_by_label.get(None, ())
        for label in pod.labels.items():
            yield from self._spread_by_label.get(label, ())

    def _labels(self) -> dict[tuple[str, str], dict[_Key, None]]:
        """Placed pods by label, built on the first selector asked: a cluster without affinity
        or spread constraints never pays for it."""
        if self._by_label is None:
            self._by_label = {}
            for key, (pod, _) in self._where.items():
                for label in pod.labels.items():
                    self._by_label.setdefault(label, {})[key] = None
        return self._by_label

    def _live(self, slot: Slot) -> bool:
        return self.slots.get(slot.name) is slot

    def _candidates(self, selector: LabelSelector | None) -> Iterator[tuple[Pod, Slot]]:
        """Placed pods that might match `selector` (a superset), on live slots."""
        if selector is None:
            return
        first = _first_label(selector)
        keys = self._labels().get(first, {}) if first is not None else self._where
        for key in keys:
            pod, slot = self._where[key]
            if self._live(slot):
                yield pod, slot

    # -- the predicate ---------------------------------------------------------------------------

    def static_failure(self, pod: Pod, slot: Slot) -> str | None:
        """The filters that depend only on the pod and the node, not on other pods."""
        p = pod.placement
        if slot.unschedulable and not any(tolerates(t, UNSCHEDULABLE_TAINT) for t in p.tolerations):
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
        if p.host_ports and any(ports_conflict(a, b) for a in p.host_ports for b in slot.ports):
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

    def place_all(self, pods: Sequence[Pod]) -> tuple[list[Move], Pod | None]:
        """Place every pod (largest first) on the first slot that takes it. On failure nothing is
        placed and the pod that found no room is returned."""
        moves: list[Move] = []
        for pod in sorted(pods, key=lambda q: (q.cpu_m, q.mem_mib), reverse=True):
            slot = self.first_fit(pod)
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

    # -- inter-pod affinity ----------------------------------------------------------------------

    def _in_domain(self, term: PodAffinityTerm, owner: Pod, slot: Slot) -> bool:
        """Does a pod `owner`'s term selects run in `slot`'s domain of the term's topology key?"""
        value = slot.labels.get(term.topology_key)
        if value is None:
            return False
        return any(
            term_selects(term, owner, q)
            for q, where in self._candidates(term.selector)
            if where.labels.get(term.topology_key) == value
        )

    def _pod_affinity_ok(self, pod: Pod, slot: Slot) -> bool:
        p = pod.placement
        if any(self._in_domain(term, pod, slot) for term in p.anti_affinity):
            return False
        for topology_key, value in slot.labels.items():
            for key in self._anti_holders.get((topology_key, value), ()):
                holder, where = self._where[key]
                if self._live(where) and any(
                    term.topology_key == topology_key and term_selects(term, holder, pod)
                    for term in holder.placement.anti_affinity
                ):
                    return False
        met = True
        for term in p.affinity:
            if term.topology_key not in slot.labels:
                return False  # every term's topology key must be on the node, first pod or not
            if not self._in_domain(term, pod, slot):
                met = False
        if met:
            return True
        # The first pod of a group that selects itself (every term) may go anywhere while no pod
        # matching any term runs on a node that has that term's key.
        return all(term_selects(t, pod, pod) for t in p.affinity) and not any(
            term_selects(t, pod, q)
            for t in p.affinity
            for q, where in self._candidates(t.selector)
            if t.topology_key in where.labels
        )

    # -- topology spread -------------------------------------------------------------------------

    def _spread_index(self, pod: Pod, c: SpreadConstraint) -> SpreadIndex:
        p = pod.placement
        policy = (
            c.topology_key,
            frozenset(k.topology_key for k in p.spread),
            (p.node_selector, p.node_affinity) if c.honor_node_affinity else None,
            p.tolerations if c.honor_taints else None,
        )
        key = (c, pod.namespace, policy)
        index = self._spread.get(key)
        if index is None:
            domains = self._domains.get(policy)
            if domains is None:
                domains = self._domains[policy] = Domains(pod, c)
                for slot in self.slots.values():
                    domains.node_in(slot, +1)
            index = self._spread[key] = SpreadIndex(pod, c, domains)
            self._spread_by_label.setdefault(_first_label(c.selector), []).append(index)
            for q, where in self._candidates(c.selector):
                index.pod_in(q, where, +1)
        return index

    def _spread_ok(self, pod: Pod, slot: Slot) -> bool:
        for c in pod.placement.spread:
            value = slot.labels.get(c.topology_key)
            if value is None:
                return False
            index = self._spread_index(pod, c)
            own = 1 if selector_matches(c.selector, pod.labels) else 0
            if index.counts.get(value, 0) + own - index.floor() > c.max_skew:
                return False
        return True
