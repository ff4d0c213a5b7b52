"""Spot interruptions end to end on the embedded stack, on the fake API server and on the real
control plane (as test_cycles.py): EC2's warning, as EventBridge delivers it, through
autoscaler.handler.lambda_handler.

A spot worker the autoscaler launched (SPOT_SHARE=1) is warned: a replacement is launched in its
zone and the node is cordoned and drained through the Eviction API in that same invocation, with no
scale-down timer run out. A warning for an instance that is not a worker of this cluster, or a
second delivery, changes nothing.
"""

from __future__ import annotations

import uuid

import pytest

from stack_driver import codes, load_event, now_iso

pytestmark = pytest.mark.parametrize(
    "embedded",
    ["fake", pytest.param("controlplane", marks=pytest.mark.controlplane)],
    indirect=True,
    scope="module",
)


def warning(instance_id: str, event_id: str | None = None) -> dict:
    """EC2's interruption warning for `instance_id`, as events/spot_interruption_warning.json has it."""
    return load_event(
        "spot_interruption_warning.json",
        id=event_id or str(uuid.uuid4()),
        time=now_iso(),
        detail={"instance-id": instance_id, "instance-action": "terminate"},
    )


def spot_worker(cluster) -> tuple[str, str]:
    """(instance id, node) of a spot worker the autoscaler launched for a pending pod, Ready and running it."""
    cluster.set(SPOT_SHARE="1", SCALE_DOWN_UNNEEDED_TIME_S="3600", WARM_POOL_SIZE="0")
    # 7 x 600m: three fit on each seeded 2000m worker, one is left for a new worker.
    cluster.kubelets.add_workload("sale", replicas=7, cpu_m=600)
    cluster.wait(lambda: len(cluster.unschedulable()) == 1, what="one pod unschedulable")
    before = set(cluster.alive())
    answer = cluster.tick()
    assert answer["action"] == "scale_up", answer
    (instance_id,) = set(cluster.alive()) - before
    assert cluster.alive()[instance_id].get("InstanceLifecycle") == "spot"
    node = cluster.wait(
        lambda: (
            cluster.kubelets.node_of(instance_id) in cluster.ready_workers() and cluster.kubelets.node_of(instance_id)
        )
    )
    cluster.wait(lambda: cluster.pods_on(node), what="the pod on the spot worker")
    return instance_id, node


def test_a_warning_for_a_spot_worker_launches_a_replacement_in_its_zone_and_drains_the_node(cluster):
    instance_id, node = spot_worker(cluster)
    zone = cluster.alive()[instance_id]["Placement"]["AvailabilityZone"]
    on_it = cluster.pods_on(node)
    before = set(cluster.alive())

    event_id = str(uuid.uuid4())
    answer = cluster.invoke(warning(instance_id, event_id))

    assert answer["status"] == "acted" and answer["launches"] == {zone: 1} and answer["remove"] == [node], answer
    assert "spot_interruption" in codes(answer)
    (replacement,) = set(cluster.alive()) - before
    assert cluster.alive()[replacement]["Placement"]["AvailabilityZone"] == zone
    assert cluster.cordoned(node)
    evicted = [path for method, path, status in cluster.mutations() if path.endswith("/eviction") and status == 201]
    assert sorted(p.split("/")[-2] for p in evicted) == sorted(on_it), "every pod of the node evicted at once"
    (drain,) = cluster.state().drains
    assert drain.node == node and drain.interrupted

    # Delivered again (EventBridge's at-least-once), or warned again: no second replacement, no second drain.
    world = set(cluster.alive())
    for again in (warning(instance_id, event_id), warning(instance_id)):
        cluster.invoke(again)
        assert set(cluster.alive()) <= world, "nothing launched twice"
        assert len(cluster.state().drains) <= 1


def test_a_warning_for_an_instance_not_of_this_cluster_changes_nothing(cluster):
    ec2 = cluster.stack.clients["ec2"]
    worker = next(iter(cluster.alive().values()))
    foreign = ec2.run_instances(
        ImageId=worker["ImageId"],
        MinCount=1,
        MaxCount=1,
        SubnetId=worker["SubnetId"],
        InstanceMarketOptions={"MarketType": "spot"},
        TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "node-fleet.io/role", "Value": "worker"}]}],
    )["Instances"][0]["InstanceId"]
    before = cluster.world()

    answer = cluster.invoke(warning(foreign))

    assert answer["status"] == "ignored" and foreign in answer["detail"], answer
    assert cluster.world() == before
