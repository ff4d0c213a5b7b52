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
- VolumeBinding and VolumeZone: a bound volume's node affinity (node-local volumes pin, zonal
  ones hold to a zone; a node without any zone or region label takes a zone-labelled volume).

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
    for k, v in selector.match_labels:  # a plain loop: this is the hottest check of a plan
        if labels.get(k) != v:
            return False
    return not selector.match_expressions or all(
        requirement_matches(r, labels.get(r.key)) for r in selector.match_expressions
    )


def term_matches(term: NodeSelectorTerm, name: str, labels: Mapping[str, str]) -> bool:
    return bool(term) and all(
        requirement_matches(r, name if r.key == NODE_NAME_FIELD else labels.get(r.key)) for r in term
    )


def terms_match(terms: Sequence[NodeSelectorTerm], name: str, labels: Mapping[str, str]) -> bool:
    return any(term_matches(t, name, labels) for t in terms)


# The node labels the VolumeZone filter reads.
VOLUME_TOPOLOGY_LABELS = (
    "failure-domain.beta.kubernetes.io/zone",
    "failure-domain.beta.kubernetes.io/region",
    "topology.kubernetes.io/zone",
    "topology.kubernetes.io/region",
)


def volume_zone_terms(requirements: Iterable[Requirement]) -> tuple[NodeSelectorTerm, ...]:
    """A volume's zone and region labels as node terms, ORed, as the VolumeZone filter applies
    them: the node is in one of the volume's values for each, or carries no topology label at
    all (a single-zone cluster whose nodes have none takes any zonal volume)."""
    return (tuple(requirements), tuple(Requirement(k, "DoesNotExist", ()) for k in VOLUME_TOPOLOGY_LABELS))


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
    """HostPortInfo.CheckConflict: an empty hostIP is 0.0.0.0, the only wildcard ("::" is an
    address like any other there), and an empty protocol is TCP; port 0 asks for no host port."""
    wild = ("", "0.0.0.0")  # nosec B104  # hostIP values that bind every address, not a bind
    return (
        a.port == b.port
        and a.port > 0
        and (a.protocol or "TCP") == (b.protocol or "TCP")
        and (a.ip == b.ip or a.ip in wild or b.ip in wild)
    )


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


_Key = tuple[int, int]
"""(id of a pod object, id of its slot): one placement. A DaemonSet's template pod lands on many slots."""


class _Domains:
    """The topology domains of one key that count for a spread constraint, with the number of
    eligible nodes in each; shared by every constraint with the same key and node policies."""

    def __init__(self, owner: Pod, c: SpreadConstraint) -> None:
        self.owner, self.c = owner, c
        p = owner.placement
        # Only nodes with every one of the owner's topology keys count (nodeLabelsMatchSpreadConstraints).
        self.keys = tuple(sorted({k.topology_key for k in p.spread} - {c.topology_key}))
        # Most constraints ask only for the topology key: skip the per-node affinity checks then.
        self.any_node = not (c.honor_node_affinity and (p.node_selector or p.node_affinity is not None)) and not (
            c.honor_taints
        )
        self.nodes: dict[str, int] = {}

    def eligible(self, slot: Slot) -> bool:
        c = self.c
        if c.topology_key not in slot.labels or any(k not in slot.labels for k in self.keys):
            return False
        if self.any_node:
            return True
        if c.honor_node_affinity and not node_affinity_matches(self.owner, slot.name, slot.labels):
            return False
        return not (c.honor_taints and untolerated(self.owner, slot.taints) is not None)

    def node_in(self, slot: Slot, sign: int) -> None:
        if self.eligible(slot):
            domain = slot.labels[self.c.topology_key]
            self.nodes[domain] = self.nodes.get(domain, 0) + sign
            if not self.nodes[domain]:
                del self.nodes[domain]


class _SpreadIndex:
    """Matching pods per topology domain for one spread constraint, as its owner pod sees them:
    kept up to date on every move, so a check costs a lookup rather than a pass over the cluster."""

    def __init__(self, owner: Pod, c: SpreadConstraint, domains: _Domains) -> None:
        self.owner, self.c, self.domains = owner, c, domains
        self.counts: dict[str, int] = {}
        """Domains with at least one matching pod; every other domain counts 0."""
        self.histogram: Counter[int] = Counter()

    def selects(self, pod: Pod) -> bool:
        return pod.namespace == self.owner.namespace and selector_matches(self.c.selector, pod.labels)

    def pod_in(self, pod: Pod, slot: Slot, sign: int) -> None:
        if not (self.domains.eligible(slot) and self.selects(pod)):
            return
        domain = slot.labels[self.c.topology_key]
        before = self.counts.get(domain, 0)
        after = before + sign
        if before:
            self.histogram[before] -= 1
        if after:
            self.histogram[after] += 1
            self.counts[domain] = after
        else:
            del self.counts[domain]

    def floor(self) -> int:
        """The smallest count over the eligible domains (0 below minDomains)."""
        domains = len(self.domains.nodes)
        if domains < self.c.min_domains or len(self.counts) < domains:
            return 0
        return min((n for n, k in self.histogram.items() if k > 0), default=0)


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
        self._spread: dict[tuple, _SpreadIndex] = {}
        self._domains: dict[tuple, _Domains] = {}
        self._spread_by_label: dict[tuple[str, str] | None, list[_SpreadIndex]] = {}

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
        slot.pods.append(pod)
        slot.cpu_m -= pod.cpu_m
        slot.mem_mib -= pod.mem_mib
        slot.pods_left -= 1
        slot.ports.extend(pod.placement.host_ports)
        key = (id(pod), id(slot))
        self._where[key] = (pod, slot)
        if pod.placement.anti_affinity:
            for term in pod.placement.anti_affinity:
                value = slot.labels.get(term.topology_key)
                if value is not None:
                    self._anti_holders.setdefault((term.topology_key, value), {})[key] = None
        if self._by_label is not None:
            for label in pod.labels.items():
                self._by_label.setdefault(label, {})[key] = None
        for index in self._indexes_for(pod):
            index.pod_in(pod, slot, +1)

    def _indexes_for(self, pod: Pod) -> Iterator[_SpreadIndex]:
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

    def _spread_index(self, pod: Pod, c: SpreadConstraint) -> _SpreadIndex:
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
                domains = self._domains[policy] = _Domains(pod, c)
                for slot in self.slots.values():
                    domains.node_in(slot, +1)
            index = self._spread[key] = _SpreadIndex(pod, c, domains)
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


def landing_daemonsets(slot: Slot, daemonsets: Iterable[Pod]) -> list[Pod]:
    """The DaemonSet pods the DaemonSet controller would start on this node: its selector and
    affinity match and it tolerates the node's taints (as kube-scheduler checks for them)."""
    return [
        ds
        for ds in daemonsets
        if node_affinity_matches(ds, slot.name, slot.labels) and untolerated(ds, slot.taints) is None
    ]
