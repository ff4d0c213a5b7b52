"""Kubernetes objects, as raw JSON, into the model: what kube-scheduler's filters read.

One parser for two readers: the adapter (`kube.py`), which lists each kind from its endpoint
and parses a page at a time, and `node-fleet plan`, which hands `parse_cluster` the items of
`kubectl get nodes,pods,pdb,pv,pvc,daemonsets,storageclasses -A -o json`. The client's
per-object models are never built: plain dicts in, frozen model values out.

Volumes are resolved here, so the core sees placement only: a pod's PersistentVolumeClaims
(and generic ephemeral volumes, whose claim is `<pod>-<volume>`) lead to their bound
PersistentVolumes and from there to node terms (`Placement.volume_affinity`). K3s's
local-path provisioner writes node affinity on its volumes, so they pin their pods to a node.

The parsing is split by job: `kube_values` (quantities, timestamps, names), `kube_terms` (what
kube-scheduler reads from a pod spec), `kube_storage` (PDBs and the storage a pod's volumes lead to),
and this module (nodes, pods, DaemonSets, and any kinds at once).

Bad input raises ValueError naming the object and, where it can, the field.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple, TypeVar

import msgspec

from autoscaler.adapters.kube_nodes import parse_node
from autoscaler.adapters.kube_storage import (
    Claim,
    DisruptionBudget,
    Volume,
    parse_claim,
    parse_pdb,
    parse_storage_class,
    parse_volume,
)
from autoscaler.adapters.kube_terms import pod_placement, pod_requests
from autoscaler.adapters.kube_values import mib, object_name, parse_time
from autoscaler.model import Node, Pod
from autoscaler.scheduling import (
    NODE_NAME_FIELD,
    NodeSelectorTerm,
    Placement,
    Requirement,
    Toleration,
)

T = TypeVar("T")

FINISHED_PHASES = ("Succeeded", "Failed")
MIRROR_ANNOTATION = "kubernetes.io/config.mirror"
LOCAL_PATH_PROVISIONER = "rancher.io/local-path"


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


_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode


def _json(value: Any) -> Any:
    """A field the adapter kept as raw JSON (see kube_fields), decoded; any other as it is."""
    return _decode(value) if isinstance(value, msgspec.Raw) else value


def _decoded(spec: Mapping[str, Any]) -> dict[str, Any]:
    out = {k: _json(v) for k, v in spec.items()}
    for kind in ("containers", "initContainers"):
        if isinstance(out.get(kind), list):
            out[kind] = [{k: _json(v) for k, v in c.items()} if isinstance(c, Mapping) else c for c in out[kind]]
    return out


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
        self._by_labels: dict[tuple[str, tuple[tuple[str, str], ...]], tuple[dict[str, str], tuple[str, ...]]] = {}
        self._shapes: dict[bytes, PodShape] = {}

    def budget_table(self) -> dict[str, int]:
        """`namespace/name` -> disruptionsAllowed."""
        return {b.key: b.disruptions_allowed for b in self.budgets}

    def labels_and_pdbs(self, namespace: str, labels: Mapping[str, str]) -> tuple[dict[str, str], tuple[str, ...]]:
        """A pod's labels, as one dict shared by the pods of its namespace that carry the same ones
        in the same order (the replicas of a workload), and the PDBs that select them: matched
        once per label set (the same labels in another order are only matched again)."""
        key = (namespace, tuple(labels.items()))
        found = self._by_labels.get(key)
        if found is None:
            shared = dict(labels)
            budgets = self._budgets_by_namespace.get(namespace, ())
            found = self._by_labels[key] = (shared, tuple(b.key for b in budgets if b.selects(namespace, shared)))
        return found

    def shape(self, spec: Mapping[str, Any], labels: Mapping[str, str]) -> PodShape:
        """What a pod's spec says apart from where it runs, worked out once for each distinct spec:
        the replicas of a workload share it, and working it out is most of the cost of a pod."""
        affinity, spread = spec.get("affinity"), spec.get("topologySpreadConstraints")
        fields = dict(spec)
        fields.pop("nodeName", None)
        # Of the volumes, only the local ones' names: every pod has its own service account volume.
        fields["volumes"] = _local_volumes(spec)
        # labels are read only to fold matchLabelKeys in
        key = _encode((fields, labels if affinity or spread else None))
        shape = self._shapes.get(key)
        if shape is None:
            spec = _decoded(spec)
            cpu, mem = pod_requests(spec)
            grace = spec.get("terminationGracePeriodSeconds")
            shape = self._shapes[key] = PodShape(
                cpu,
                mib(mem, round_up=True),
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
    for c in _json(status.get("conditions")) or ():
        if c.get("type") == "PodScheduled" and c.get("status") == "False" and c.get("reason") == "Unschedulable":
            return parse_time(c.get("lastTransitionTime")) or parse_time(meta.get("creationTimestamp")) or 0.0
    return None


def _controller_kind(meta: Mapping[str, Any]) -> str | None:
    for r in meta.get("ownerReferences") or ():
        if r.get("controller"):
            return r.get("kind")
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
    name, namespace = object_name(meta), meta.get("namespace") or ""
    labels, pdbs = context.labels_and_pdbs(namespace, meta.get("labels") or {})
    annotations = dict(meta.get("annotations") or {})
    node = spec.get("nodeName") or None
    shape = context.shape(spec, labels)
    placement = shape.placement
    volume_affinity, volume_problem = context.volume_placement(name, namespace, node, spec.get("volumes") or ())
    if volume_affinity or volume_problem is not None:
        placement = replace(placement, volume_affinity=volume_affinity, volume_problem=volume_problem)
    owner = _controller_kind(meta)
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
    spec = _decoded(template.get("spec") or {})
    labels = dict(template_meta.get("labels") or {})
    cpu, mem = pod_requests(spec)
    grace = spec.get("terminationGracePeriodSeconds")
    local_volumes = _local_volumes(spec)
    extra = DAEMON_TOLERATIONS + ((HOST_NETWORK_DAEMON_TOLERATION,) if spec.get("hostNetwork") else ())
    return Pod(
        name=object_name(meta),
        namespace=meta.get("namespace") or "",
        cpu_m=cpu,
        mem_mib=mib(mem, round_up=True),
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


def checked(kind: str, parse: Callable[[Mapping[str, Any]], T]) -> Callable[[Any], T]:
    """`parse` for items of `kind`: bad input raises ValueError naming the object and the field."""

    def parse_one(obj: Any) -> T:
        if type(obj) is not dict and not isinstance(obj, Mapping):  # the ABC check is slow
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
