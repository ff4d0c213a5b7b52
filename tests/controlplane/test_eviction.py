"""Eviction and PodDisruptionBudgets with the real disruption controller, through node-fleet's adapter.

The disruption controller computes status.disruptionsAllowed from the pods it sees healthy; the
Eviction subresource answers 429 while that is 0. A test kubelet (kube_objects.Kubelet) runs the
pods the scheduler binds and removes evicted ones when their grace period is over.
"""

from __future__ import annotations

import itertools
import time

import pytest

from autoscaler.adapters.kube import DRAINING_TAINT, KubeCluster
from autoscaler.ports import EvictionOutcome
from kube_objects import Admin, Kubelet, node, pod, until

pytestmark = pytest.mark.controlplane

_ids = itertools.count()


def pdb(name: str, namespace: str, app: str, min_available: int) -> dict:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"minAvailable": min_available, "selector": {"matchLabels": {"app": app}}},
    }


def replicaset(name: str, namespace: str, app: str, replicas: int, grace_s: int) -> dict:
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": app}},
            "template": {
                "metadata": {"labels": {"app": app}},
                # Only this test's nodes: other tests leave theirs behind.
                "spec": pod("x", namespace, grace_s=grace_s, nodeSelector={"test": namespace})["spec"],
            },
        },
    }


@pytest.fixture
def ns(controlplane: Admin) -> str:
    return controlplane.namespace(f"evict-{next(_ids)}")


@pytest.fixture
def cluster(controlplane: Admin):
    c = controlplane.cluster()
    yield c
    c.close()


def allowed(cluster: KubeCluster, key: str) -> int | None:
    """disruptionsAllowed read now (disruption_budgets may answer with what list_pods just read)."""
    return next((b.disruptions_allowed for b in cluster.list_pdbs() if b.key == key), None)


def test_budget_from_the_disruption_controller(controlplane: Admin, cluster: KubeCluster, ns: str):
    controlplane.create(node(f"{ns}-n"))
    for i in range(3):
        controlplane.run_pod(pod(f"web-{i}", ns, node=f"{ns}-n", labels={"app": "web"}))
    controlplane.create(pdb("web", ns, "web", 2))
    until(lambda: allowed(cluster, f"{ns}/web") == 1, what="disruptionsAllowed = 3 healthy - minAvailable 2")
    pods = [p for p in cluster.list_pods() if p.namespace == ns]
    assert {p.pdbs for p in pods} == {(f"{ns}/web",)}
    assert all(p.has_pdb for p in pods)


def test_429_while_the_budget_is_spent_then_success(controlplane: Admin, cluster: KubeCluster, ns: str):
    name = f"{ns}-n"
    controlplane.create(node(name))
    for i in range(3):
        controlplane.run_pod(pod(f"web-{i}", ns, node=name, labels={"app": "web"}, grace_s=30))
    controlplane.create(pdb("web", ns, "web", 2))
    until(lambda: allowed(cluster, f"{ns}/web") == 1, what="one disruption allowed")
    web = {p.name: p for p in cluster.list_pods() if p.namespace == ns}

    assert cluster.evict(web["web-0"]) is EvictionOutcome.EVICTED
    # The first eviction spent the budget at once (the API server records it in the PDB's status).
    assert cluster.evict(web["web-1"]) is EvictionOutcome.BLOCKED
    assert allowed(cluster, f"{ns}/web") == 0
    # web-0 is terminating, not gone: it no longer counts as healthy, the budget stays spent.
    assert controlplane.get(f"/api/v1/namespaces/{ns}/pods/web-0")["metadata"]["deletionTimestamp"]
    assert cluster.evict(web["web-1"]) is EvictionOutcome.BLOCKED

    controlplane.run_pod(pod("web-3", ns, node=name, labels={"app": "web"}))  # its replacement
    until(lambda: allowed(cluster, f"{ns}/web") == 1, what="the budget back once the replacement is Ready")
    assert cluster.evict(web["web-1"]) is EvictionOutcome.EVICTED
    controlplane.request("DELETE", f"/api/v1/namespaces/{ns}/pods/web-0", {"gracePeriodSeconds": 0})
    assert cluster.evict(web["web-0"]) is EvictionOutcome.GONE


def test_eviction_honours_the_pods_grace_period(controlplane: Admin, cluster: KubeCluster, ns: str):
    name = f"{ns}-n"
    controlplane.create(node(name))
    controlplane.run_pod(pod("slow", ns, node=name, grace_s=3))
    (slow,) = [p for p in cluster.list_pods() if p.namespace == ns]
    assert slow.grace_period_s == 3
    with Kubelet(controlplane, [name]) as kubelet:
        evicted_at = time.monotonic()
        assert cluster.evict(slow) is EvictionOutcome.EVICTED
        meta = controlplane.get(f"/api/v1/namespaces/{ns}/pods/slow")["metadata"]
        assert meta["deletionGracePeriodSeconds"] == 3
        until(lambda: "slow" in kubelet.gone, what="the kubelet to remove the pod", timeout=30)
    # deletionTimestamp has whole seconds: the pod lived on for its grace period, give or take one.
    assert kubelet.gone["slow"] - evicted_at >= 2
    assert controlplane.get(f"/api/v1/namespaces/{ns}/pods/slow", ok=(404,))["reason"] == "NotFound"


def test_drain_end_to_end(controlplane: Admin, cluster: KubeCluster, ns: str):
    """The actuator's drain through the adapter: cordon, evict every pod of the node cycle after
    cycle (429s included) until none is left, delete the Node. The ReplicaSet controller makes
    replacements and the real scheduler puts them on the other node, never on the cordoned one."""
    old, new = f"{ns}-old", f"{ns}-new"
    controlplane.create(node(old, labels={"test": ns}))
    with Kubelet(controlplane, [old, new]):
        controlplane.create(replicaset("web", ns, "web", replicas=3, grace_s=1))
        controlplane.create(pdb("web", ns, "web", 2))
        until(
            lambda: sum(p.node == old for p in cluster.list_pods() if p.namespace == ns) == 3,
            what="the scheduler to bind the 3 replicas to the only node",
        )
        until(lambda: allowed(cluster, f"{ns}/web") == 1, what="one disruption allowed")
        controlplane.create(node(new, labels={"test": ns}))

        cluster.cordon(old)
        spec = controlplane.get(f"/api/v1/nodes/{old}")["spec"]
        assert spec["unschedulable"] is True
        assert DRAINING_TAINT in spec["taints"]
        outcomes: list[EvictionOutcome] = []
        deadline = time.monotonic() + 90
        while pods := [p for p in cluster.list_pods() if p.node == old]:
            assert time.monotonic() < deadline, f"drain not done: {[p.name for p in pods]}"
            outcomes += [cluster.evict(p) for p in pods]
            time.sleep(0.5)

    assert EvictionOutcome.BLOCKED in outcomes, "the PDB never held an eviction back"
    assert outcomes.count(EvictionOutcome.EVICTED) >= 3
    placed = [p for p in cluster.list_pods() if p.namespace == ns]
    assert len(placed) == 3
    assert {p.node for p in placed} == {new}
    cluster.delete_node(old)
    assert old not in {n.name for n in cluster.list_nodes()}
    cluster.delete_node(old)  # a node already gone is not an error


def test_uncordon_undoes_cordon_and_keeps_other_taints(controlplane: Admin, cluster: KubeCluster, ns: str):
    name = f"{ns}-n"
    other = {"key": "dedicated", "value": "batch", "effect": "NoSchedule"}
    controlplane.create(node(name, taints=[other]))
    cluster.cordon(name)
    cluster.cordon(name)  # twice is once
    spec = controlplane.get(f"/api/v1/nodes/{name}")["spec"]
    assert spec["unschedulable"] is True
    assert [t for t in spec["taints"] if t["key"] != "node.kubernetes.io/unschedulable"] == [other, DRAINING_TAINT]
    (seen,) = [n for n in cluster.list_nodes() if n.name == name]
    assert seen.cordoned
    cluster.uncordon(name)
    until(
        lambda: (
            (s := controlplane.get(f"/api/v1/nodes/{name}")["spec"]).get("unschedulable") is None
            and [t for t in s.get("taints", []) if t["key"] != "node.kubernetes.io/unschedulable"] == [other]
        ),
        what="the node schedulable again with only its own taint",
    )
