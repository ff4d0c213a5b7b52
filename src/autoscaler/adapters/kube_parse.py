"""Kubernetes objects, as raw JSON, into the model: what kube-scheduler's filters read.

One parser for two readers: the adapter (`kube.py`), which lists each kind from its endpoint
and parses a page at a time, and `node-fleet plan`, which hands `parse_cluster` the items of
`kubectl get nodes,pods,pdb,pv,pvc,daemonsets,storageclasses -A -o json`. The client's
per-object models are never built: plain dicts in, frozen model values out.

Volumes are resolved here, so the core sees placement only: a pod's PersistentVolumeClaims
(and generic ephemeral volumes, whose claim is `<pod>-<volume>`) lead to their bound
PersistentVolumes and from there to node terms (`Placement.volume_affinity`). K3s's
local-path provisioner writes node affinity on its volumes, so they pin their pods to a node.

Bad input raises ValueError naming the object and, where it can, the field.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any, NamedTuple, TypeVar

import msgspec

from autoscaler.model import (
    NO_CONSTRAINTS,
    NODE_NAME_FIELD,
    ZONE_LABEL,
    HostPort,
    LabelSelector,
    Node,
    NodeSelectorTerm,
    Placement,
    Pod,
    PodAffinityTerm,
    Requirement,
    SpreadConstraint,
    Taint,
    Toleration,
)
from autoscaler.placement import selector_matches, volume_zone_terms

T = TypeVar("T")

CONTROL_PLANE_LABELS = ("node-role.kubernetes.io/control-plane", "node-role.kubernetes.io/master")
FINISHED_PHASES = ("Succeeded", "Failed")
MIRROR_ANNOTATION = "kubernetes.io/config.mirror"
LOCAL_PATH_PROVISIONER = "rancher.io/local-path"
PROVISIONER_ANNOTATIONS = ("volume.kubernetes.io/storage-provisioner", "volume.beta.kubernetes.io/storage-provisioner")
NODE_ADDRESS_TYPES = ("InternalIP", "Hostname", "InternalDNS")
OPERATORS = frozenset(("In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt"))
# A volume's legacy topology labels, by the node label the VolumeZone filter compares them with
# (the kubelet puts the GA labels on every node; a value may list several zones joined by "__").
VOLUME_ZONE_LABELS = {
    "topology.kubernetes.io/zone": ZONE_LABEL,
    "failure-domain.beta.kubernetes.io/zone": ZONE_LABEL,
    "topology.kubernetes.io/region": "topology.kubernetes.io/region",
    "failure-domain.beta.kubernetes.io/region": "topology.kubernetes.io/region",
}


def _daemon_toleration(key: str, effect: str) -> Toleration:
    return Toleration(key=key, operator="Exists", effect=effect)


# What the DaemonSet controller adds to every pod it makes (AddOrUpdateDaemonPodTolerations in
# kubernetes/pkg/controller/daemon/util), so a DaemonSet pod lands on a node under pressure,
# cordoned or not ready yet; network-unavailable only for host-network pods.
DAEMON_TOLERATIONS = (
    _daemon_toleration("node.kubernetes.io/not-ready", "NoExecute"),
    _daemon_toleration("node.kubernetes.io/unreachable", "NoExecute"),
    _daemon_toleration("node.kubernetes.io/disk-pressure", "NoSchedule"),
    _daemon_toleration("node.kubernetes.io/memory-pressure", "NoSchedule"),
    _daemon_toleration("node.kubernetes.io/pid-pressure", "NoSchedule"),
    _daemon_toleration("node.kubernetes.io/unschedulable", "NoSchedule"),
)
HOST_NETWORK_DAEMON_TOLERATION = _daemon_toleration("node.kubernetes.io/network-unavailable", "NoSchedule")


# ---------------------------------------------------------------------------------------------
# Quantities and times


_QUANTITY = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+))(?:([eE][+-]?\d+)|(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E))?$")
_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {"n": -9, "u": -6, "m": -3, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
MIB = 2**20


def parse_quantity(text: str | int | float) -> Decimal:
    """A Kubernetes resource quantity ("100m", "1.5Gi", "2e3", "1k") as an exact Decimal.

    Raises ValueError for text that is not a quantity."""
    if isinstance(text, int | float) and not isinstance(text, bool):
        return Decimal(str(text))
    m = _QUANTITY.match(text.strip()) if isinstance(text, str) else None
    if m is None:
        raise ValueError(f"{text!r} is not a Kubernetes quantity")
    number, exponent, suffix = m.groups()
    try:
        value = Decimal(number + (exponent or ""))
    except InvalidOperation:
        raise ValueError(f"{text!r} is not a Kubernetes quantity") from None
    if suffix in _BINARY:
        return value * _BINARY[suffix]
    if suffix:
        return value.scaleb(_DECIMAL[suffix])
    return value


@functools.lru_cache(maxsize=4096)
def cpu_millis(text: str, *, round_up: bool = True) -> int:
    """CPU in millicores: rounded up for a request (as the scheduler does), down for capacity."""
    value = parse_quantity(text) * 1000
    return math.ceil(value) if round_up else math.floor(value)


@functools.lru_cache(maxsize=4096)
def mem_bytes(text: str, *, round_up: bool = True) -> int:
    value = parse_quantity(text)
    return math.ceil(value) if round_up else math.floor(value)


def _mib(byte_count: int, *, round_up: bool) -> int:
    return -(-byte_count // MIB) if round_up else byte_count // MIB


def parse_time(text: str | None) -> float | None:
    """An RFC 3339 timestamp from the API as epoch seconds."""
    if not text:
        return None
    return datetime.fromisoformat(text).timestamp()


# ---------------------------------------------------------------------------------------------
# Selectors and placement


def _requirement(raw: Mapping[str, Any], where: str) -> Requirement:
    operator = raw.get("operator")
    if operator not in OPERATORS:
        raise ValueError(f"{where}: operator {operator!r} is not one of {', '.join(sorted(OPERATORS))}")
    return Requirement(raw["key"], operator, tuple(raw.get("values") or ()))


def node_selector_terms(terms: Iterable[Mapping[str, Any]], where: str) -> tuple[NodeSelectorTerm, ...]:
    """nodeSelectorTerms (ORed); matchFields may only name metadata.name, as the API enforces."""
    out = []
    for term in terms:
        reqs = [_requirement(r, f"{where}.matchExpressions") for r in term.get("matchExpressions") or ()]
        for r in term.get("matchFields") or ():
            if r.get("key") != NODE_NAME_FIELD:
                raise ValueError(f"{where}.matchFields: key {r.get('key')!r} is not {NODE_NAME_FIELD}")
            reqs.append(_requirement(r, f"{where}.matchFields"))
        out.append(tuple(reqs))
    return tuple(out)


def label_selector(raw: Mapping[str, Any] | None, where: str) -> LabelSelector | None:
    """A metav1.LabelSelector; None (absent) selects nothing, {} selects everything."""
    if raw is None:
        return None
    return LabelSelector(
        tuple(sorted((raw.get("matchLabels") or {}).items())),
        tuple(_requirement(r, f"{where}.matchExpressions") for r in raw.get("matchExpressions") or ()),
    )


def _fold_label_keys(
    selector: LabelSelector | None, labels: Mapping[str, str], match: Iterable[str], mismatch: Iterable[str] = ()
) -> LabelSelector | None:
    """matchLabelKeys (and mismatchLabelKeys) as kube-scheduler reads them: `key In/NotIn
    [the pod's own value]` for each key the pod carries; a missing selector stays one that
    selects nothing."""
    extra = tuple(Requirement(k, "In", (labels[k],)) for k in match if k in labels) + tuple(
        Requirement(k, "NotIn", (labels[k],)) for k in mismatch if k in labels
    )
    if selector is None or not extra:
        return selector
    return LabelSelector(selector.match_labels, selector.match_expressions + extra)


def _affinity_terms(
    raw: Mapping[str, Any] | None, labels: Mapping[str, str], where: str
) -> tuple[PodAffinityTerm, ...]:
    terms = (raw or {}).get("requiredDuringSchedulingIgnoredDuringExecution") or ()
    out = []
    for t in terms:
        # namespaceSelector {} means every namespace. One with labels cannot be evaluated (we do
        # not read namespaces), so it counts every namespace too: exact in anti-affinity's safe
        # direction, generous for affinity.
        out.append(
            PodAffinityTerm(
                selector=_fold_label_keys(
                    label_selector(t.get("labelSelector"), f"{where}.labelSelector"),
                    labels,
                    t.get("matchLabelKeys") or (),
                    t.get("mismatchLabelKeys") or (),
                ),
                topology_key=t["topologyKey"],
                namespaces=frozenset(t.get("namespaces") or ()),
                all_namespaces=t.get("namespaceSelector") is not None,
            )
        )
    return tuple(out)


def _spread(raw: Iterable[Mapping[str, Any]], labels: Mapping[str, str]) -> tuple[SpreadConstraint, ...]:
    where = "spec.topologySpreadConstraints"
    return tuple(
        SpreadConstraint(
            max_skew=int(c["maxSkew"]),
            topology_key=c["topologyKey"],
            selector=_fold_label_keys(
                label_selector(c.get("labelSelector"), f"{where}.labelSelector"), labels, c.get("matchLabelKeys") or ()
            ),
            min_domains=int(c.get("minDomains") or 1),
            honor_node_affinity=(c.get("nodeAffinityPolicy") or "Honor") == "Honor",
            honor_taints=(c.get("nodeTaintsPolicy") or "Ignore") == "Honor",
        )
        for c in raw
        # ScheduleAnyway only scores; it never filters a node out.
        if c.get("whenUnsatisfiable") == "DoNotSchedule"
    )


def _host_ports(spec: Mapping[str, Any]) -> tuple[HostPort, ...]:
    """The containers' and the restartable ("sidecar") init containers' hostPorts: the NodePorts
    filter counts no other init container's (kubernetes/kubernetes#132040), as they have exited
    by the time the pod runs."""
    # A host-network pod binds its container ports on the node. The API server writes them as
    # hostPorts into pods, but no longer into templates, so a DaemonSet's come from here.
    host_network = bool(spec.get("hostNetwork"))
    sidecars = [c for c in spec.get("initContainers") or () if c.get("restartPolicy") == "Always"]
    out = []
    for containers in (spec.get("containers"), sidecars):
        for c in containers or ():
            for p in c.get("ports") or ():
                port = p.get("hostPort") or (p.get("containerPort") if host_network else None)
                if port:
                    out.append(HostPort(int(port), p.get("protocol") or "TCP", p.get("hostIP") or ""))
    return tuple(out)


def _tolerations(raw: Iterable[Mapping[str, Any]]) -> tuple[Toleration, ...]:
    return tuple(
        Toleration(t.get("key") or "", t.get("operator") or "Equal", t.get("value") or "", t.get("effect") or "")
        for t in raw
    )


def pod_placement(
    spec: Mapping[str, Any],
    labels: Mapping[str, str],
    *,
    extra_tolerations: tuple[Toleration, ...] = (),
) -> Placement:
    """Everything but volumes (see PodContext.volume_placement)."""
    affinity = spec.get("affinity") or {}
    node_affinity = (affinity.get("nodeAffinity") or {}).get("requiredDuringSchedulingIgnoredDuringExecution")
    tolerations = _tolerations(spec.get("tolerations") or ())
    tolerations += tuple(t for t in extra_tolerations if t not in tolerations)
    placement = Placement(
        node_selector=tuple(sorted((spec.get("nodeSelector") or {}).items())),
        node_affinity=None
        if node_affinity is None
        else node_selector_terms(
            node_affinity.get("nodeSelectorTerms") or (), "spec.affinity.nodeAffinity.required.nodeSelectorTerms"
        ),
        tolerations=tolerations,
        host_ports=_host_ports(spec),
        affinity=_affinity_terms(affinity.get("podAffinity"), labels, "spec.affinity.podAffinity"),
        anti_affinity=_affinity_terms(affinity.get("podAntiAffinity"), labels, "spec.affinity.podAntiAffinity"),
        spread=_spread(spec.get("topologySpreadConstraints") or (), labels),
    )
    return NO_CONSTRAINTS if placement == NO_CONSTRAINTS else placement


# ---------------------------------------------------------------------------------------------
# Requests


def _container_requests(container: Mapping[str, Any]) -> tuple[int, int]:
    requests = (container.get("resources") or {}).get("requests")
    if not requests:
        return 0, 0
    cpu, mem = requests.get("cpu"), requests.get("memory")  # nosec B113  # a dict of resource requests, not HTTP
    return (cpu_millis(str(cpu)) if cpu is not None else 0, mem_bytes(str(mem)) if mem is not None else 0)


def pod_requests(spec: Mapping[str, Any]) -> tuple[int, int]:
    """(millicores, bytes) the scheduler reserves for a pod: the sum over its containers, or the
    largest init container (with the restartable "sidecar" init containers started before it)
    if that is more, plus the pod overhead; pod-level requests, when set, take precedence."""
    cpu = mem = 0
    for c in spec.get("containers") or ():
        c_cpu, c_mem = _container_requests(c)
        cpu += c_cpu
        mem += c_mem
    init_cpu = init_mem = side_cpu = side_mem = 0
    for c in spec.get("initContainers") or ():
        c_cpu, c_mem = _container_requests(c)
        if c.get("restartPolicy") == "Always":
            cpu += c_cpu
            mem += c_mem
            side_cpu += c_cpu
            side_mem += c_mem
            c_cpu, c_mem = side_cpu, side_mem
        else:
            c_cpu += side_cpu
            c_mem += side_mem
        init_cpu, init_mem = max(init_cpu, c_cpu), max(init_mem, c_mem)
    cpu, mem = max(cpu, init_cpu), max(mem, init_mem)
    pod_level = (spec.get("resources") or {}).get("requests") or {}
    if pod_level.get("cpu") is not None:
        cpu = cpu_millis(str(pod_level["cpu"]))
    if pod_level.get("memory") is not None:
        mem = mem_bytes(str(pod_level["memory"]))
    overhead = spec.get("overhead") or {}
    if overhead.get("cpu") is not None:
        cpu += cpu_millis(str(overhead["cpu"]))
    if overhead.get("memory") is not None:
        mem += mem_bytes(str(overhead["memory"]))
    return cpu, mem


# ---------------------------------------------------------------------------------------------
# Nodes


def parse_provider_id(provider_id: str | None) -> tuple[str | None, str | None]:
    """(availability zone, instance id) from `aws:///<az>/<instance-id>`; (None, None) for any
    other provider. The instance is never guessed from a node's name or DNS name."""
    if not provider_id or not provider_id.startswith("aws://"):
        return None, None
    parts = [p for p in provider_id[len("aws://") :].split("/") if p]
    if not parts or not re.fullmatch(r"i-[0-9a-f]{8,17}", parts[-1]):
        return None, None
    return (parts[-2] if len(parts) >= 2 else None), parts[-1]


def parse_node(obj: Mapping[str, Any]) -> Node:
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    alloc = status.get("allocatable") or status.get("capacity") or {}
    labels = dict(meta.get("labels") or {})
    az, instance_id = parse_provider_id(spec.get("providerID"))
    if instance_id is not None and az is None:
        az = labels.get(ZONE_LABEL)
    ready = next((c for c in status.get("conditions") or () if c.get("type") == "Ready"), None) or {}
    return Node(
        name=_name(meta),
        alloc_cpu_m=cpu_millis(str(alloc.get("cpu", "0")), round_up=False),
        alloc_mem_mib=_mib(mem_bytes(str(alloc.get("memory", "0")), round_up=False), round_up=False),
        instance_id=instance_id,
        az=az,
        ready=ready.get("status") == "True",
        cordoned=bool(spec.get("unschedulable")),
        control_plane=any(k in labels and labels[k] != "false" for k in CONTROL_PLANE_LABELS),
        annotations=dict(meta.get("annotations") or {}),
        created_at=parse_time(meta.get("creationTimestamp")) or 0.0,
        labels=labels,
        taints=tuple(Taint(t["key"], t.get("value") or "", t["effect"]) for t in spec.get("taints") or ()),
        alloc_pods=int(parse_quantity(alloc["pods"])) if "pods" in alloc else 110,
        addresses=frozenset(a["address"] for a in status.get("addresses") or () if a.get("type") in NODE_ADDRESS_TYPES),
        ready_since=parse_time(ready.get("lastTransitionTime")),
    )


# ---------------------------------------------------------------------------------------------
# What pods are resolved against: disruption budgets and storage


@dataclass(frozen=True, slots=True)
class DisruptionBudget:
    """A policy/v1 PodDisruptionBudget: which pods it covers and how many it lets go now."""

    namespace: str
    name: str
    disruptions_allowed: int
    selector: LabelSelector | None
    """None: the PDB has no selector and covers no pod; an empty one covers its whole namespace."""

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    def selects(self, namespace: str, labels: Mapping[str, str]) -> bool:
        return namespace == self.namespace and selector_matches(self.selector, labels)


def parse_pdb(obj: Mapping[str, Any]) -> DisruptionBudget:
    meta = obj.get("metadata") or {}
    return DisruptionBudget(
        namespace=meta.get("namespace") or "",
        name=_name(meta),
        disruptions_allowed=int((obj.get("status") or {}).get("disruptionsAllowed", 0)),
        selector=label_selector((obj.get("spec") or {}).get("selector"), "spec.selector"),
    )


@dataclass(frozen=True, slots=True)
class Claim:
    """A PersistentVolumeClaim, as far as placement needs it."""

    namespace: str
    name: str
    volume: str | None
    """spec.volumeName: the bound PersistentVolume; None while unbound."""
    storage_class: str | None
    provisioner: str | None
    """The provisioner annotation the PV controller writes on the claim, if any."""


def parse_claim(obj: Mapping[str, Any]) -> Claim:
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    annotations = meta.get("annotations") or {}
    return Claim(
        namespace=meta.get("namespace") or "",
        name=_name(meta),
        volume=spec.get("volumeName") or None,
        storage_class=spec.get("storageClassName") or None,
        provisioner=next((annotations[a] for a in PROVISIONER_ANNOTATIONS if a in annotations), None),
    )


@dataclass(frozen=True, slots=True)
class Volume:
    """A PersistentVolume, as far as placement needs it."""

    name: str
    affinity: tuple[tuple[NodeSelectorTerm, ...], ...]
    """What a node must match to reach it, each entry's terms ORed: its nodeAffinity (the
    VolumeBinding filter) and its legacy zone labels (the VolumeZone filter)."""
    node_local: bool
    """A `local` or `hostPath` volume without nodeAffinity: it lives on the disk of whichever node
    its pod runs on."""


def parse_volume(obj: Mapping[str, Any]) -> Volume:
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    required = (spec.get("nodeAffinity") or {}).get("required")
    affinity = []
    if required is not None:
        affinity.append(node_selector_terms(required.get("nodeSelectorTerms") or (), "spec.nodeAffinity.required"))
    zones: dict[str, Requirement] = {}
    for label, value in (meta.get("labels") or {}).items():
        node_label = VOLUME_ZONE_LABELS.get(label)
        if node_label is not None:
            zones[node_label] = Requirement(node_label, "In", tuple(sorted(set(value.split("__")))))
    if zones:
        affinity.append(volume_zone_terms(zones[k] for k in sorted(zones)))
    node_local = required is None and ("local" in spec or "hostPath" in spec)
    return Volume(name=_name(meta), affinity=tuple(affinity), node_local=node_local)


def parse_storage_class(obj: Mapping[str, Any]) -> tuple[str, str]:
    """(name, provisioner)."""
    return _name(obj.get("metadata") or {}), obj.get("provisioner") or ""


_encode = msgspec.json.Encoder().encode


def _pin(node: str) -> tuple[NodeSelectorTerm, ...]:
    return ((Requirement(NODE_NAME_FIELD, "In", (node,)),),)


class PodShape(NamedTuple):
    cpu_m: int
    mem_mib: int
    placement: Placement
    """Without its volumes' placement, which depends on the claims and the node."""
    local_volumes: tuple[str, ...]
    grace_period_s: int


class PodContext:
    """The other objects a pod's placement and budgets are resolved against, and what was
    already worked out from them for pods parsed before."""

    def __init__(
        self,
        budgets: Iterable[DisruptionBudget] = (),
        claims: Iterable[Claim] = (),
        volumes: Iterable[Volume] = (),
        classes: Iterable[tuple[str, str]] = (),
    ) -> None:
        self.budgets = tuple(budgets)
        self._budgets_by_namespace: dict[str, list[DisruptionBudget]] = {}
        for b in self.budgets:
            self._budgets_by_namespace.setdefault(b.namespace, []).append(b)
        self._claims = {(c.namespace, c.name): c for c in claims}
        self._volumes = {v.name: v for v in volumes}
        self._provisioners = dict(classes)
        self._pdbs_by_labels: dict[tuple[str, frozenset[tuple[str, str]]], tuple[str, ...]] = {}
        self._shapes: dict[bytes, PodShape] = {}

    def budget_table(self) -> dict[str, int]:
        """`namespace/name` -> disruptionsAllowed."""
        return {b.key: b.disruptions_allowed for b in self.budgets}

    def pdbs_of(self, namespace: str, labels: Mapping[str, str]) -> tuple[str, ...]:
        budgets = self._budgets_by_namespace.get(namespace)
        if not budgets:
            return ()
        # The replicas of a workload share their labels: match each label set once.
        key = (namespace, frozenset(labels.items()))
        found = self._pdbs_by_labels.get(key)
        if found is None:
            found = self._pdbs_by_labels[key] = tuple(b.key for b in budgets if b.selects(namespace, labels))
        return found

    def shape(self, spec: Mapping[str, Any], labels: Mapping[str, str]) -> PodShape:
        """What a pod's spec says apart from where it runs, worked out once for each distinct spec:
        the replicas of a workload share it, and working it out is most of the cost of a pod."""
        affinity, spread = spec.get("affinity"), spec.get("topologySpreadConstraints")
        # labels are read only to fold matchLabelKeys in
        key = _encode(({k: v for k, v in spec.items() if k != "nodeName"}, labels if affinity or spread else None))
        shape = self._shapes.get(key)
        if shape is None:
            cpu, mem = pod_requests(spec)
            grace = spec.get("terminationGracePeriodSeconds")
            shape = self._shapes[key] = PodShape(
                cpu,
                _mib(mem, round_up=True),
                pod_placement(spec, labels),
                _local_volumes(spec),
                30 if grace is None else int(grace),
            )
        return shape

    def volume_placement(
        self, pod: str, namespace: str, node: str | None, volumes: Iterable[Mapping[str, Any]]
    ) -> tuple[tuple[tuple[NodeSelectorTerm, ...], ...], str | None]:
        """(volume_affinity, volume_problem) of a pod's claims."""
        affinity: list[tuple[NodeSelectorTerm, ...]] = []
        for v in volumes:
            if "persistentVolumeClaim" in v:
                claim_name, ephemeral = v["persistentVolumeClaim"]["claimName"], False
            elif "ephemeral" in v:
                claim_name, ephemeral = f"{pod}-{v['name']}", True
            else:
                continue
            where = f"persistentvolumeclaim {namespace}/{claim_name}"
            claim = self._claims.get((namespace, claim_name))
            if claim is None:
                if ephemeral and node is None:
                    continue  # the ephemeral volume controller has yet to create it
                return (), f"{where} not found"
            if claim.volume is None:
                if node is None:
                    continue  # unbound (WaitForFirstConsumer): bound wherever the pod goes
                return (), f"{where} is not bound"
            volume = self._volumes.get(claim.volume)
            # A node-local volume (or a local-path one we cannot read) is where its pod runs now.
            node_local = volume.node_local if volume is not None else self._local_path(claim)
            if node_local and node is not None:
                affinity.append(_pin(node))
            elif volume is None or node_local:
                return (
                    (),
                    f"persistentvolume {claim.volume} of {where} {'not found' if volume is None else 'is node-local'}",
                )
            else:
                affinity.extend(volume.affinity)
        return tuple(affinity), None

    def _local_path(self, claim: Claim) -> bool:
        provisioner = claim.provisioner or self._provisioners.get(claim.storage_class or "")
        return provisioner == LOCAL_PATH_PROVISIONER


# ---------------------------------------------------------------------------------------------
# Pods and DaemonSets


def _unschedulable_since(meta: Mapping[str, Any], status: Mapping[str, Any]) -> float | None:
    for c in status.get("conditions") or ():
        if c.get("type") == "PodScheduled" and c.get("status") == "False" and c.get("reason") == "Unschedulable":
            return parse_time(c.get("lastTransitionTime")) or parse_time(meta.get("creationTimestamp")) or 0.0
    return None


def _local_volumes(spec: Mapping[str, Any]) -> tuple[str, ...]:
    return tuple(v["name"] for v in spec.get("volumes") or () if "emptyDir" in v or "hostPath" in v)


def parse_pod(obj: Mapping[str, Any], context: PodContext | None = None) -> Pod | None:
    """A pod that is bound or pending; None for a finished one (Succeeded or Failed). Without a
    context it has no PDBs, and its claims are missing."""
    if context is None:
        context = PodContext()  # not a shared default: a context keeps what it works out
    status = obj.get("status") or {}
    if status.get("phase") in FINISHED_PHASES:
        return None
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    name, namespace = _name(meta), meta.get("namespace") or ""
    labels = dict(meta.get("labels") or {})
    annotations = dict(meta.get("annotations") or {})
    node = spec.get("nodeName") or None
    shape = context.shape(spec, labels)
    placement = shape.placement
    volume_affinity, volume_problem = context.volume_placement(name, namespace, node, spec.get("volumes") or ())
    if volume_affinity or volume_problem is not None:
        placement = replace(placement, volume_affinity=volume_affinity, volume_problem=volume_problem)
    owner = next((r.get("kind") for r in meta.get("ownerReferences") or () if r.get("controller")), None)
    pdbs = context.pdbs_of(namespace, labels)
    return Pod(
        name=name,
        namespace=namespace,
        cpu_m=shape.cpu_m,
        mem_mib=shape.mem_mib,
        node=node,
        owner_kind=owner,
        annotations=annotations,
        has_pdb=bool(pdbs),
        local_storage=bool(shape.local_volumes),
        unschedulable_since=None if node else _unschedulable_since(meta, status),
        grace_period_s=shape.grace_period_s,
        labels=labels,
        placement=placement,
        local_volumes=shape.local_volumes,
        pdbs=pdbs,
        mirror=MIRROR_ANNOTATION in annotations,
    )


def parse_daemonset(obj: Mapping[str, Any]) -> Pod:
    """The pod an apps/v1 DaemonSet would start on a new node: its template, unbound, with the
    tolerations the DaemonSet controller adds. Its claims, if any, are not resolved (their
    volumes do not exist before the pod does)."""
    meta = obj.get("metadata") or {}
    template = (obj.get("spec") or {}).get("template") or {}
    template_meta = template.get("metadata") or {}
    spec = template.get("spec") or {}
    labels = dict(template_meta.get("labels") or {})
    cpu, mem = pod_requests(spec)
    grace = spec.get("terminationGracePeriodSeconds")
    local_volumes = _local_volumes(spec)
    extra = DAEMON_TOLERATIONS + ((HOST_NETWORK_DAEMON_TOLERATION,) if spec.get("hostNetwork") else ())
    return Pod(
        name=_name(meta),
        namespace=meta.get("namespace") or "",
        cpu_m=cpu,
        mem_mib=_mib(mem, round_up=True),
        owner_kind="DaemonSet",
        annotations=dict(template_meta.get("annotations") or {}),
        local_storage=bool(local_volumes),
        grace_period_s=30 if grace is None else int(grace),
        labels=labels,
        placement=pod_placement(spec, labels, extra_tolerations=extra),
        local_volumes=local_volumes,
    )


# ---------------------------------------------------------------------------------------------
# Any kinds at once


@dataclass(frozen=True, slots=True)
class ClusterObjects:
    nodes: tuple[Node, ...] = ()
    pods: tuple[Pod, ...] = ()
    """Bound or pending; finished pods are dropped."""
    budgets: dict[str, int] = field(default_factory=dict)
    """`namespace/name` of every PodDisruptionBudget -> status.disruptionsAllowed."""
    daemonsets: tuple[Pod, ...] = ()
    """One unbound pod per DaemonSet."""


KINDS = ("Node", "Pod", "PodDisruptionBudget", "PersistentVolume", "PersistentVolumeClaim", "StorageClass", "DaemonSet")


def _name(meta: Mapping[str, Any]) -> str:
    name = meta.get("name")
    if not isinstance(name, str) or not name:
        raise ValueError("metadata.name: missing or not a string")
    return name


def checked(kind: str, parse: Callable[[Mapping[str, Any]], T]) -> Callable[[Any], T]:
    """`parse` for items of `kind`: bad input raises ValueError naming the object and the field."""

    def parse_one(obj: Any) -> T:
        if not isinstance(obj, Mapping):
            raise ValueError(f"a {kind} item is not an object but {type(obj).__name__}")
        try:
            return parse(obj)
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            meta = obj.get("metadata")
            meta = meta if isinstance(meta, Mapping) else {}
            ident = f"{meta.get('namespace') or ''}/{meta.get('name') or '?'}".lstrip("/")
            detail = f"missing field {exc}" if isinstance(exc, KeyError) else str(exc)
            raise ValueError(f"{kind} {ident}: {detail}") from exc

    return parse_one


def parse_cluster(objects: Iterable[Mapping[str, Any]]) -> ClusterObjects:
    """Objects of any kinds, each carrying its `kind` (the items of a `kubectl get -o json` List);
    kinds other than KINDS are ignored."""
    by_kind: dict[str, list[Mapping[str, Any]]] = {k: [] for k in KINDS}
    for i, obj in enumerate(objects):
        if not isinstance(obj, Mapping):
            raise ValueError(f"item {i} is not an object but {type(obj).__name__}")
        kind = obj.get("kind")
        if not isinstance(kind, str):
            raise ValueError(f"item {i}: kind: missing (each item of a List carries its kind)")
        if kind in by_kind:
            by_kind[kind].append(obj)

    def each(kind: str, parse: Callable[[Mapping[str, Any]], T]) -> list[T]:
        one = checked(kind, parse)
        return [one(obj) for obj in by_kind[kind]]

    context = PodContext(
        budgets=each("PodDisruptionBudget", parse_pdb),
        claims=each("PersistentVolumeClaim", parse_claim),
        volumes=each("PersistentVolume", parse_volume),
        classes=each("StorageClass", parse_storage_class),
    )
    pods = each("Pod", functools.partial(parse_pod, context=context))
    return ClusterObjects(
        nodes=tuple(each("Node", parse_node)),
        pods=tuple(p for p in pods if p is not None),
        budgets=context.budget_table(),
        daemonsets=tuple(each("DaemonSet", parse_daemonset)),
    )
