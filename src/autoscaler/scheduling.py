"""What kube-scheduler's filters read of a pod and a node: selectors, taints and tolerations, affinity
terms, topology spread, host ports and the placement a pod's volumes impose. Plain frozen values."""

from __future__ import annotations

from dataclasses import dataclass

HOSTNAME_LABEL = "kubernetes.io/hostname"
ZONE_LABEL = "topology.kubernetes.io/zone"
REGION_LABEL = "topology.kubernetes.io/region"
NODE_NAME_FIELD = "metadata.name"
"""The one field a node selector term's matchFields may name."""


# -- placement: what kube-scheduler's filters read ------------------------------------------------


@dataclass(frozen=True, slots=True)
class Requirement:
    """A NodeSelectorRequirement or LabelSelectorRequirement: In, NotIn, Exists, DoesNotExist, Gt, Lt."""

    key: str
    operator: str
    values: tuple[str, ...] = ()


NodeSelectorTerm = tuple[Requirement, ...]
"""Requirements ANDed; a term with none matches no node, as in the API."""


@dataclass(frozen=True, slots=True)
class LabelSelector:
    """A metav1.LabelSelector: matchLabels and matchExpressions ANDed; an empty one selects all."""

    match_labels: tuple[tuple[str, str], ...] = ()
    match_expressions: tuple[Requirement, ...] = ()


@dataclass(frozen=True, slots=True)
class Taint:
    key: str
    value: str = ""
    effect: str = "NoSchedule"
    """NoSchedule, PreferNoSchedule or NoExecute."""


@dataclass(frozen=True, slots=True)
class Toleration:
    key: str = ""
    """Empty with operator Exists tolerates every taint."""
    operator: str = "Equal"
    value: str = ""
    effect: str = ""
    """Empty matches every effect."""


@dataclass(frozen=True, slots=True)
class PodAffinityTerm:
    """A required pod (anti-)affinity term, its namespaces resolved by the adapter."""

    selector: LabelSelector | None
    """None selects no pod."""
    topology_key: str
    namespaces: frozenset[str] = frozenset()
    """The namespaces whose pods count; empty with `all_namespaces` False means the pod's own."""
    all_namespaces: bool = False
    """namespaceSelector {} (or one we cannot read: namespaces are not listed)."""


@dataclass(frozen=True, slots=True)
class SpreadConstraint:
    """A topologySpreadConstraint with whenUnsatisfiable DoNotSchedule (ScheduleAnyway never filters)."""

    max_skew: int
    topology_key: str
    selector: LabelSelector | None
    """matchLabelKeys already folded in by the adapter; None selects no pod."""
    min_domains: int = 1
    honor_node_affinity: bool = True
    """nodeAffinityPolicy (default Honor): only nodes the pod's selector and affinity allow count."""
    honor_taints: bool = False
    """nodeTaintsPolicy (default Ignore)."""


@dataclass(frozen=True, slots=True)
class HostPort:
    port: int
    protocol: str = "TCP"
    ip: str = ""
    """Empty or 0.0.0.0 binds every address of the node."""


@dataclass(frozen=True, slots=True)
class Placement:
    """Everything besides resources that decides which nodes may run a pod."""

    node_selector: tuple[tuple[str, str], ...] = ()
    node_affinity: tuple[NodeSelectorTerm, ...] | None = None
    """requiredDuringSchedulingIgnoredDuringExecution's terms (ORed); None: no requirement."""
    tolerations: tuple[Toleration, ...] = ()
    host_ports: tuple[HostPort, ...] = ()
    affinity: tuple[PodAffinityTerm, ...] = ()
    anti_affinity: tuple[PodAffinityTerm, ...] = ()
    spread: tuple[SpreadConstraint, ...] = ()
    volume_affinity: tuple[tuple[NodeSelectorTerm, ...], ...] = ()
    """One entry per bound persistent volume: the terms (ORed) a node must match to reach it
    (a PV's nodeAffinity, a zonal volume's zone; a node-local volume names one node)."""
    volume_problem: str | None = None
    """A volume whose placement cannot be known (claim or volume missing or unreadable): the pod
    fits on no node but its own."""


NO_CONSTRAINTS = Placement()
