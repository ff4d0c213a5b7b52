"""One kubelet a worker instance: it registers the instance's Node once booted, and marks the
Node Ready=Unknown when the instance goes away."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from node_fleet.stack.kube_api import FakeKube, objects
from node_fleet.stack.kube_real import RealKube

from .pods import cpu_text, iso

CLUSTER_TAG = "node-fleet.io/cluster"
ROLE_TAG = "node-fleet.io/role"
WORKER_ROLE = "worker"
POOL_LABEL = "node-fleet.io/pool"
GONE_STATES = ("shutting-down", "terminated", "stopping", "stopped")


@dataclass(frozen=True)
class WorkerShape:
    """What one worker offers (allocatable) and which instance type it is."""

    cpu_m: int = 2000
    mem_mib: int = 7680
    instance_type: str = "t3.large"


@dataclass
class Kubelet:
    instance_id: str
    az: str
    node: str
    ip: str
    instance_type: str
    running_since: float | None = None
    joined: bool = False
    stopped: bool = False
    never_joins: bool = False

    @classmethod
    def of(cls, instance: Mapping[str, Any], default_type: str, *, never_joins: bool) -> Kubelet:
        """The kubelet of an EC2 instance (as describe_instances shows it); named as K3s names it."""
        instance_id = instance["InstanceId"]
        return cls(
            instance_id=instance_id,
            az=instance["Placement"]["AvailabilityZone"],
            node=instance.get("PrivateDnsName") or f"ip-{instance_id}",
            ip=instance.get("PrivateIpAddress") or "10.42.0.10",
            instance_type=instance.get("InstanceType") or default_type,
            never_joins=never_joins,
        )


def describe_workers(ec2: Any, cluster_name: str, states: Sequence[str] = ()) -> list[dict[str, Any]]:
    """The instances tagged as workers of this cluster, in `states` (every state when empty)."""
    filters = [
        {"Name": f"tag:{CLUSTER_TAG}", "Values": [cluster_name]},
        {"Name": f"tag:{ROLE_TAG}", "Values": [WORKER_ROLE]},
    ]
    if states:
        filters.append({"Name": "instance-state-name", "Values": list(states)})
    found = []
    for page in ec2.get_paginator("describe_instances").paginate(Filters=filters):
        for reservation in page["Reservations"]:
            found.extend(reservation["Instances"])
    return found


def register(kube: FakeKube | RealKube, kubelet: Kubelet, shape: WorkerShape, pool: str, now: float) -> None:
    kube.add(_node(kubelet, shape, pool, now))
    kubelet.joined = True


def node_back(kube: FakeKube | RealKube, kubelet: Kubelet, shape: WorkerShape, pool: str, now: float) -> None:
    """A worker started again (the warm pool): its kubelet posts Ready on the Node it left, whose
    spec (a cordon, taints) stays as it is."""
    node = kube.get("nodes", kubelet.node)
    if node is None:
        register(kube, kubelet, shape, pool, now)
        return
    node["status"]["conditions"] = _node(kubelet, shape, pool, now)["status"]["conditions"]
    _put_status(kube, node)


def _node(kubelet: Kubelet, shape: WorkerShape, pool: str, now: float) -> dict[str, Any]:
    node = objects.node(
        kubelet.node,
        instance_id=kubelet.instance_id,
        az=kubelet.az,
        cpu=cpu_text(shape.cpu_m),
        memory=f"{shape.mem_mib}Mi",
        labels={POOL_LABEL: pool, "node.kubernetes.io/instance-type": kubelet.instance_type},
        created=iso(now),
        instance_type=kubelet.instance_type,
    )
    node["status"]["addresses"] = [
        {"type": "InternalIP", "address": kubelet.ip},
        {"type": "Hostname", "address": kubelet.node},
    ]
    for condition in node["status"]["conditions"]:
        condition["lastHeartbeatTime"] = iso(now)
    return node


def node_lost(kube: FakeKube | RealKube, kubelet: Kubelet, now: float) -> None:
    node = kube.get("nodes", kubelet.node)
    if node is None:
        return
    for condition in node["status"]["conditions"]:
        condition.update(
            status="Unknown",
            reason="NodeStatusUnknown",
            message="Kubelet stopped posting node status.",
            lastTransitionTime=iso(now),
        )
    _put_status(kube, node)


def _put_status(kube: FakeKube | RealKube, node: dict[str, Any]) -> None:
    if isinstance(kube, RealKube):
        kube.apply_status(node)  # the status alone: the rest of the Node is not the kubelet's to write
    else:
        kube.add(node)
