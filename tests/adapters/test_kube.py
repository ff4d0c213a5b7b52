"""The Kubernetes adapter, through the real `kubernetes` client, against an API server over HTTP.

The target is a fixture parameter, each holding the same world (`world()`): the fake API server of
`node_fleet.stack.kube_api`, and a real control plane of its own (tools/controlplane, marker
`controlplane`). A third parameter runs the read-only tests against a user's cluster when
NODE_FLEET_TEST_KUBECONFIG names a kubeconfig (skipped otherwise):

    NODE_FLEET_TEST_KUBECONFIG=~/.kube/config NODE_FLEET_TEST_NODE=<a worker node> \\
        .venv/bin/pytest tests/adapters/test_kube.py

There they compare the adapter with the client's own models, and cordon/uncordon the node
NODE_FLEET_TEST_NODE names (skipped when unset). Paging restarts, faults and malformed answers
need a server that misbehaves on cue: those tests run against the fake only.
"""

from __future__ import annotations

import copy
import json
import math
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pytest

import autoscaler.adapters.kube as kube_adapter
import node_fleet.stack.kube_api as fk
from autoscaler.adapters.kube import (
    DRAINING_TAINT,
    KubeAuthError,
    KubeCluster,
    KubeError,
    api_client,
    configuration,
)
from autoscaler.adapters.kube_nodes import parse_provider_id
from autoscaler.adapters.kube_parse import parse_cluster
from autoscaler.adapters.kube_terms import pod_requests
from autoscaler.adapters.kube_values import cpu_millis, mem_bytes, parse_quantity
from autoscaler.config import ConfigError
from autoscaler.config.kube import KubeOptions, secret_parameter_names
from autoscaler.model import Pod
from autoscaler.ports import EvictionOutcome, PermanentError
from autoscaler.scheduling import Requirement
from kube_objects import Admin, running_controlplane, seed, until

REAL_KUBECONFIG = os.environ.get("NODE_FLEET_TEST_KUBECONFIG", "")
REAL_NODE = os.environ.get("NODE_FLEET_TEST_NODE", "")
TOKEN = "fake-token-0123"
CONTROL_PLANE_LABELS = ("node-role.kubernetes.io/control-plane", "node-role.kubernetes.io/master")
T_UNSCHEDULABLE = "2025-03-01T09:30:00Z"
MIRRORED_UNSCHEDULABLE = "node.kubernetes.io/unschedulable"
PDBS = "/apis/policy/v1/namespaces/default/poddisruptionbudgets"


def world() -> list[dict]:
    """What the fake API server and the control plane hold: every shape the read-only tests should meet."""
    return [
        fk.node("server-0", instance_id="i-00000000000000001", control_plane=True, cpu="2", memory="3883Mi"),
        fk.node("old-master", instance_id="i-00000000000000002", control_plane=True,
                role_label="node-role.kubernetes.io/master"),
        fk.node("worker-a", instance_id="i-0a1b2c3d4e5f60001", az="eu-west-1a", cpu="1930m", memory="8124380Ki",
                taints=[{"key": "dedicated", "value": "batch", "effect": "PreferNoSchedule"}]),
        fk.node("worker-b", instance_id="i-0a1b2c3d4e5f60002", az="eu-west-1b", unschedulable=True),
        fk.node("worker-c", instance_id="i-0a1b2c3d4e5f60003", az="eu-west-1c", ready=False),
        fk.node("onprem-1", provider_id="k3s://onprem-1"),
        fk.pod("web-7d9f8b6c5-abcde", node="worker-a", labels={"app": "web"}),
        fk.pod("web-7d9f8b6c5-fghij", node="worker-b", labels={"app": "web"}),
        fk.pod("db-0", "data", node="worker-a", owner=("StatefulSet", "db"), volumes=[{"name": "scratch", "emptyDir": {}}]),
        fk.pod("fluent-bit-x1", "kube-system", node="worker-a", owner=("DaemonSet", "fluent-bit"),
               volumes=[{"name": "varlog", "hostPath": {"path": "/var/log", "type": ""}}]),
        fk.pod("coredns-5f8c6-q", "kube-system", node="server-0", owner=("ReplicaSet", "coredns-5f8c6")),
        fk.pod("debug", node="worker-b", owner=None),
        fk.pod("report-28990-xyz", node="worker-a", owner=("Job", "report-28990"), phase="Succeeded"),
        fk.pod("crashed-job-pod", node="worker-a", owner=("Job", "crashed"), phase="Failed"),
        # No scheduler serves its name, so on the control plane its condition stays as written.
        fk.pod("big-7d9f8b6c5-zzzzz", cpu="3", memory="12Gi", unschedulable_since=T_UNSCHEDULABLE,
               spec={"schedulerName": "unserved-scheduler"}),
        fk.pdb("web", match_labels={"app": "web"}, min_available=1),
    ]  # fmt: skip


@dataclass
class Target:
    name: str
    cluster: KubeCluster
    seeded: bool
    """Holds `world()` (the fake and the control plane), not a user's own cluster."""

    def models(self):
        """The client's own typed APIs on the same connection: the oracle for the read-only tests."""
        from kubernetes.client import CoreV1Api, PolicyV1Api

        return CoreV1Api(self.cluster._api), PolicyV1Api(self.cluster._api)


def fake_cluster(kube: fk.FakeKube, **kwargs) -> KubeCluster:
    env = {"K8S_API_URL": kube.url, "K8S_TOKEN_PARAM": "/node-fleet/k8s-token"}
    options = KubeOptions.from_env(env, token=kube.token)
    return KubeCluster(api_client(options), **{"page_size": options.page_size, **kwargs})


@pytest.fixture
def kube():
    with fk.FakeKube(token=TOKEN) as server:
        yield server


@pytest.fixture(scope="module")
def controlplane_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Admin]:
    """A control plane of this module's own, holding `world()`; each test leaves it as it found it."""
    with running_controlplane(tmp_path_factory.mktemp("kube-adapter-controlplane")) as admin:
        seed(admin, world())
        until(
            lambda: admin.get(f"{PDBS}/web")["status"].get("observedGeneration"),
            what="the disruption controller to judge the web PDB",
        )
        yield admin


@pytest.fixture(params=["fake", pytest.param("controlplane", marks=pytest.mark.controlplane), "cluster"])
def target(request) -> Iterator[Target]:
    if request.param == "fake":
        kube = request.getfixturevalue("kube")
        kube.add(*world())
        cluster = fake_cluster(kube)
    elif request.param == "controlplane":
        cluster = request.getfixturevalue("controlplane_world").cluster()
    elif REAL_KUBECONFIG:
        cluster = KubeCluster.from_options(KubeOptions(kubeconfig=os.path.expanduser(REAL_KUBECONFIG)))
    else:
        pytest.skip("NODE_FLEET_TEST_KUBECONFIG is not set: no cluster of yours to run against")
    yield Target(request.param, cluster, seeded=request.param != "cluster")
    cluster.close()


@pytest.fixture
def seeded(target) -> Target:
    """For the tests that assert what `world()` holds: not on a user's cluster."""
    if not target.seeded:
        pytest.skip("asserts what world() holds: a cluster of yours holds its own")
    return target


def by_name(items):
    return {getattr(i, "key", None) or i.name: i for i in items}


# -- read-only: the same assertions against the fake, the control plane and a cluster of yours ---------


def test_nodes_agree_with_the_clients_models(target):
    core, _ = target.models()
    models = {n.metadata.name: n for n in core.list_node().items}
    nodes = by_name(target.cluster.list_nodes())

    assert set(nodes) == set(models)
    for name, model in models.items():
        node, labels = nodes[name], model.metadata.labels or {}
        provider = model.spec.provider_id or ""
        if provider.startswith("aws:///"):
            assert (node.az, node.instance_id) == tuple(provider.removeprefix("aws:///").split("/")), name
        else:
            assert node.instance_id is None, name
        assert node.control_plane == any(k in labels for k in CONTROL_PLANE_LABELS), name
        assert node.cordoned == bool(model.spec.unschedulable), name
        assert node.ready == any(c.type == "Ready" and c.status == "True" for c in model.status.conditions), name
        assert node.alloc_cpu_m == math.floor(_client_quantity(model.status.allocatable["cpu"]) * 1000), name
        assert node.alloc_mem_mib == math.floor(_client_quantity(model.status.allocatable["memory"]) / 2**20), name
        assert node.annotations == (model.metadata.annotations or {}), name
        assert node.created_at == model.metadata.creation_timestamp.timestamp(), name


def test_pods_agree_with_the_clients_models(target):
    core, policy = target.models()
    models = {f"{p.metadata.namespace}/{p.metadata.name}": p for p in core.list_pod_for_all_namespaces().items}
    budgets = policy.list_pod_disruption_budget_for_all_namespaces().items
    pods = by_name(target.cluster.list_pods())

    assert set(pods) == {k for k, p in models.items() if p.status.phase not in ("Succeeded", "Failed")}
    for key, pod in pods.items():
        model = models[key]
        controller = [r.kind for r in model.metadata.owner_references or () if r.controller]
        assert pod.owner_kind == (controller[0] if controller else None), key
        assert pod.node == model.spec.node_name, key
        requested = [(c.resources.requests or {}) if c.resources else {} for c in model.spec.containers]
        if not model.spec.init_containers and not model.spec.overhead:
            assert pod.cpu_m == sum(math.ceil(_client_quantity(r.get("cpu", "0")) * 1000) for r in requested), key
        local = any(v.empty_dir is not None or v.host_path is not None for v in model.spec.volumes or ())
        assert pod.local_storage == local, key
        grace = model.spec.termination_grace_period_seconds
        assert pod.grace_period_s == (30 if grace is None else grace), key
        assert pod.has_pdb == any(_model_pdb_selects(b, model) for b in budgets), key


def test_pdbs_agree_with_the_clients_models(target):
    _, policy = target.models()
    models = {
        f"{b.metadata.namespace}/{b.metadata.name}": b
        for b in policy.list_pod_disruption_budget_for_all_namespaces().items
    }
    budgets = {f"{b.namespace}/{b.name}": b for b in target.cluster.list_pdbs()}
    assert set(budgets) == set(models)
    for key, budget in budgets.items():
        assert budget.disruptions_allowed == models[key].status.disruptions_allowed, key


def test_one_item_pages_give_the_same_nodes(target):
    small = KubeCluster(target.cluster._api, page_size=1)
    assert [n.name for n in small.list_nodes()] == [n.name for n in target.cluster.list_nodes()]


def test_a_kind_that_is_not_installed_lists_as_none(target):
    assert target.cluster.list_custom("absent.node-fleet.io", "v1", "widgets") is None


def test_a_refused_token_raises_a_clear_error(target):
    cfg = copy.copy(target.cluster._api.configuration)
    cfg.api_key, cfg.api_key_prefix = {"authorization": "not-the-token"}, {"authorization": "Bearer"}
    cfg.cert_file = cfg.key_file = None
    cfg.refresh_api_key_hook = None
    from kubernetes.client.api_client import ApiClient

    with pytest.raises(KubeError) as err:
        KubeCluster(ApiClient(cfg)).list_nodes()
    assert err.value.status == 401
    assert not err.value.retryable
    assert isinstance(err.value, KubeAuthError) and isinstance(err.value, PermanentError)
    assert "GET /api/v1/nodes: 401 Unauthorized" in str(err.value)
    assert "K8S_TOKEN_PARAM" in str(err.value)


def test_cordon_and_uncordon(target):
    if not target.seeded:
        if not REAL_NODE:
            pytest.skip("NODE_FLEET_TEST_NODE is not set: no real node to cordon")
        name = REAL_NODE
    else:
        name = "worker-a"
    core, _ = target.models()

    def taints() -> list[tuple]:
        """The node's taints but the one the node lifecycle controller mirrors spec.unschedulable with
        (a real cluster adds and removes it a moment after the patch)."""
        node = core.read_node(name)
        return [(t.key, t.value, t.effect) for t in node.spec.taints or () if t.key != MIRRORED_UNSCHEDULABLE]

    before = core.read_node(name)
    assert not before.spec.unschedulable, f"{name} is already cordoned; pick a schedulable node"
    other_taints = taints()
    try:
        target.cluster.cordon(name)
        target.cluster.cordon(name)  # twice: still one taint
        assert core.read_node(name).spec.unschedulable is True
        assert taints() == [*other_taints, (DRAINING_TAINT["key"], "true", "NoSchedule")]
        assert by_name(target.cluster.list_nodes())[name].cordoned
    finally:
        target.cluster.uncordon(name)
    assert not core.read_node(name).spec.unschedulable
    assert taints() == other_taints
    assert not by_name(target.cluster.list_nodes())[name].cordoned
    until(
        lambda: all(t.key != MIRRORED_UNSCHEDULABLE for t in core.read_node(name).spec.taints or ()),
        what=f"the node lifecycle controller to lift {MIRRORED_UNSCHEDULABLE} from {name}",
    )


def _client_quantity(text: str) -> Decimal:
    from kubernetes.utils.quantity import parse_quantity as client_parse_quantity

    return client_parse_quantity(text)


def _model_pdb_selects(budget, pod) -> bool:
    if budget.metadata.namespace != pod.metadata.namespace or budget.spec.selector is None:
        return False
    labels = pod.metadata.labels or {}
    selector = budget.spec.selector
    if any(labels.get(k) != v for k, v in (selector.match_labels or {}).items()):
        return False
    for e in selector.match_expressions or ():
        ok = {
            "In": e.key in labels and labels[e.key] in (e.values or ()),
            "NotIn": e.key not in labels or labels[e.key] not in (e.values or ()),
            "Exists": e.key in labels,
            "DoesNotExist": e.key not in labels,
        }[e.operator]
        if not ok:
            return False
    return True


# -- the world, in detail ----------------------------------------------------------------


def test_the_world_parses_as_expected(seeded):
    nodes = by_name(seeded.cluster.list_nodes())
    assert nodes["server-0"].control_plane and nodes["old-master"].control_plane
    assert not nodes["worker-a"].control_plane
    assert (nodes["worker-a"].instance_id, nodes["worker-a"].az) == ("i-0a1b2c3d4e5f60001", "eu-west-1a")
    assert (nodes["onprem-1"].instance_id, nodes["onprem-1"].az) == (None, None)
    assert (nodes["worker-a"].alloc_cpu_m, nodes["worker-a"].alloc_mem_mib) == (1930, 7933)
    assert nodes["worker-b"].cordoned and not nodes["worker-c"].ready

    pods = by_name(seeded.cluster.list_pods())
    assert "default/report-28990-xyz" not in pods and "default/crashed-job-pod" not in pods
    assert pods["default/web-7d9f8b6c5-abcde"].has_pdb and not pods["default/debug"].has_pdb
    assert pods["default/debug"].owner_kind is None
    assert pods["data/db-0"].owner_kind == "StatefulSet" and pods["data/db-0"].local_storage
    assert pods["kube-system/fluent-bit-x1"].is_daemonset and pods["kube-system/fluent-bit-x1"].local_storage
    big = pods["default/big-7d9f8b6c5-zzzzz"]
    assert (big.node, big.cpu_m, big.mem_mib) == (None, 3000, 12 * 1024)
    assert big.unschedulable_since == 1740821400.0  # 2025-03-01T09:30:00Z
    assert all(p.unschedulable_since is None for p in pods.values() if p is not big)


def test_finished_pods_are_filtered_by_the_server(kube):
    kube.add(*world())
    cluster = fake_cluster(kube)
    cluster.list_pods()
    assert kube.requests_to("/api/v1/pods")[-1].query["fieldSelector"] == "status.phase!=Succeeded,status.phase!=Failed"
    cluster.close()


# -- listing -------------------------------------------------------------------------------------


def test_pods_are_listed_in_pages_of_the_configured_size(kube):
    kube.add(fk.node("n1"))
    kube.add_all(fk.pod(f"app-{i:04d}", f"ns-{i % 7}", node="n1", labels={"app": f"a{i % 3}"}) for i in range(1200))
    cluster = fake_cluster(kube)

    pods = cluster.list_pods()

    assert len(pods) == 1200 and len({p.key for p in pods}) == 1200
    pages = kube.requests_to("/api/v1/pods")
    assert [r.query["limit"] for r in pages] == ["500"] * 3
    assert "continue" not in pages[0].query and all(r.query["continue"] for r in pages[1:])
    assert [p.key for p in pods] == sorted((p.key for p in pods), key=lambda k: tuple(k.split("/")))


def test_an_expired_continue_token_restarts_the_list(kube):
    kube.add_all(fk.pod(f"p-{i:03d}", node="n1") for i in range(25))
    kube.fail_next("/api/v1/pods", status=410, query="continue=")
    pods = fake_cluster(kube, page_size=10).list_pods()
    assert len(pods) == 25
    assert [("continue" in r.query, r.status) for r in kube.requests_to("/api/v1/pods")] == [
        (False, 200), (True, 410), (False, 200), (True, 200), (True, 200),
    ]  # fmt: skip


def rich_pod() -> dict:
    """A pod that carries every field the parser reads (the adapter decodes only those)."""
    selector = {"matchLabels": {"app": "rich"}, "matchExpressions": [{"key": "tier", "operator": "Exists"}]}
    spec = {
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "hostNetwork": True,
        "overhead": {"cpu": "10m", "memory": "8Mi"},
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "batch", "effect": "NoSchedule"}],
        "affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {"matchExpressions": [{"key": "node-fleet.io/pool", "operator": "In", "values": ["a"]}]},
                        {"matchFields": [{"key": "metadata.name", "operator": "NotIn", "values": ["worker-c"]}]},
                    ]
                }
            },
            "podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                {"labelSelector": selector, "topologyKey": "topology.kubernetes.io/zone", "namespaces": ["data"]}
            ]},
            "podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                {"labelSelector": selector, "topologyKey": "kubernetes.io/hostname", "namespaceSelector": {},
                 "matchLabelKeys": ["pod-template-hash"]}
            ]},
        },
        "topologySpreadConstraints": [
            {"maxSkew": 2, "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "DoNotSchedule",
             "labelSelector": selector, "matchLabelKeys": ["pod-template-hash"], "minDomains": 3,
             "nodeAffinityPolicy": "Ignore", "nodeTaintsPolicy": "Honor"}
        ],
    }  # fmt: skip
    containers = [
        {"name": "app", "requests": {"cpu": "250m", "memory": "256Mi"}, "ports": [{"containerPort": 8080}]},
        {"name": "dns", "ports": [{"containerPort": 53, "hostPort": 53, "protocol": "UDP", "hostIP": "10.0.1.23"}]},
    ]
    init = [
        {"name": "proxy", "restartPolicy": "Always", "requests": {"cpu": "50m"}, "ports": [{"containerPort": 9000}]}
    ]
    volumes = [
        {"name": "scratch", "emptyDir": {}},
        {"name": "logs", "hostPath": {"path": "/var/log"}},
        {"name": "cache", "ephemeral": {"volumeClaimTemplate": {"spec": {"storageClassName": "local-path"}}}},
    ]
    return fk.pod(
        "rich-1", "store", node="worker-a", labels={"app": "rich", "tier": "front"},
        annotations={"kubernetes.io/config.mirror": "abc", "cluster-autoscaler.kubernetes.io/safe-to-evict": "true"},
        owner=("Node", "worker-a"), containers=containers, init_containers=init, volumes=volumes, spec=spec,
        grace_period_s=5,
    )  # fmt: skip


def storage_world() -> list[dict]:
    """Pods with claims, the claims, their volumes and classes, and DaemonSets."""
    zone_term = {
        "matchExpressions": [{"key": "topology.kubernetes.io/zone", "operator": "In", "values": ["eu-west-1b"]}]
    }
    ebs = {"csi": {"driver": "ebs.csi.aws.com", "volumeHandle": "vol-0abc"}}
    volumes = [{"name": "data", "persistentVolumeClaim": {"claimName": "data-db-0"}}]
    return [
        fk.pod("db-0", "store", node="worker-a", owner=("StatefulSet", "db"), volumes=volumes),
        fk.claim("data-db-0", "store", volume="pvc-local", node="worker-a"),
        fk.volume("pvc-local", claim=("store", "data-db-0"), node="worker-a"),
        fk.pod("pg-0", "store", node="worker-b", owner=("StatefulSet", "pg"),
               volumes=[{"name": "data", "persistentVolumeClaim": {"claimName": "data-pg-0"}}]),
        fk.claim("data-pg-0", "store", volume="pvc-ebs", storage_class="gp3", provisioner="ebs.csi.aws.com"),
        fk.volume("pvc-ebs", claim=("store", "data-pg-0"), node_affinity=[zone_term], source=ebs, storage_class="gp3"),
        fk.pod("lost-0", "store", node="worker-a", volumes=[{"name": "d", "persistentVolumeClaim": {"claimName": "gone"}}]),
        rich_pod(),
        fk.claim("rich-1-cache", "store", volume="pvc-rich", node="worker-a"),
        fk.volume("pvc-rich", claim=("store", "rich-1-cache"), node="worker-a"),
        fk.storage_class(),
        fk.storage_class("gp3", "ebs.csi.aws.com"),
        fk.daemonset("fluent-bit", labels={"app": "fluent-bit"}),
        fk.daemonset("node-exporter", "monitoring", spec={"hostNetwork": True}),
        fk.daemonset("gpu-plugin", spec={"nodeSelector": {"gpu": "true"}}),
    ]  # fmt: skip


def test_list_pods_resolves_claims_through_volumes_read_in_pages(kube):
    kube.add(fk.node("worker-a"), *storage_world())
    cluster = fake_cluster(kube, page_size=1)

    pods = by_name(cluster.list_pods())

    hostname_a = ((Requirement("kubernetes.io/hostname", "In", ("worker-a",)),),)
    assert pods["store/db-0"].placement.volume_affinity == (hostname_a,)
    zone_b = ((Requirement("topology.kubernetes.io/zone", "In", ("eu-west-1b",)),),)
    assert pods["store/pg-0"].placement.volume_affinity == (zone_b,)
    assert pods["store/lost-0"].placement.volume_problem == "persistentvolumeclaim store/gone not found"
    for path, items in (
        ("/api/v1/persistentvolumeclaims", 3),
        ("/api/v1/persistentvolumes", 3),
        ("/apis/storage.k8s.io/v1/storageclasses", 2),
    ):
        pages = kube.requests_to(path)
        assert [r.query["limit"] for r in pages] == ["1"] * items, path
        assert all(r.status == 200 for r in pages) and all("continue" in r.query for r in pages[1:]), path


def test_daemonset_pods_are_listed_in_pages(kube):
    kube.add(*storage_world())
    daemonsets = by_name(fake_cluster(kube, page_size=2).daemonset_pods())
    assert set(daemonsets) == {"kube-system/fluent-bit", "monitoring/node-exporter", "kube-system/gpu-plugin"}
    assert len(kube.requests_to("/apis/apps/v1/daemonsets")) == 2
    assert all(p.node is None and p.is_daemonset for p in daemonsets.values())
    assert daemonsets["kube-system/gpu-plugin"].placement.node_selector == (("gpu", "true"),)
    network = [t.key for t in daemonsets["monitoring/node-exporter"].placement.tolerations]
    assert "node.kubernetes.io/network-unavailable" in network
    assert "node.kubernetes.io/network-unavailable" not in [
        t.key for t in daemonsets["kube-system/fluent-bit"].placement.tolerations
    ]


def test_the_adapter_reads_what_parse_cluster_reads(kube):
    """The adapter (kinds told by the endpoint, items without kind) and parse_cluster (a List's
    items, each with its kind) are one parser."""
    kube.add(*world(), *storage_world())
    cluster = fake_cluster(kube, page_size=3)
    everything = [
        obj
        for plural, group in (
            ("nodes", ""), ("pods", ""), ("poddisruptionbudgets", "policy"), ("persistentvolumes", ""),
            ("persistentvolumeclaims", ""), ("storageclasses", "storage.k8s.io"), ("daemonsets", "apps"),
        )
        for obj in kube.objects(plural, group)
    ]  # fmt: skip
    expected = parse_cluster(everything)
    assert tuple(cluster.list_nodes()) == expected.nodes
    assert tuple(cluster.list_pods()) == expected.pods
    assert cluster.disruption_budgets() == expected.budgets == {"default/web": 1}
    assert tuple(cluster.daemonset_pods()) == expected.daemonsets
    assert len(expected.pods) == 11 and len(expected.daemonsets) == 3
    rich = next(p for p in expected.pods if p.name == "rich-1")
    assert rich.mirror and rich.local_volumes == ("scratch", "logs") and rich.placement.volume_affinity
    assert len(rich.placement.host_ports) == 3 and rich.placement.spread and rich.placement.anti_affinity


def test_disruption_budgets_reuse_the_pdbs_of_the_last_pod_listing_once(kube, monkeypatch):
    kube.add(fk.pod("web-1", labels={"app": "web"}), fk.pdb("web", match_labels={"app": "web"}, disruptions_allowed=2))
    cluster = fake_cluster(kube)
    pdb_path = "/apis/policy/v1/poddisruptionbudgets"

    pods = cluster.list_pods()
    assert pods[0].pdbs == ("default/web",)
    assert cluster.disruption_budgets() == {"default/web": 2}
    assert len(kube.requests_to(pdb_path)) == 1, "one PDB listing for the pods and the budgets"

    kube.add(fk.pdb("web", match_labels={"app": "web"}, disruptions_allowed=0))
    assert cluster.disruption_budgets() == {"default/web": 0}, "a second call reads them afresh"
    assert len(kube.requests_to(pdb_path)) == 2

    kube.fail_next("/api/v1/pods", status=500)
    with pytest.raises(KubeError):
        cluster.list_pods()
    kube.add(fk.pdb("web", match_labels={"app": "web"}, disruptions_allowed=1))
    assert cluster.disruption_budgets() == {"default/web": 1}, "a failed pod listing leaves no budgets behind"

    cluster.list_pods()
    kube.add(fk.pdb("web", match_labels={"app": "web"}, disruptions_allowed=3))
    later = time.monotonic() + kube_adapter.BUDGETS_KEPT_S + 1
    monkeypatch.setattr(kube_adapter.time, "monotonic", lambda: later)
    assert cluster.disruption_budgets() == {"default/web": 3}, "budgets listed long ago are not reused"


def test_an_object_of_the_wrong_shape_is_named(kube):
    odd = fk.pod("odd-2", "shop", node="n1")
    odd["spec"]["containers"] = {"name": "app"}  # an object where the API has a list
    kube.add(fk.pod("fine-1", "shop", node="n1"), odd)
    with pytest.raises(ValueError, match=r"^Pod shop/odd-2: "):
        fake_cluster(kube).list_pods()


def test_an_object_the_parser_refuses_is_named(kube):
    terms = [{"matchExpressions": [{"key": "a", "operator": "Near"}]}]
    affinity = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}}}
    kube.add(fk.pod("odd-1", "shop", node="n1", spec={"affinity": affinity}))
    with pytest.raises(ValueError, match=r"^Pod shop/odd-1: spec\.affinity\.nodeAffinity.*operator 'Near'"):
        fake_cluster(kube).list_pods()


@pytest.mark.parametrize(
    "desc, provider_id, expected",
    [
        ("aws with zone", "aws:///eu-west-1a/i-0a1b2c3d4e5f67890", ("eu-west-1a", "i-0a1b2c3d4e5f67890")),
        ("short instance id", "aws:///us-east-1c/i-12345678", ("us-east-1c", "i-12345678")),
        ("local zone", "aws:///us-east-1-bos-1a/i-0a1b2c3d4e5f67890", ("us-east-1-bos-1a", "i-0a1b2c3d4e5f67890")),
        ("aws without zone", "aws:////i-0a1b2c3d4e5f67890", (None, "i-0a1b2c3d4e5f67890")),
        ("k3s without cloud provider", "k3s://ip-10-0-1-23", (None, None)),
        ("not an instance id", "aws:///eu-west-1a/ip-10-0-1-23.eu-west-1.compute.internal", (None, None)),
        ("other cloud", "gce://project/europe-west1-b/vm-1", (None, None)),
        ("empty", "", (None, None)),
        ("absent", None, (None, None)),
    ],
)
def test_provider_id_mapping(desc, provider_id, expected):
    assert parse_provider_id(provider_id) == expected, desc


def test_a_node_is_never_mapped_by_its_dns_name(kube):
    kube.add(fk.node("ip-10-0-1-23.eu-west-1.compute.internal", provider_id="k3s://ip-10-0-1-23"))
    (node,) = fake_cluster(kube).list_nodes()
    assert node.instance_id is None


def test_zone_falls_back_to_the_topology_label_when_the_provider_id_has_none(kube):
    kube.add(fk.node("n1", provider_id="aws:////i-0a1b2c3d4e5f67890", az="eu-west-1b"))
    (node,) = fake_cluster(kube).list_nodes()
    assert (node.az, node.instance_id) == ("eu-west-1b", "i-0a1b2c3d4e5f67890")


@pytest.mark.parametrize(
    "desc, labels, expected",
    [
        ("k3s server", {"node-role.kubernetes.io/control-plane": "true"}, True),
        ("kubeadm control plane (empty value)", {"node-role.kubernetes.io/control-plane": ""}, True),
        ("legacy master", {"node-role.kubernetes.io/master": "true"}, True),
        ("explicitly not", {"node-role.kubernetes.io/control-plane": "false"}, False),
        ("worker role", {"node-role.kubernetes.io/worker": "true"}, False),
        ("no role", {}, False),
    ],
)
def test_control_plane_detection(kube, desc, labels, expected):
    kube.add(fk.node("n1", labels=labels))
    (node,) = fake_cluster(kube).list_nodes()
    assert node.control_plane is expected, desc


# -- quantities ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, value",
    [
        ("100m", Decimal("0.1")),
        ("1", Decimal(1)),
        ("0.5", Decimal("0.5")),
        ("1.5", Decimal("1.5")),
        (".5", Decimal("0.5")),
        ("250u", Decimal("0.00025")),
        ("5n", Decimal("0.000000005")),
        ("1k", Decimal(1000)),
        ("1M", Decimal(10**6)),
        ("1G", Decimal(10**9)),
        ("2T", Decimal(2 * 10**12)),
        ("1E", Decimal(10**18)),
        ("1Ki", Decimal(1024)),
        ("128Mi", Decimal(128 * 2**20)),
        ("1.5Gi", Decimal(3 * 2**29)),
        ("1Ti", Decimal(2**40)),
        ("8124380Ki", Decimal(8124380 * 1024)),
        ("1e3", Decimal(1000)),
        ("1E3", Decimal(1000)),
        ("12e-3", Decimal("0.012")),
        ("+2", Decimal(2)),
    ],
)
def test_parse_quantity(text, value):
    assert parse_quantity(text) == value
    assert parse_quantity(text) == _client_quantity(text)  # the client's own parser agrees


@pytest.mark.parametrize("text", ["", "m", "1.2.3", "1Kb", "1 Mi", "ten", "1e", "1Mii", "0x10"])
def test_parse_quantity_refuses_what_is_not_a_quantity(text):
    with pytest.raises(ValueError, match="not a Kubernetes quantity"):
        parse_quantity(text)


def test_requests_round_up_and_capacity_rounds_down():
    assert cpu_millis("0.0001") == 1 and cpu_millis("0.0001", round_up=False) == 0
    assert cpu_millis("1930m", round_up=False) == 1930
    assert mem_bytes("1.5") == 2 and mem_bytes("1.5", round_up=False) == 1


def c(name: str, cpu: str | None = None, memory: str | None = None, **extra) -> dict:
    requests = {k: v for k, v in (("cpu", cpu), ("memory", memory)) if v is not None}
    return {"name": name, "resources": {"requests": requests} if requests else {}, **extra}


@pytest.mark.parametrize(
    "desc, spec, expected",
    [
        ("one container", {"containers": [c("a", "100m", "128Mi")]}, (100, 128 * 2**20)),
        ("summed", {"containers": [c("a", "100m", "128Mi"), c("b", "0.25", "1Gi")]}, (350, 1152 * 2**20)),
        ("no requests", {"containers": [c("a")]}, (0, 0)),
        ("cpu only", {"containers": [c("a", "2")]}, (2000, 0)),
        (
            "a larger init container wins",
            {"containers": [c("a", "100m", "64Mi")], "initContainers": [c("i", "1", "32Mi")]},
            (1000, 64 * 2**20),
        ),
        (
            "sidecars run with the app and under later init containers",
            {
                "containers": [c("a", "100m", "64Mi")],
                "initContainers": [c("proxy", "200m", "32Mi", restartPolicy="Always"), c("migrate", "500m", "16Mi")],
            },
            (700, 96 * 2**20),
        ),
        (
            "overhead is added",
            {"containers": [c("a", "100m", "64Mi")], "overhead": {"cpu": "250m", "memory": "120Mi"}},
            (350, 184 * 2**20),
        ),
        (
            "pod-level requests take precedence",
            {"containers": [c("a", "100m", "64Mi")], "resources": {"requests": {"cpu": "1", "memory": "1Gi"}}},
            (1000, 2**30),
        ),
    ],
)
def test_pod_requests(desc, spec, expected):
    assert pod_requests(spec) == expected, desc


def test_memory_requests_round_up_to_whole_mib(kube):
    containers = [
        {"name": "a", "requests": {"cpu": "1m", "memory": "1000Ki"}},
        {"name": "b", "requests": {"memory": "100k"}},
    ]
    kube.add(fk.pod("p", node="n1", containers=containers))
    (pod,) = fake_cluster(kube).list_pods()
    assert (pod.cpu_m, pod.mem_mib) == (1, 2)  # 1,124,000 bytes


# -- pods: what the planner reads ----------------------------------------------------------------


def test_unschedulable_since_is_the_condition_transition_time(kube):
    kube.add(
        fk.pod("waiting", unschedulable_since="2025-03-01T09:30:00.5Z"),
        fk.pod("just-created", node=None),  # PodScheduled=False without reason Unschedulable
        fk.pod("bound", node="n1"),
    )
    pods = by_name(fake_cluster(kube).list_pods())
    assert pods["default/waiting"].unschedulable_since == 1740821400.5
    assert pods["default/just-created"].unschedulable_since is None
    assert pods["default/bound"].unschedulable_since is None


@pytest.mark.parametrize(
    "desc, budget, expected",
    [
        ("matchLabels", fk.pdb("b", match_labels={"app": "web"}), True),
        ("matchLabels, other value", fk.pdb("b", match_labels={"app": "db"}), False),
        ("other namespace", fk.pdb("b", "other", match_labels={"app": "web"}), False),
        ("In", fk.pdb("b", match_expressions=[{"key": "tier", "operator": "In", "values": ["front", "x"]}]), True),
        ("In, no match", fk.pdb("b", match_expressions=[{"key": "tier", "operator": "In", "values": ["back"]}]), False),
        ("NotIn", fk.pdb("b", match_expressions=[{"key": "tier", "operator": "NotIn", "values": ["back"]}]), True),
        ("NotIn, absent key", fk.pdb("b", match_expressions=[{"key": "x", "operator": "NotIn", "values": ["y"]}]), True),
        ("NotIn, excluded", fk.pdb("b", match_expressions=[{"key": "tier", "operator": "NotIn", "values": ["front"]}]), False),
        ("Exists", fk.pdb("b", match_expressions=[{"key": "tier", "operator": "Exists"}]), True),
        ("Exists, absent", fk.pdb("b", match_expressions=[{"key": "zone", "operator": "Exists"}]), False),
        ("DoesNotExist", fk.pdb("b", match_expressions=[{"key": "zone", "operator": "DoesNotExist"}]), True),
        ("DoesNotExist, present", fk.pdb("b", match_expressions=[{"key": "app", "operator": "DoesNotExist"}]), False),
        (
            "labels and expressions must all hold",
            fk.pdb("b", match_labels={"app": "web"}, match_expressions=[{"key": "tier", "operator": "In", "values": ["back"]}]),
            False,
        ),
        ("empty selector: the whole namespace", fk.pdb("b", selector={}), True),
        ("no selector: nothing", {**fk.pdb("b"), "spec": {"maxUnavailable": 1}}, False),
    ],
)  # fmt: skip
def test_has_pdb(kube, desc, budget, expected):
    kube.add(fk.pod("web-1", node="n1", labels={"app": "web", "tier": "front"}), budget)
    (pod,) = fake_cluster(kube).list_pods()
    assert pod.has_pdb is expected, desc


@pytest.mark.parametrize(
    "desc, volumes, expected",
    [
        ("service account token only", [], False),
        ("emptyDir", [{"name": "cache", "emptyDir": {}}], True),
        ("emptyDir in memory", [{"name": "shm", "emptyDir": {"medium": "Memory"}}], True),
        ("hostPath", [{"name": "logs", "hostPath": {"path": "/var/log"}}], True),
        ("configMap and PVC", [{"name": "cfg", "configMap": {"name": "x"}}, {"name": "d", "persistentVolumeClaim": {"claimName": "d"}}], False),
    ],
)  # fmt: skip
def test_local_storage(kube, desc, volumes, expected):
    kube.add(fk.pod("p", node="n1", volumes=volumes))
    (pod,) = fake_cluster(kube).list_pods()
    assert pod.local_storage is expected, desc


@pytest.mark.parametrize(
    "desc, owner, controller, expected",
    [
        ("deployment's replica set", ("ReplicaSet", "web-7d9f"), True, "ReplicaSet"),
        ("stateful set", ("StatefulSet", "db"), True, "StatefulSet"),
        ("daemon set", ("DaemonSet", "fluent-bit"), True, "DaemonSet"),
        ("job", ("Job", "report"), True, "Job"),
        ("bare pod", None, True, None),
        ("owner that is not a controller", ("ConfigMap", "x"), False, None),
    ],
)
def test_owner_kind_is_the_controllers(kube, desc, owner, controller, expected):
    kube.add(fk.pod("p", node="n1", owner=owner, owner_is_controller=controller))
    (pod,) = fake_cluster(kube).list_pods()
    assert pod.owner_kind == expected, desc


def test_annotations_and_grace_period(kube):
    kube.add(
        fk.pod(
            "a", node="n1", annotations={"cluster-autoscaler.kubernetes.io/safe-to-evict": "false"}, grace_period_s=120
        ),
        fk.pod("b", node="n1", grace_period_s=None),
    )
    pods = by_name(fake_cluster(kube).list_pods())
    assert pods["default/a"].annotations == {"cluster-autoscaler.kubernetes.io/safe-to-evict": "false"}
    assert pods["default/a"].grace_period_s == 120 and pods["default/b"].grace_period_s == 30


def test_finished_pods_are_not_listed_even_if_the_server_ignores_the_field_selector(kube, monkeypatch):
    kube.add(fk.pod("done", node="n1", phase="Succeeded"), fk.pod("up", node="n1"), fk.pod("waiting", node=None))
    cluster = fake_cluster(kube)
    monkeypatch.setattr(fk.verbs, "field_selector", lambda text, plural: lambda obj: True)
    assert sorted(p.name for p in cluster.list_pods()) == ["up", "waiting"]


# -- cordon, eviction, deletion ------------------------------------------------------------------


def test_cordon_sends_a_guarded_strategic_merge_patch(kube):
    kube.add(fk.node("n1", taints=[{"key": "dedicated", "value": "batch", "effect": "NoSchedule"}]))
    fake_cluster(kube).cordon("n1")
    (patch,) = kube.requests_to("/api/v1/nodes/n1", "PATCH")
    assert patch.content_type == "application/strategic-merge-patch+json"
    assert patch.body["metadata"]["resourceVersion"]
    assert patch.body["spec"] == {
        "unschedulable": True,
        "taints": [{"key": "dedicated", "value": "batch", "effect": "NoSchedule"}, DRAINING_TAINT],
    }


def test_cordon_retries_when_the_node_changed_meanwhile(kube):
    kube.add(fk.node("n1"))
    kube.fail_next("/api/v1/nodes/n1", status=409, method="PATCH")
    fake_cluster(kube).cordon("n1")
    assert kube.get("nodes", "n1")["spec"]["unschedulable"] is True
    assert [r.status for r in kube.requests_to("/api/v1/nodes/n1", "PATCH")] == [409, 200]


def test_a_stale_resource_version_is_refused_by_the_fake(kube):
    kube.add(fk.node("n1"))
    cluster = fake_cluster(kube)
    status, _ = cluster._call(
        "PATCH",
        "/api/v1/nodes/n1",
        body={"metadata": {"resourceVersion": "1"}, "spec": {"unschedulable": True}},
        content_type="application/merge-patch+json",
        ok=(200, 409),
    )
    assert status == 409 and not kube.get("nodes", "n1")["spec"].get("unschedulable")


def test_cordon_of_a_missing_node_raises_and_uncordon_does_not(kube):
    cluster = fake_cluster(kube)
    with pytest.raises(KubeError, match="not found") as err:
        cluster.cordon("gone")
    assert err.value.status == 404
    cluster.uncordon("gone")


def test_uncordon_leaves_a_node_without_our_taint_alone(kube):
    kube.add(fk.node("n1"))
    fake_cluster(kube).uncordon("n1")
    assert kube.requests_to("/api/v1/nodes/n1", "PATCH") == []


def running(name: str, app: str = "web", namespace: str = "default") -> dict:
    return fk.pod(name, namespace, node="n1", labels={"app": app})


def as_pod(name: str, namespace: str = "default") -> Pod:
    return Pod(name, namespace, 100, 128, node="n1")


def test_eviction_is_blocked_by_a_pdb_that_allows_no_disruption(kube):
    kube.add(running("web-1"), fk.pdb("web", match_labels={"app": "web"}, disruptions_allowed=0))
    cluster = fake_cluster(kube)

    assert cluster.evict(as_pod("web-1")) is EvictionOutcome.BLOCKED
    assert kube.get("pods", "web-1", "default") is not None
    (request,) = kube.requests_to("/api/v1/namespaces/default/pods/web-1/eviction", "POST")
    assert request.status == 429
    assert request.body == {
        "apiVersion": "policy/v1",
        "kind": "Eviction",
        "metadata": {"name": "web-1", "namespace": "default"},
    }


@pytest.mark.parametrize(
    "desc, budget",
    [
        ("minAvailable 2 of 3", {"min_available": 2}),
        ("maxUnavailable 1", {"max_unavailable": 1}),
        ("maxUnavailable 33% of 3 rounds up to 1", {"max_unavailable": "33%"}),
        ("minAvailable 50% of 3 rounds up to 2", {"min_available": "50%"}),
    ],
)
def test_pdb_arithmetic_allows_one_eviction_then_blocks(kube, desc, budget):
    kube.add(running("web-1"), running("web-2"), running("web-3"), fk.pdb("web", match_labels={"app": "web"}, **budget))
    cluster = fake_cluster(kube)
    assert [b.disruptions_allowed for b in cluster.list_pdbs()] == [1], desc

    assert cluster.evict(as_pod("web-1")) is EvictionOutcome.EVICTED, desc
    assert cluster.evict(as_pod("web-2")) is EvictionOutcome.BLOCKED, desc
    assert kube.get("pods", "web-1", "default") is None
    assert [b.disruptions_allowed for b in cluster.list_pdbs()] == [0], desc


def test_a_pinned_pdb_is_decremented_by_each_eviction(kube):
    kube.add(
        *(running(f"web-{i}") for i in range(4)), fk.pdb("web", match_labels={"app": "web"}, disruptions_allowed=2)
    )
    cluster = fake_cluster(kube)
    outcomes = [cluster.evict(as_pod(f"web-{i}")) for i in range(4)]
    assert outcomes == [EvictionOutcome.EVICTED] * 2 + [EvictionOutcome.BLOCKED] * 2
    assert set(kube.get("poddisruptionbudgets", "web", "default", group="policy")["status"]["disruptedPods"]) == {
        "web-0",
        "web-1",
    }


def test_a_terminating_pod_stays_listed_until_the_kubelet_removes_it():
    with fk.FakeKube(token=TOKEN, evict_mode="terminate") as kube:
        kube.add(running("web-1"), running("web-2"), fk.pdb("web", match_labels={"app": "web"}, min_available=1))
        cluster = fake_cluster(kube)
        assert cluster.evict(as_pod("web-1")) is EvictionOutcome.EVICTED
        assert cluster.evict(as_pod("web-1")) is EvictionOutcome.EVICTED  # already terminating: granted
        assert cluster.evict(as_pod("web-2")) is EvictionOutcome.BLOCKED
        assert {p.name for p in cluster.list_pods()} == {"web-1", "web-2"}


def test_eviction_without_a_pdb_removes_the_pod(kube):
    kube.add(running("lonely", app="lonely"))
    assert fake_cluster(kube).evict(as_pod("lonely")) is EvictionOutcome.EVICTED
    assert kube.get("pods", "lonely", "default") is None


def test_evicting_a_pod_that_is_gone(kube):
    assert fake_cluster(kube).evict(as_pod("gone")) is EvictionOutcome.GONE


def test_eviction_under_two_pdbs_raises(kube):
    kube.add(
        running("web-1"),
        fk.pdb("a", match_labels={"app": "web"}, disruptions_allowed=1),
        fk.pdb("b", selector={}, disruptions_allowed=1),
    )
    with pytest.raises(KubeError, match="more than one PodDisruptionBudget") as err:
        fake_cluster(kube).evict(as_pod("web-1"))
    assert err.value.status == 500


def test_delete_node_twice(kube):
    kube.add(fk.node("n1"))
    cluster = fake_cluster(kube)
    cluster.delete_node("n1")
    cluster.delete_node("n1")
    assert kube.get("nodes", "n1") is None
    assert [r.status for r in kube.requests_to("/api/v1/nodes/n1", "DELETE")] == [200, 404]


# -- custom objects (the GitOps gate) ------------------------------------------------------------


def test_list_custom_returns_raw_objects_of_an_installed_kind(kube):
    kube.install(*fk.FLUX_KINDS)
    kube.add(fk.kustomization("apps"), fk.kustomization("infra", ready=False))
    cluster = fake_cluster(kube, page_size=1)

    items = cluster.list_custom("kustomize.toolkit.fluxcd.io", "v1", "kustomizations")

    assert [(i["kind"], i["metadata"]["name"]) for i in items] == [
        ("Kustomization", "apps"),
        ("Kustomization", "infra"),
    ]
    assert items[1]["status"]["conditions"][0]["reason"] == "Progressing"
    assert cluster.list_custom("helm.toolkit.fluxcd.io", "v2", "helmreleases") == []
    assert cluster.list_custom("flagger.app", "v1beta1", "canaries") == []
    assert cluster.list_custom("flagger.app", "v1", "canaries") is None


# -- failures ------------------------------------------------------------------------------------


def test_a_server_error_raises_a_retryable_error(kube):
    kube.add(fk.node("n1"))
    kube.fail_next("/api/v1/nodes", status=500)
    cluster = fake_cluster(kube)
    with pytest.raises(KubeError, match="500 InternalError") as err:
        cluster.list_nodes()
    assert err.value.retryable
    assert [n.name for n in cluster.list_nodes()] == ["n1"]  # the next try works


def test_a_server_error_on_a_later_page_raises(kube):
    kube.add_all(fk.pod(f"p-{i}", node="n1") for i in range(5))
    kube.fail_next("/api/v1/pods", status=503, query="continue=")
    with pytest.raises(KubeError) as err:
        fake_cluster(kube, page_size=2).list_pods()
    assert err.value.status == 503


def test_a_server_error_on_eviction_raises(kube):
    kube.add(running("web-1"))
    kube.fail_next("/api/v1/namespaces/default/pods/web-1/eviction", status=500)
    with pytest.raises(KubeError):
        fake_cluster(kube).evict(as_pod("web-1"))


def test_a_hung_request_times_out(kube):
    kube.add(fk.node("n1"))
    kube.hang_next("/api/v1/nodes", seconds=5)
    cluster = fake_cluster(kube, timeout_s=0.3)
    started = time.monotonic()
    with pytest.raises(KubeError, match="timed out") as err:
        cluster.list_nodes()
    assert time.monotonic() - started < 2  # not retried: the next cycle will
    assert err.value.status == 0 and err.value.retryable


def test_an_unreachable_server_raises(kube):
    url = kube.url
    kube.stop()
    cluster = KubeCluster.from_options(KubeOptions.from_env({"K8S_API_URL": url, "K8S_TOKEN_PARAM": "/t"}, token="t"))
    with pytest.raises(KubeError) as err:
        cluster.list_nodes()
    assert err.value.status == 0 and err.value.retryable


# -- the fake honours what the real client sends -------------------------------------------------


def test_the_fake_serves_the_clients_typed_apis(kube):
    from kubernetes.client import ApiException, CoreV1Api, V1Container, V1ObjectMeta, V1Pod, V1PodSpec

    kube.add(fk.node("n1"), fk.node("n2", unschedulable=True), running("web-1"), running("db-1", app="db"))
    core = CoreV1Api(fake_cluster(kube)._api)

    assert [p.metadata.name for p in core.list_pod_for_all_namespaces(label_selector="app in (db,x)").items] == ["db-1"]
    assert [p.metadata.name for p in core.list_pod_for_all_namespaces(label_selector="app!=db").items] == ["web-1"]
    assert [n.metadata.name for n in core.list_node(field_selector="spec.unschedulable=true").items] == ["n2"]
    assert [n.metadata.name for n in core.list_node(field_selector="metadata.name=n1").items] == ["n1"]
    assert core.list_pod_for_all_namespaces(field_selector="spec.nodeName=n2").items == []
    with pytest.raises(ApiException) as err:
        core.list_node(field_selector="status.phase=Running")
    assert err.value.status == 400

    # patch_node sends a JSON object as json-patch+json, which the client turns into a strategic merge.
    core.patch_node("n1", {"spec": {"taints": [{"key": "k", "value": "v", "effect": "NoSchedule"}]}})
    assert kube.requests_to("/api/v1/nodes/n1", "PATCH")[-1].content_type == "application/strategic-merge-patch+json"
    core.patch_node("n1", [{"op": "add", "path": "/metadata/labels/extra", "value": "1"}])
    assert kube.requests_to("/api/v1/nodes/n1", "PATCH")[-1].content_type == "application/json-patch+json"
    assert kube.get("nodes", "n1")["metadata"]["labels"]["extra"] == "1"

    pod = V1Pod(metadata=V1ObjectMeta(name="made"), spec=V1PodSpec(containers=[V1Container(name="a", image="x")]))
    core.create_namespaced_pod("default", pod)
    with pytest.raises(ApiException) as err:
        core.create_namespaced_pod("default", pod)
    assert err.value.status == 409 and json.loads(err.value.body)["reason"] == "AlreadyExists"
    with pytest.raises(ApiException) as err:
        core.read_node("absent")
    assert err.value.status == 404 and json.loads(err.value.body)["message"] == 'nodes "absent" not found'


def test_the_fake_pages_with_the_clients_continue_tokens(kube):
    from kubernetes.client import CoreV1Api

    kube.add_all(running(f"web-{i:02d}") for i in range(7))
    core = CoreV1Api(fake_cluster(kube)._api)
    first = core.list_pod_for_all_namespaces(limit=5)
    assert len(first.items) == 5 and first.metadata.remaining_item_count == 2
    rest = core.list_pod_for_all_namespaces(limit=5, _continue=first.metadata._continue)
    assert [p.metadata.name for p in rest.items] == ["web-05", "web-06"] and not rest.metadata._continue


# -- configuration -------------------------------------------------------------------------------

API = {"K8S_API_URL": "https://10.0.1.10:6443", "K8S_TOKEN_PARAM": "/node-fleet/k8s-token"}
PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


@pytest.mark.parametrize(
    "desc, env, secrets, error",
    [
        ("nothing set", {}, {}, "K8S_API_URL is not set"),
        ("no token parameter", {"K8S_API_URL": "https://10.0.1.10:6443"}, {"token": "t"}, "K8S_TOKEN_PARAM must name"),
        ("token not read", API, {}, "K8S_TOKEN_PARAM='/node-fleet/k8s-token': the API token read from it is empty"),
        ("token with a space", API, {"token": "a b"}, "contains whitespace"),
        ("not a URL", {**API, "K8S_API_URL": "10.0.1.10:6443"}, {"token": "t"}, "K8S_API_URL='10.0.1.10:6443' is not a valid URL"),
        ("plain http to a remote host", {**API, "K8S_API_URL": "http://10.0.1.10:6443"}, {"token": "t"}, "uses http://"),
        ("CA that is not PEM", {**API, "K8S_CA_PARAM": "/ca"}, {"token": "t", "ca_pem": "oops"}, "K8S_CA_PARAM='/ca'"),
        ("CA parameter not read", {**API, "K8S_CA_PARAM": "/ca"}, {"token": "t"}, "not a PEM certificate"),
        ("bad verify flag", {**API, "K8S_VERIFY_SSL": "maybe"}, {"token": "t"}, "K8S_VERIFY_SSL='maybe' is not a valid bool"),
        ("page size too small", {**API, "K8S_PAGE_SIZE": "5"}, {"token": "t"}, "K8S_PAGE_SIZE=5 is out of range: allowed 10..5000"),
        ("page size not a number", {**API, "K8S_PAGE_SIZE": "lots"}, {"token": "t"}, "K8S_PAGE_SIZE='lots' is not a valid int"),
        ("timeout too long", {**API, "K8S_TIMEOUT_S": "900"}, {"token": "t"}, "K8S_TIMEOUT_S=900.0 is out of range: allowed 1..300"),
        ("timeout not finite", {**API, "K8S_TIMEOUT_S": "nan"}, {"token": "t"}, "K8S_TIMEOUT_S=nan is out of range"),
    ],
)  # fmt: skip
def test_options_from_env_refuse_bad_settings(desc, env, secrets, error):
    with pytest.raises(ConfigError) as err:
        KubeOptions.from_env(env, **secrets)
    assert error in str(err.value), desc


def test_options_from_env_build_the_clients_configuration():
    env = {**API, "K8S_CA_PARAM": "/node-fleet/k8s-ca", "K8S_PAGE_SIZE": "250", "K8S_TIMEOUT_S": "20"}
    assert secret_parameter_names(env) == {"token": "/node-fleet/k8s-token", "ca": "/node-fleet/k8s-ca"}
    options = KubeOptions.from_env(env, token="tok\n", ca_pem=PEM)
    assert "tok" not in repr(options) and "BEGIN" not in repr(options)

    cfg = configuration(options)

    assert cfg.host == "https://10.0.1.10:6443"
    assert cfg.auth_settings()["BearerToken"]["value"] == "Bearer tok"
    assert Path(cfg.ssl_ca_cert).read_text() == PEM and cfg.verify_ssl is True
    assert cfg.retries.read == 0
    cluster = KubeCluster.from_options(options)
    assert (cluster.page_size, cluster.timeout) == (250, (5.0, 20.0))


def test_loopback_http_is_allowed_and_verify_can_be_turned_off():
    options = KubeOptions.from_env(
        {"K8S_API_URL": "http://127.0.0.1:8080/", "K8S_TOKEN_PARAM": "/t", "K8S_VERIFY_SSL": "false"}, token="t"
    )
    assert options.api_url == "http://127.0.0.1:8080" and configuration(options).verify_ssl is False


def write_kubeconfig(path: Path, url: str, token: str, ca_file: str | None = None) -> Path:
    cluster = {"server": url, **({"certificate-authority": ca_file} if ca_file else {})}
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "fake", "cluster": cluster},
            {"name": "other", "cluster": {"server": "https://192.0.2.1"}},
        ],
        "users": [{"name": "fleet", "user": {"token": token}}],
        "contexts": [
            {"name": "other", "context": {"cluster": "other", "user": "fleet"}},
            {"name": "fake", "context": {"cluster": "fake", "user": "fleet"}},
        ],
        "current-context": "other",
    }
    path.write_text(json.dumps(config))  # JSON is YAML
    return path


def test_a_kubeconfig_for_local_use(kube, tmp_path):
    kube.add(fk.node("n1"))
    path = write_kubeconfig(tmp_path / "config", kube.url, TOKEN)
    options = KubeOptions.from_env({"KUBECONFIG": str(path), "K8S_CONTEXT": "fake"})
    assert [n.name for n in KubeCluster.from_options(options).list_nodes()] == ["n1"]

    with pytest.raises(ConfigError, match="K8S_CONTEXT"):
        configuration(KubeOptions.from_env({"KUBECONFIG": str(path), "K8S_CONTEXT": "absent"}))
    with pytest.raises(ConfigError, match="KUBECONFIG"):
        configuration(KubeOptions.from_env({"KUBECONFIG": str(tmp_path / "missing")}))


# -- TLS with the cluster's CA, as in the Lambda ---------------------------------------------------


@pytest.fixture(scope="module")
def certificates(tmp_path_factory):
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed: cannot make a CA for the TLS test")
    d = tmp_path_factory.mktemp("tls")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True)

    openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=k3s-server-ca")
    openssl("req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=k3s")
    (d / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n")
    openssl(
        "x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "server.crt", "-days", "2", "-extfile", "ext.cnf",
    )  # fmt: skip
    return d


def test_tls_with_the_cluster_ca(certificates):
    from urllib3.exceptions import InsecureRequestWarning

    tls = (str(certificates / "server.crt"), str(certificates / "server.key"))
    with fk.FakeKube(token=TOKEN, tls=tls) as kube:
        kube.add(fk.node("n1"))
        env = {"K8S_API_URL": kube.url, "K8S_TOKEN_PARAM": "/t", "K8S_CA_PARAM": "/ca"}
        ca_pem = (certificates / "ca.crt").read_text()
        assert kube.url.startswith("https://")

        assert [
            n.name for n in KubeCluster.from_options(KubeOptions.from_env(env, token=TOKEN, ca_pem=ca_pem)).list_nodes()
        ] == ["n1"]

        without_ca = KubeCluster.from_options(KubeOptions.from_env({**env, "K8S_CA_PARAM": ""}, token=TOKEN))
        with pytest.raises(KubeError, match=r"(?i)certificate") as err:
            without_ca.list_nodes()
        assert err.value.status == 0

        unverified = KubeOptions.from_env({**env, "K8S_CA_PARAM": "", "K8S_VERIFY_SSL": "false"}, token=TOKEN)
        with pytest.warns(InsecureRequestWarning):
            assert [n.name for n in KubeCluster.from_options(unverified).list_nodes()] == ["n1"]
