"""A Node object of the Kubernetes API to the model's Node, and the EC2 instance its providerID names."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from autoscaler.adapters.kube_values import cpu_millis, mem_bytes, mib, object_name, parse_quantity, parse_time
from autoscaler.model import Node
from autoscaler.scheduling import ZONE_LABEL, Taint

CONTROL_PLANE_LABELS = ("node-role.kubernetes.io/control-plane", "node-role.kubernetes.io/master")
NODE_ADDRESS_TYPES = ("InternalIP", "Hostname", "InternalDNS")


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
        name=object_name(meta),
        alloc_cpu_m=cpu_millis(str(alloc.get("cpu", "0")), round_up=False),
        alloc_mem_mib=mib(mem_bytes(str(alloc.get("memory", "0")), round_up=False), round_up=False),
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
