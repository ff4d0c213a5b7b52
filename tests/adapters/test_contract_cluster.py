"""The contract of the Cluster port (src/autoscaler/ports.py), run against every implementation: the
unit tests' FakeCluster, the simulator's SimCluster over its virtual cluster, and KubeCluster
through the real `kubernetes` client against the fake API server and against the real control plane
of tools/controlplane (marker `controlplane`). Each starts from the same world:
two workers, a pod `web-1` bound to one of them, and, where the implementation has them, a pod
`guarded-1` next to it whose PDB allows no disruption and a DaemonSet `agent`. What only the Kubernetes adapter has
(paging, patches, parsing, errors) stays in test_kube.py."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

import node_fleet.stack.kube_api as fk
from autoscaler.adapters.kube import KubeCluster, api_client
from autoscaler.config.kube import KubeOptions
from autoscaler.model import Node, Pod
from autoscaler.ports import Cluster, EvictionOutcome
from fakes import FakeCluster
from kube_objects import Admin, running_controlplane, until
from kube_objects import node as cp_node
from kube_objects import pod as cp_pod
from node_fleet.sim.cluster import ClusterModel, VirtualCluster
from node_fleet.sim.ports import Clock, SimCluster
from node_fleet.sim.record import RunRecord
from node_fleet.sim.workload import PodSpec, Workload


@dataclass
class Subject:
    cluster: Cluster
    guarded: str | None
    """`namespace/name` of the PDB that allows no disruption to `guarded-1`; None where the
    implementation has no PDBs."""
    daemonsets: frozenset[str] = frozenset()
    """The DaemonSets of its world (the simulator has none)."""


def memory() -> Subject:
    fake = FakeCluster(
        nodes=[Node("n1", 2000, 7680, "i-0001", "eu-west-1a"), Node("n2", 2000, 7680, "i-0002", "eu-west-1b")],
        pods=[Pod("web-1", "default", 100, 128, node="n1"), Pod("guarded-1", "default", 100, 128, node="n1")],
        blocked={"guarded-1"},
        budgets={"default/guarded": 0},
        daemonsets=[Pod("agent", "kube-system", 50, 64)],
    )
    return Subject(fake, "default/guarded", frozenset({"agent"}))


def simulated() -> Subject:
    workload = Workload("w", (PodSpec("web-1", 0.0, None, 100, 128),), 600)
    vc = VirtualCluster(workload, ClusterModel(), RunRecord("p", "w", 600, 10, 60, 2000, 7680, 2))
    vc.boot(2)
    vc.step(0.0)
    return Subject(SimCluster(vc, Clock()), None)


@pytest.fixture(scope="module")
def real_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Admin]:
    """A control plane of the contract's own, so its world is the whole cluster."""
    with running_controlplane(tmp_path_factory.mktemp("contract-controlplane")) as admin:
        yield admin


def real(admin: Admin) -> Subject:
    """The world on the real API server, afresh. The pods' grace period is 0, so an evicted pod is
    gone at once, as the other implementations have it (there is no kubelet to end it)."""
    for path in (
        "/api/v1/nodes",
        "/apis/apps/v1/namespaces/kube-system/daemonsets",
        "/apis/policy/v1/namespaces/default/poddisruptionbudgets",
    ):
        admin.delete(path)
    admin.delete("/api/v1/namespaces/default/pods", params={"gracePeriodSeconds": 0})
    until(
        lambda: not admin.get("/api/v1/pods")["items"] and not admin.get("/api/v1/nodes")["items"],
        what="a clean cluster",
    )
    for name, zone in (("n1", "eu-west-1a"), ("n2", "eu-west-1b")):
        admin.create(cp_node(name, provider_id=f"aws:///{zone}/i-0a1b2c3d4e5f6000{name[1]}"))
    for name in ("web-1", "guarded-1"):
        admin.run_pod(cp_pod(name, "default", node="n1", labels={"app": name[:-2]}, grace_s=0))
    pdb = {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": "guarded", "namespace": "default"},
        "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "guarded"}}},
    }
    generation = admin.create(pdb)["metadata"]["generation"]
    path = "/apis/policy/v1/namespaces/default/poddisruptionbudgets/guarded"
    until(
        lambda: admin.get(path)["status"].get("observedGeneration") == generation,
        what="the disruption controller to judge the PDB",
    )
    template = {"metadata": {"labels": {"app": "agent"}}, "spec": cp_pod("agent", "kube-system")["spec"]}
    admin.create(
        {
            "apiVersion": "apps/v1",
            "kind": "DaemonSet",
            "metadata": {"name": "agent", "namespace": "kube-system"},
            "spec": {"selector": {"matchLabels": {"app": "agent"}}, "template": template},
        }
    )
    return Subject(admin.cluster(), "default/guarded", frozenset({"agent"}))


@pytest.fixture(params=["memory", "sim", "kube", pytest.param("controlplane", marks=pytest.mark.controlplane)])
def subject(request) -> Iterator[Subject]:
    if request.param == "controlplane":
        found = real(request.getfixturevalue("real_api"))
        yield found
        found.cluster.close()
        return
    if request.param != "kube":
        yield memory() if request.param == "memory" else simulated()
        return
    with fk.FakeKube(token="contract-token") as kube:
        kube.add(
            fk.node("n1", instance_id="i-0a1b2c3d4e5f60001", az="eu-west-1a"),
            fk.node("n2", instance_id="i-0a1b2c3d4e5f60002", az="eu-west-1b"),
            fk.pod("web-1", node="n1", labels={"app": "web"}),
            fk.pod("guarded-1", node="n1", labels={"app": "guarded"}),
            fk.pdb("guarded", match_labels={"app": "guarded"}, disruptions_allowed=0),
            fk.daemonset("agent"),
        )
        options = KubeOptions.from_env({"K8S_API_URL": kube.url, "K8S_TOKEN_PARAM": "/t"}, token=kube.token)
        cluster = KubeCluster(api_client(options), page_size=options.page_size)
        yield Subject(cluster, "default/guarded", frozenset({"agent"}))
        cluster.close()


def pod(cluster: Cluster, name: str) -> Pod:
    (found,) = [p for p in cluster.list_pods() if p.name == name]
    return found


def nodes(cluster: Cluster) -> dict[str, Node]:
    return {n.name: n for n in cluster.list_nodes()}


def test_every_bound_pod_is_on_a_listed_node(subject):
    listed = nodes(subject.cluster)
    pods = subject.cluster.list_pods()
    assert len(listed) == 2 and "web-1" in {p.name for p in pods}
    assert all(p.node in listed for p in pods if p.node is not None)
    assert pod(subject.cluster, "web-1").node is not None


def test_cordon_and_uncordon_change_only_that_node(subject):
    cluster = subject.cluster
    home = pod(cluster, "web-1").node
    assert not any(n.cordoned for n in cluster.list_nodes())

    cluster.cordon(home)
    assert {name for name, n in nodes(cluster).items() if n.cordoned} == {home}

    cluster.uncordon(home)
    assert not any(n.cordoned for n in cluster.list_nodes())


def test_an_evicted_pod_leaves_its_node(subject):
    cluster = subject.cluster
    web = pod(cluster, "web-1")

    assert cluster.evict(web) is EvictionOutcome.EVICTED

    assert web.name not in {p.name for p in cluster.list_pods() if p.node == web.node}


def test_evicting_a_pod_that_is_gone(subject):
    home = pod(subject.cluster, "web-1").node
    assert subject.cluster.evict(Pod("ghost", "default", 100, 128, node=home)) is EvictionOutcome.GONE


def test_a_pdb_with_no_disruption_left_blocks_the_eviction(subject):
    if subject.guarded is None:
        pytest.skip("this implementation has no PodDisruptionBudgets")
    cluster = subject.cluster
    guarded = pod(cluster, "guarded-1")
    assert cluster.disruption_budgets()[subject.guarded] == 0

    assert cluster.evict(guarded) is EvictionOutcome.BLOCKED

    assert pod(cluster, "guarded-1").node == guarded.node


def test_budgets_name_namespace_and_pdb(subject):
    budgets = subject.cluster.disruption_budgets()
    assert all("/" in name and isinstance(allowed, int) and allowed >= 0 for name, allowed in budgets.items())


def test_a_deleted_node_is_no_longer_listed_and_deleting_it_again_is_no_error(subject):
    cluster = subject.cluster
    (empty,) = set(nodes(cluster)) - {pod(cluster, "web-1").node}

    cluster.delete_node(empty)
    cluster.delete_node(empty)

    assert empty not in nodes(cluster) and len(nodes(cluster)) == 1


def test_one_unbound_pod_per_daemonset(subject):
    pods = subject.cluster.daemonset_pods()
    assert sorted(p.name for p in pods) == sorted(subject.daemonsets)
    assert all(p.node is None for p in pods)
