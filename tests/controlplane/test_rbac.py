"""gitops/infrastructure/node-fleet-rbac, judged by the real RBAC authorizer.

Every call node-fleet makes on the API server (the autoscaler's Cluster adapter, and the GitOps
hook's reads of Flux objects) succeeds with the `node-fleet` ServiceAccount's token; taking away
any one rule of its ClusterRole makes exactly the calls that rule serves fail with 403.
"""

from __future__ import annotations

import base64
import copy
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
import yaml

from autoscaler.adapters.kube import KubeAuthError, KubeCluster
from autoscaler.gitops.reader import list_objects
from autoscaler.model import Pod
from autoscaler.ports import EvictionOutcome
from kube_objects import REPO, Admin, collection, kustomize, node, pod, until

pytestmark = pytest.mark.controlplane

RBAC = REPO / "gitops" / "infrastructure" / "node-fleet-rbac"
NAMESPACE = "node-fleet"
NODE = "rbac-worker"
ROLE_PATH = "/apis/rbac.authorization.k8s.io/v1/clusterroles/node-fleet"


@dataclass(frozen=True)
class Call:
    """One thing node-fleet asks of the API server, and the (group, resource, verb) grants it needs."""

    name: str
    needs: frozenset[tuple[str, str, str]]
    run: Callable[[KubeCluster], object]


def _evict_missing(cluster: KubeCluster) -> object:
    # A pod that does not exist: authorized, the answer is 404 (GONE); refused, it is 403.
    return cluster.evict(Pod(name="no-such-pod", namespace="default", cpu_m=0, mem_mib=0))


def _list_pods(cluster: KubeCluster) -> object:
    pods = cluster.list_pods()
    cluster.disruption_budgets()  # answered from what list_pods read
    return pods


CALLS = [
    Call("list_nodes", frozenset({("", "nodes", "list")}), KubeCluster.list_nodes),
    Call(
        "list_pods",
        frozenset(
            {
                ("", "pods", "list"),
                ("policy", "poddisruptionbudgets", "list"),
                ("", "persistentvolumeclaims", "list"),
                ("", "persistentvolumes", "list"),
                ("storage.k8s.io", "storageclasses", "list"),
            }
        ),
        _list_pods,
    ),
    Call("disruption_budgets", frozenset({("policy", "poddisruptionbudgets", "list")}), KubeCluster.disruption_budgets),
    Call("daemonset_pods", frozenset({("apps", "daemonsets", "list")}), KubeCluster.daemonset_pods),
    Call("cordon", frozenset({("", "nodes", "get"), ("", "nodes", "patch")}), lambda c: c.cordon(NODE)),
    Call("uncordon", frozenset({("", "nodes", "get"), ("", "nodes", "patch")}), lambda c: c.uncordon(NODE)),
    Call("evict", frozenset({("", "pods/eviction", "create")}), _evict_missing),
    Call("delete_node", frozenset({("", "nodes", "delete")}), lambda c: c.delete_node("no-such-node")),
    Call(
        "gate: list Flux objects",
        frozenset(
            {
                ("kustomize.toolkit.fluxcd.io", "kustomizations", "list"),
                ("helm.toolkit.fluxcd.io", "helmreleases", "list"),
                ("flagger.app", "canaries", "list"),
            }
        ),
        list_objects,
    ),
]


def grants(rule: dict) -> set[tuple[str, str, str]]:
    return {(g, r, v) for g in rule["apiGroups"] for r in rule["resources"] for v in rule["verbs"]}


def refused(cluster: KubeCluster) -> dict[str, int]:
    """The calls the API server refuses to this identity, with their status."""
    out = {}
    for call in CALLS:
        try:
            call.run(cluster)
        except KubeAuthError as err:
            out[call.name] = err.status
    return out


@pytest.fixture(scope="module")
def rbac(controlplane: Admin, flux_crds: list[str]) -> dict[str, dict]:
    """The rendered node-fleet-rbac objects, created for real (by kind)."""
    docs = kustomize(RBAC)
    for doc in docs:
        # The namespace may be there already: the manifests tests create gitops/' namespaces.
        controlplane.request("POST", collection(doc), doc, ok=(201, 409) if doc["kind"] == "Namespace" else (201,))
    controlplane.request("POST", "/api/v1/nodes", node(NODE), ok=(201, 409))
    return {doc["kind"]: doc for doc in docs}


@pytest.fixture(scope="module")
def sa_token(controlplane: Admin, rbac: dict[str, dict]) -> str:
    """A token for the ServiceAccount from the TokenRequest API."""
    return token_for(controlplane, "node-fleet")


def token_for(controlplane: Admin, account: str) -> str:
    review = controlplane.request(
        "POST",
        f"/api/v1/namespaces/{NAMESPACE}/serviceaccounts/{account}/token",
        {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {"expirationSeconds": 3600}},
    )
    return review["status"]["token"]


@pytest.fixture
def as_node_fleet(controlplane: Admin, sa_token: str) -> Iterator[KubeCluster]:
    cluster = controlplane.cluster(sa_token)
    yield cluster
    cluster.close()


def test_every_call_is_allowed(controlplane: Admin, as_node_fleet: KubeCluster):
    controlplane.namespace("rbac-apps")
    controlplane.run_pod(pod("victim", "rbac-apps", node=NODE, owner=None))
    cluster = as_node_fleet
    assert NODE in {n.name for n in cluster.list_nodes()}
    pods = {p.name: p for p in cluster.list_pods()}
    assert "victim" in pods
    assert isinstance(cluster.disruption_budgets(), dict)
    assert cluster.daemonset_pods() == []
    cluster.cordon(NODE)
    assert controlplane.get(f"/api/v1/nodes/{NODE}")["spec"]["unschedulable"] is True
    cluster.uncordon(NODE)
    assert "unschedulable" not in controlplane.get(f"/api/v1/nodes/{NODE}")["spec"]
    assert cluster.evict(pods["victim"]) is EvictionOutcome.EVICTED
    assert list_objects(cluster) == []
    assert refused(cluster) == {}


def test_the_token_secret_is_filled_and_works(controlplane: Admin, rbac: dict[str, dict]):
    """The long-lived token gitops/README tells operators to copy into SSM: the token controller
    fills it in, and it carries the same rights."""
    name = rbac["Secret"]["metadata"]["name"]
    secret = until(
        lambda: (s := controlplane.get(f"/api/v1/namespaces/{NAMESPACE}/secrets/{name}"))["data"].get("token") and s,
        what="the token controller to fill the Secret",
    )
    cluster = controlplane.cluster(base64.b64decode(secret["data"]["token"]).decode())
    try:
        assert refused(cluster) == {}
    finally:
        cluster.close()


def test_the_admin_is_not_what_passes(controlplane: Admin, rbac: dict[str, dict]):
    """A token for another ServiceAccount of the namespace, bound to nothing, is refused everything:
    the authorizer is really judging."""
    controlplane.create(
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "nobody", "namespace": NAMESPACE}}
    )
    cluster = controlplane.cluster(token_for(controlplane, "nobody"))
    try:
        assert refused(cluster) == dict.fromkeys((c.name for c in CALLS), 403)
    finally:
        cluster.close()


ROLE = yaml.safe_load((RBAC / "cluster-role.yaml").read_text())


@pytest.mark.parametrize("index", range(len(ROLE["rules"])), ids=[",".join(r["resources"]) for r in ROLE["rules"]])
def test_removing_any_one_rule_breaks_the_calls_it_serves(
    controlplane: Admin, rbac: dict[str, dict], as_node_fleet: KubeCluster, index: int
):
    role = rbac["ClusterRole"]
    rules = role["rules"]
    removed = rules[index]
    expected = {c.name: 403 for c in CALLS if c.needs & grants(removed)}
    assert expected, f"rule {removed} serves no call node-fleet makes"
    smaller = copy.deepcopy(role)
    smaller["rules"] = rules[:index] + rules[index + 1 :]
    controlplane.request("PUT", ROLE_PATH, smaller)
    try:
        until(lambda: refused(as_node_fleet) == expected, what=f"exactly {sorted(expected)} to be refused", timeout=20)
    finally:
        controlplane.request("PUT", ROLE_PATH, role)
    until(lambda: refused(as_node_fleet) == {}, what="every call allowed again", timeout=20)
