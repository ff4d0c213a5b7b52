"""Spot interruption warnings over the EC2 adapter (moto): only a spot worker the Fleet lists, with this
cluster's tags in its VPC, is replaced and drained; anything else starts, stops or terminates nothing."""

from __future__ import annotations

import pytest
from test_ec2 import CLUSTER, A, fleet_for, other_vpc_subnet, run_foreign

from autoscaler.adapters.ec2 import CLUSTER_TAG, ROLE_TAG
from autoscaler.config import Settings
from autoscaler.events import SpotInterruption
from autoscaler.model import Node
from autoscaler.ports import Ports
from autoscaler.service import Wiring, handle
from builders import busy
from fakes import FakeCluster, FakeMetrics, MemoryLease
from node_fleet.sim.ports import MemoryStateStore

SETTINGS = Settings(cluster_name=CLUSTER, min_nodes=1, max_nodes=5)
MUTATING = ("RunInstances", "TerminateInstances", "StopInstances", "StartInstances")


def ec2_calls(client) -> list[str]:
    calls: list[str] = []
    for op in MUTATING:
        client.meta.events.register(f"before-call.ec2.{op}", lambda op=op, **kw: calls.append(op))
    return calls


def wired(network, client, instance_ids, spot_share=0.0) -> Wiring:
    nodes = [Node(f"n{k}", 2000, 7680, iid, A) for k, iid in enumerate(instance_ids)]
    cluster = FakeCluster(nodes)
    fleet = fleet_for(network, client, spot_share=spot_share)
    return Wiring(Ports(fleet, cluster, FakeMetrics(), MemoryStateStore()), MemoryLease(), clock=lambda: 1e9)


def warning(instance_id: str, event_id: str = "e-1") -> SpotInterruption:
    return SpotInterruption(event_id, instance_id, "terminate", 1e9 - 5)


@pytest.mark.parametrize(
    "tags, other_vpc",
    [
        pytest.param({CLUSTER_TAG: CLUSTER, ROLE_TAG: "server"}, False, id="the server node"),
        pytest.param({CLUSTER_TAG: "other", ROLE_TAG: "worker"}, False, id="another cluster's worker"),
        pytest.param({}, False, id="untagged"),
        pytest.param({CLUSTER_TAG: CLUSTER, ROLE_TAG: "worker"}, True, id="our tags in another VPC"),
    ],
)
def test_a_warning_for_an_instance_that_is_not_our_worker_changes_nothing(aws_ec2_client, aws_network, tags, other_vpc):
    subnet = other_vpc_subnet(aws_ec2_client) if other_vpc else None
    instance_id = run_foreign(aws_ec2_client, aws_network, tags, subnet=subnet)
    w = wired(aws_network, aws_ec2_client, [instance_id], spot_share=1.0)
    calls = ec2_calls(aws_ec2_client)

    report = handle(warning(instance_id), w, SETTINGS, token="e-1")

    assert report.status == "ignored" and "not a worker of this cluster" in report.detail
    assert calls == [] and w.ports.cluster.calls == [] and w.lease.calls == []


def test_a_warning_for_an_on_demand_worker_of_ours_changes_nothing(aws_ec2_client, aws_network):
    fleet = fleet_for(aws_network, aws_ec2_client, spot_share=0.0)
    (instance_id,) = fleet.launch(A, 1, "cycle-1:eu-west-1a").instance_ids
    w = wired(aws_network, aws_ec2_client, [instance_id])
    calls = ec2_calls(aws_ec2_client)

    report = handle(warning(instance_id), w, SETTINGS, token="e-1")

    assert report.status == "ignored" and "on-demand" in report.detail
    assert calls == [] and w.ports.cluster.calls == []


def test_a_warning_for_a_spot_worker_launches_one_replacement_in_its_zone_once(aws_ec2_client, aws_network):
    fleet = fleet_for(aws_network, aws_ec2_client, spot_share=1.0)
    (instance_id,) = fleet.launch(A, 1, "cycle-1:eu-west-1a").instance_ids
    assert next(i for i in fleet.list_workers() if i.id == instance_id).lifecycle == "spot"
    w = wired(aws_network, aws_ec2_client, [instance_id], spot_share=1.0)
    w.ports.cluster.pods, w.ports.cluster.blocked = busy("n0", 1), {"b-n0-0"}  # a PDB keeps the drain going
    calls = ec2_calls(aws_ec2_client)

    report = handle(warning(instance_id), w, SETTINGS, token="e-1")
    again = handle(warning(instance_id, "e-2"), w, SETTINGS, token="e-2")

    assert report.status == "acted" and again.status == "acted"
    assert calls == ["RunInstances"], "one replacement, for both deliveries"
    (replacement,) = report.cycle.outcome.launched
    assert {i.id: i.az for i in fleet.list_workers()}[replacement] == A
    assert ("cordon", "n0") in w.ports.cluster.calls
    assert [d.node for d in w.ports.state.load().drains if d.interrupted] == ["n0"]
