"""The contract of the Fleet port (src/autoscaler/ports.py), run against every implementation: the
unit tests' FakeFleet, the simulator's SimFleet over its virtual cluster, and Ec2Fleet on moto.
What only EC2 has (capacity fallback, tags, client tokens, VPC checks) stays in test_ec2.py."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from autoscaler.adapters.ec2 import CLUSTER_TAG, ROLE_TAG, Ec2Fleet, Ec2Options
from autoscaler.model import Instance, InstanceState
from autoscaler.ports import Fleet, NotOurInstance
from builders import NOW
from fakes import FakeFleet
from node_fleet.sim.cluster import ClusterModel, VirtualCluster
from node_fleet.sim.ports import Clock, SimFleet
from node_fleet.sim.record import RunRecord
from node_fleet.sim.workload import Workload


@dataclass
class Subject:
    fleet: Fleet
    foreign: Callable[[], str] | None
    """Starts an instance that is not this cluster's worker and returns its id; None where the
    implementation's world holds only its own workers."""
    now: Callable[[], float]
    """The time as the implementation's world keeps it."""


def memory() -> Subject:
    fake = FakeFleet()

    def foreign() -> str:
        fake.foreign.append(Instance("i-foreign", InstanceState.RUNNING, "eu-west-1a", "t3.large", NOW))
        return "i-foreign"

    return Subject(fake, foreign, lambda: NOW)


def simulated() -> Subject:
    vc = VirtualCluster(Workload("none", (), 600), ClusterModel(), RunRecord("p", "w", 600, 10, 60, 2000, 7680, 0))
    clock = Clock()
    clock.now = 5000.0
    return Subject(SimFleet(vc, clock), None, lambda: clock.now)


def ec2(request: pytest.FixtureRequest) -> Subject:
    client, network = request.getfixturevalue("aws_ec2_client"), request.getfixturevalue("aws_network")
    options = Ec2Options(
        subnet_ids=network.subnet_ids,
        vpc_id=network.vpc_id,
        launch_template_id=network.launch_template_id,
        instance_types=("t3.large",),
    )

    def foreign() -> str:
        # The K3s server: this cluster's tag, not a worker.
        tags = [{"Key": CLUSTER_TAG, "Value": "demo"}, {"Key": ROLE_TAG, "Value": "server"}]
        answer = client.run_instances(
            ImageId="ami-12c6146b",
            MinCount=1,
            MaxCount=1,
            SubnetId=network.subnet_ids[0],
            TagSpecifications=[{"ResourceType": "instance", "Tags": tags}],
        )
        return answer["Instances"][0]["InstanceId"]

    return Subject(Ec2Fleet(options, "demo", client=client), foreign, time.time)


@pytest.fixture(params=["memory", "sim", "ec2"])
def subject(request) -> Subject:
    if request.param == "memory":
        return memory()
    return simulated() if request.param == "sim" else ec2(request)


def alive(fleet: Fleet) -> dict[str, Instance]:
    return {i.id: i for i in fleet.list_workers() if i.alive}


def test_zones_are_named_once_each(subject):
    zones = list(subject.fleet.zones())
    assert zones and len(set(zones)) == len(zones) and all(isinstance(z, str) and z for z in zones)


def test_a_launch_lists_its_workers_in_the_zone_asked(subject):
    fleet = subject.fleet
    zone = fleet.zones()[-1]

    result = fleet.launch(zone, 2, "cycle-1:a")

    assert len(result.instance_ids) == 2 and result.failures == ()
    listed = alive(fleet)
    assert set(result.instance_ids) == set(listed)
    for instance_id in result.instance_ids:
        assert listed[instance_id].az == zone
        assert listed[instance_id].state in (InstanceState.PENDING, InstanceState.RUNNING)


def test_the_same_token_starts_nothing_new_and_another_does(subject):
    fleet = subject.fleet
    zone = fleet.zones()[0]
    first = fleet.launch(zone, 2, "cycle-1:a")

    again = fleet.launch(zone, 2, "cycle-1:a")

    assert sorted(again.instance_ids) == sorted(first.instance_ids)
    assert set(alive(fleet)) == set(first.instance_ids)
    other = fleet.launch(zone, 1, "cycle-2:a")
    assert set(other.instance_ids).isdisjoint(first.instance_ids)
    assert len(alive(fleet)) == 3


def test_a_terminated_worker_is_no_longer_alive_and_terminating_again_is_no_error(subject):
    fleet = subject.fleet
    gone, kept = fleet.launch(fleet.zones()[0], 2, "cycle-1:a").instance_ids

    fleet.terminate(gone)
    fleet.terminate(gone)
    fleet.terminate("i-0123456789abcdef0")  # unknown (long gone): fine

    assert set(alive(fleet)) == {kept}
    assert all(i.state is InstanceState.TERMINATED for i in fleet.list_workers() if i.id == gone)


def test_a_stopped_worker_is_listed_warm_with_when_it_was_stopped(subject):
    fleet = subject.fleet
    stopped, running = fleet.launch(fleet.zones()[0], 2, "cycle-1:a").instance_ids
    before = subject.now()

    fleet.stop(stopped)

    listed = {i.id: i for i in fleet.list_workers()}
    assert listed[stopped].warm and not listed[stopped].alive
    assert before - 1 <= listed[stopped].stopped_at <= subject.now()  # EC2 says it to the second
    assert listed[running].alive and listed[running].stopped_at is None


def test_an_instance_that_is_not_our_worker_is_never_listed_and_never_terminated(subject):
    if subject.foreign is None:
        pytest.skip("this implementation's world holds only its own workers")
    fleet = subject.fleet
    ours = fleet.launch(fleet.zones()[0], 1, "cycle-1:a").instance_ids
    theirs = subject.foreign()

    with pytest.raises(NotOurInstance, match=theirs):
        fleet.terminate(theirs)

    assert {i.id for i in fleet.list_workers()} == set(ours)
