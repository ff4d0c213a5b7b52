"""The placement predicate: may this pod run on this node, given what already runs where.

One implementation of kube-scheduler's filters, used by the scale-up estimate, by the
scale-down "fits elsewhere" check and by the simulator's scheduler, so the three agree by
construction. Pure: plain values in, a verdict out. This module names the filters and holds
what matches a pod to one node; `autoscaler.room.Room` runs them over the whole cluster, where
the other pods count (ports, resources, spread, pod affinity).

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
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from autoscaler.model import Node, Pod
from autoscaler.scheduling import (
    NODE_NAME_FIELD,
    HostPort,
    LabelSelector,
    NodeSelectorTerm,
    PodAffinityTerm,
    Requirement,
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
UNSCHEDULABLE_TAINT = Taint("node.kubernetes.io/unschedulable", "", "NoSchedule")


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


def ports_conflict(a: HostPort, b: HostPort) -> bool:
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


# -- the destinations ------------------------------------------------------------------------------


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


def landing_daemonsets(slot: Slot, daemonsets: Iterable[Pod]) -> list[Pod]:
    """The DaemonSet pods the DaemonSet controller would start on this node: its selector and
    affinity match and it tolerates the node's taints (as kube-scheduler checks for them)."""
    return [
        ds
        for ds in daemonsets
        if node_affinity_matches(ds, slot.name, slot.labels) and untolerated(ds, slot.taints) is None
    ]
