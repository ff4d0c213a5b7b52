"""The simulated kubelets, scheduler and ReplicaSets of the embedded stack (node_fleet.stack.kubelets),
on the fake API server's store (no HTTP) with an in-memory stand-in for EC2 and a fixed clock.

The integration tests and `make demo` rely on this simulation behaving like a cluster; here each
behaviour is pinned on its own, read back through the autoscaler's own parsers where they apply.
"""

from __future__ import annotations

import re

import pytest

from autoscaler.adapters.kube_nodes import parse_node
from autoscaler.adapters.kube_parse import parse_pod
from node_fleet.stack.kube_api import FakeKube, objects
from node_fleet.stack.kubelets import KubeletFleet, WorkerShape, iso
from node_fleet.stack.prometheus import PrometheusMissing
from node_fleet.stack.stack import EmbeddedStack

T0 = 1_795_000_000.0


class Ec2:
    """What KubeletFleet reads of EC2: describe_instances pages (the filters are trusted here)."""

    def __init__(self) -> None:
        self.instances: list[dict] = []

    def run(self, instance_id: str, az: str = "eu-west-1a", ip: str = "10.42.0.4") -> dict:
        instance = {
            "InstanceId": instance_id,
            "State": {"Name": "running"},
            "Placement": {"AvailabilityZone": az},
            "PrivateDnsName": f"ip-{ip.replace('.', '-')}.eu-west-1.compute.internal",
            "PrivateIpAddress": ip,
            "InstanceType": "t3.large",
        }
        self.instances.append(instance)
        return instance

    def terminate(self, instance_id: str) -> None:
        next(i for i in self.instances if i["InstanceId"] == instance_id)["State"]["Name"] = "terminated"

    def get_paginator(self, name: str):
        assert name == "describe_instances"
        return self

    def paginate(self, Filters):
        return [{"Reservations": [{"Instances": list(self.instances)}]}]


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def sim():
    kube, ec2, clock = FakeKube(token=None), Ec2(), Clock()
    fleet = KubeletFleet(kube, ec2, "demo", boot_delay_s=2.0, clock=clock, metrics_clock=clock, usage_factor=0.5)
    return kube, ec2, clock, fleet


def node_names(kube: FakeKube) -> list[str]:
    return [n["metadata"]["name"] for n in kube.objects("nodes")]


def test_a_running_instance_registers_a_ready_node_after_the_boot_delay(sim):
    kube, ec2, clock, fleet = sim
    ec2.run("i-0aaaaaaaaaaaaaaa1", az="eu-west-1b", ip="10.42.1.7")
    fleet.step()
    clock.now += 1.9
    fleet.step()
    assert node_names(kube) == []
    clock.now += 0.1
    fleet.step()
    (raw,) = kube.objects("nodes")
    node = parse_node(raw)
    assert node.name == "ip-10-42-1-7.eu-west-1.compute.internal"
    assert (node.instance_id, node.az, node.ready, node.control_plane) == (
        "i-0aaaaaaaaaaaaaaa1",
        "eu-west-1b",
        True,
        False,
    )
    assert (node.alloc_cpu_m, node.alloc_mem_mib) == (2000, 7680)
    assert raw["spec"]["providerID"] == "aws:///eu-west-1b/i-0aaaaaaaaaaaaaaa1"
    assert raw["metadata"]["labels"]["node-fleet.io/pool"] == "workers"
    assert raw["metadata"]["creationTimestamp"] == iso(clock.now)


def test_an_instance_chosen_to_never_join_boots_but_registers_no_node(sim):
    kube, ec2, clock, fleet = sim
    fleet.never_join(1)
    broken = ec2.run("i-0aaaaaaaaaaaaaaa1")
    fleet.step()
    ec2.run("i-0aaaaaaaaaaaaaaa2", ip="10.42.0.5")
    fleet.step()
    clock.now += 600
    fleet.step()
    assert node_names(kube) == ["ip-10-42-0-5.eu-west-1.compute.internal"]
    assert fleet.node_of(broken["InstanceId"]) == "ip-10-42-0-4.eu-west-1.compute.internal"


def test_a_terminated_instance_stops_its_kubelet(sim):
    kube, ec2, clock, fleet = sim
    fleet.adopt(ec2.run("i-0aaaaaaaaaaaaaaa1"))
    fleet.step()
    (name,) = fleet.serving()
    ec2.terminate("i-0aaaaaaaaaaaaaaa1")
    clock.now += 5
    fleet.step()
    assert fleet.serving() == [] and name not in fleet.exposition()
    node = kube.get("nodes", name)
    assert not parse_node(node).ready, "the Node stays, NotReady, until someone deletes it"
    ready = next(c for c in node["status"]["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("Unknown", "NodeStatusUnknown")


def test_the_scheduler_binds_first_fit_and_marks_what_fits_nowhere_unschedulable(sim):
    kube, ec2, clock, fleet = sim
    a = fleet.adopt(ec2.run("i-0aaaaaaaaaaaaaaa1", ip="10.42.0.4"))
    b = fleet.adopt(ec2.run("i-0aaaaaaaaaaaaaaa2", ip="10.42.0.5"))
    tainted = fleet.adopt(ec2.run("i-0aaaaaaaaaaaaaaa3", ip="10.42.0.6"))
    node = kube.get("nodes", tainted)
    node["spec"]["taints"] = [{"key": "node-fleet.io/draining", "value": "true", "effect": "NoSchedule"}]
    kube.add(node)
    fleet.add_workload("web", replicas=5, cpu_m=900)
    fleet.step()
    placed = {p["metadata"]["name"]: p["spec"].get("nodeName") for p in kube.objects("pods")}
    assert sorted(placed.values(), key=str) == sorted([a, a, b, b, None], key=str)
    (waiting,) = [kube.get("pods", n, "default") for n, node in placed.items() if node is None]
    assert parse_pod(waiting).unschedulable_since == T0
    condition = waiting["status"]["conditions"][-1]
    assert (condition["type"], condition["status"], condition["reason"]) == ("PodScheduled", "False", "Unschedulable")

    clock.now += 30
    fleet.step()  # still waiting: the time it became unschedulable is kept
    assert parse_pod(kube.get("pods", waiting["metadata"]["name"], "default")).unschedulable_since == T0
    node = kube.get("nodes", tainted)
    node["spec"]["taints"] = []
    kube.add(node)
    fleet.step()
    assert kube.get("pods", waiting["metadata"]["name"], "default")["spec"]["nodeName"] == tainted


def test_evicted_pods_go_and_a_replicaset_replaces_its_own_but_not_a_bare_pod(sim):
    kube, ec2, clock, fleet = sim
    a = fleet.adopt(ec2.run("i-0aaaaaaaaaaaaaaa1", ip="10.42.0.4"))
    b = fleet.adopt(ec2.run("i-0aaaaaaaaaaaaaaa2", ip="10.42.0.5"))
    fleet.add_workload("web", replicas=1, cpu_m=300, nodes=[a])
    kube.add(objects.pod("bare", node=a, owner=None))
    (web,) = [p for p in kube.objects("pods") if p["metadata"]["labels"].get("app") == "web"]
    node = kube.get("nodes", a)
    node["spec"]["unschedulable"] = True  # cordoned, as a drain does
    kube.add(node)
    for pod in (web, kube.get("pods", "bare", "default")):  # evicted: terminating
        pod["metadata"]["deletionTimestamp"] = iso(clock.now)
        kube.add(pod)
    fleet.step()
    pods = {p["metadata"]["name"]: p["spec"].get("nodeName") for p in kube.objects("pods")}
    assert "bare" not in pods and web["metadata"]["name"] not in pods
    (replacement,) = pods.items()
    assert replacement[1] == b and re.match(r"web-\w+-\d+", replacement[0])

    fleet.scale("web", 3)
    fleet.step()
    assert len(kube.objects("pods")) == 3
    fleet.scale("web", 1)
    fleet.step()
    assert len(kube.objects("pods")) == 1


def test_a_pod_bound_to_a_deleted_node_is_collected_and_replaced(sim):
    kube, ec2, _, fleet = sim
    a = fleet.adopt(ec2.run("i-0aaaaaaaaaaaaaaa1", ip="10.42.0.4"))
    b = fleet.adopt(ec2.run("i-0aaaaaaaaaaaaaaa2", ip="10.42.0.5"))
    fleet.add_workload("web", replicas=2, cpu_m=300, nodes=[a])
    kube.remove("nodes", a)
    fleet.step()
    assert [p["spec"]["nodeName"] for p in kube.objects("pods")] == [b, b]


def test_metrics_are_node_exporter_counters_per_node_from_the_pods_requests(sim):
    _, ec2, clock, fleet = sim
    a = fleet.adopt(ec2.run("i-0aaaaaaaaaaaaaaa1", ip="10.42.0.4"))
    fleet.add_static_node("server", 2000, 3883)
    fleet.add_workload("web", replicas=2, cpu_m=500, mem_mib=1024, nodes=[a], usage=0.8)
    fleet.step()
    # 50m of system use plus 2 x 500m x 0.8: 850m of 2000m.
    assert fleet.cpu_share(a) == pytest.approx(0.425)
    assert fleet.cpu_share("server") == pytest.approx(0.025)

    def idle(text: str) -> float:
        pattern = rf'node_cpu_seconds_total{{cpu="1",instance="{re.escape(a)}",mode="idle"}} ([0-9.]+)'
        return float(re.search(pattern, text).group(1))

    first = fleet.exposition()
    clock.now += 10
    second = fleet.exposition()
    assert idle(second) - idle(first) == pytest.approx(10 * (1 - 0.425))
    assert f'node_memory_MemTotal_bytes{{instance="{a}"}} {7680 * 2**20}' in second
    available = float(re.search(rf'node_memory_MemAvailable_bytes{{instance="{re.escape(a)}"}} (\d+)', second).group(1))
    assert available == pytest.approx((7680 - 400 - 2 * 1024 * 0.8) * 2**20)
    assert "# TYPE node_cpu_seconds_total counter" in second and 'instance="server"' in second


def test_the_worker_shape_is_what_the_nodes_offer(sim):
    kube, ec2, _, _ = sim
    fleet = KubeletFleet(kube, ec2, "demo", shape=WorkerShape(cpu_m=4000, mem_mib=16000, instance_type="m7g.xlarge"))
    fleet.adopt(ec2.run("i-0aaaaaaaaaaaaaaa1"))
    node = parse_node(kube.objects("nodes")[0])
    assert (node.alloc_cpu_m, node.alloc_mem_mib) == (4000, 16000)


def test_the_stack_without_prometheus_says_how_to_install_it(monkeypatch):
    monkeypatch.setattr("node_fleet.stack.stack.binaries", lambda: None)
    with pytest.raises(PrometheusMissing, match="apt-get install prometheus"):
        EmbeddedStack().start()
