"""What pods are resolved against: PodDisruptionBudgets, and the storage that places a pod's
volumes (PersistentVolumeClaims, PersistentVolumes, StorageClasses)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from autoscaler.adapters.kube_terms import label_selector, node_selector_terms
from autoscaler.adapters.kube_values import object_name
from autoscaler.placement import selector_matches, volume_zone_terms
from autoscaler.scheduling import ZONE_LABEL, LabelSelector, NodeSelectorTerm, Requirement

PROVISIONER_ANNOTATIONS = ("volume.kubernetes.io/storage-provisioner", "volume.beta.kubernetes.io/storage-provisioner")
# A volume's legacy topology labels, by the node label the VolumeZone filter compares them with
# (the kubelet puts the GA labels on every node; a value may list several zones joined by "__").
VOLUME_ZONE_LABELS = {
    "topology.kubernetes.io/zone": ZONE_LABEL,
    "failure-domain.beta.kubernetes.io/zone": ZONE_LABEL,
    "topology.kubernetes.io/region": "topology.kubernetes.io/region",
    "failure-domain.beta.kubernetes.io/region": "topology.kubernetes.io/region",
}


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
        name=object_name(meta),
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
        name=object_name(meta),
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
    return Volume(name=object_name(meta), affinity=tuple(affinity), node_local=node_local)


def parse_storage_class(obj: Mapping[str, Any]) -> tuple[str, str]:
    """(name, provisioner)."""
    return object_name(obj.get("metadata") or {}), obj.get("provisioner") or ""
