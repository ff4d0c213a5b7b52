"""`node-fleet plan`: the what-if over a `kubectl get ... -o json` List, read only.

The Lists are built from the fake API server's object builders, which write objects as the API
serves them; only the --kubeconfig and --prometheus tests open a socket (loopback).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from pytest_socket import enable_socket

import node_fleet.stack.kube_api as fk
from autoscaler.adapters.ec2 import CLUSTER_TAG, ROLE_TAG, WORKER_ROLE
from node_fleet.cli import main

NOW = "2025-03-01T10:00:00Z"
PENDING_SINCE = "2025-03-01T09:55:00Z"
IDS = {"w1": "i-0a000000000000001", "w2": "i-0a000000000000002", "w3": "i-0a000000000000003"}
ZONES = {"w1": "eu-west-1a", "w2": "eu-west-1b", "w3": "eu-west-1a"}
KEYS = {"action", "launches", "remove", "terminate", "nodes", "unhelpable", "reasons"}


def workers(*names: str, **kw) -> list[dict]:
    return [fk.node(n, instance_id=IDS[n], az=ZONES[n], **kw) for n in names]


def server() -> dict:
    return fk.node("server-0", instance_id="i-0c000000000000001", control_plane=True)


def write_list(path: Path, items: list[dict]) -> Path:
    path.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": items, "metadata": {}}))
    return path


def plan(capsys, *args: str) -> dict:
    assert main(["plan", "--now", NOW, "--json", *args]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == KEYS
    return out


def reason_codes(out: dict) -> list[str]:
    return [r["code"] for r in out["reasons"]]


@pytest.fixture(autouse=True)
def _settings(monkeypatch):
    """The defaults, whatever the shell exports."""
    for name in ("MIN_NODES", "MAX_NODES", "NODE_CPU_M", "NODE_MEM_MIB", "WORKER_LABELS", "WORKER_TAINTS", "VPC_ID"):
        monkeypatch.delenv(name, raising=False)


# -- the questions an operator asks before trusting it ---------------------------------------------


def test_a_pdb_with_no_disruptions_left_keeps_its_nodes_and_an_empty_worker_goes(tmp_path, capsys):
    items = [
        server(),
        *workers("w1", "w2", "w3"),
        fk.pod("web-1", node="w1", labels={"app": "web"}),
        fk.pod("web-2", node="w2", labels={"app": "web"}),
        fk.pdb("web", match_labels={"app": "web"}, disruptions_allowed=0),
    ]
    out = plan(capsys, "--cluster", str(write_list(tmp_path / "c.json", items)))
    assert out["action"] == "scale_down"
    assert out["remove"] == ["w3"] and out["terminate"] == [IDS["w3"]]
    assert set(out["nodes"]) == {"w1", "w2", "w3"}, "every worker, never the control plane"
    for name in ("w1", "w2"):
        assert out["nodes"][name]["candidate"] is False
        assert out["nodes"][name]["reason"] == "pdb_exhausted"
        assert "default/web" in out["nodes"][name]["detail"]
    assert out["nodes"]["w3"] == {"candidate": True, "reason": "empty", "detail": out["nodes"]["w3"]["detail"]}
    assert "usage_assumed_low" in reason_codes(out)


def test_daemonsets_take_their_room_on_a_new_worker(tmp_path, capsys):
    """1200m of DaemonSets on every worker: a 500m pod gets one new worker, a 1000m pod none, though
    a bare 2000m worker would take both."""
    daemonsets = [fk.daemonset(f"agent-{k}", cpu="400m", memory="256Mi") for k in range(3)]
    running = [
        fk.pod(f"agent-{k}-{n}", "kube-system", node=n, cpu="400m", memory="256Mi", owner=("DaemonSet", f"agent-{k}"))
        for k in range(3)
        for n in ("w1", "w2")
    ]
    items = [
        *workers("w1", "w2"),
        *daemonsets,
        *running,
        fk.pod("web-1", node="w1", cpu="600m"),
        fk.pod("web-2", node="w2", cpu="600m"),
        fk.pod("small", node=None, cpu="500m", unschedulable_since=PENDING_SINCE),
        fk.pod("large", node=None, cpu="1000m", unschedulable_since=PENDING_SINCE),
    ]
    out = plan(capsys, "--cluster", str(write_list(tmp_path / "c.json", items)))
    assert out["action"] == "scale_up"
    assert sum(out["launches"].values()) == 1 and set(out["launches"]) <= {"eu-west-1a", "eu-west-1b"}
    assert [(u["pod"], u["reason"]) for u in out["unhelpable"]] == [("default/large", "NodeResourcesFit")]
    assert out["remove"] == [] and out["terminate"] == []
    assert {v["reason"] for v in out["nodes"].values()} == {"not_assessed"}
    assert set(out["nodes"]) == {"w1", "w2"}


def test_a_pod_selecting_gpu_nodes_is_reported_and_neither_launches_nor_blocks_scale_down(tmp_path, capsys):
    gpu = fk.pod("train", node=None, unschedulable_since=PENDING_SINCE, spec={"nodeSelector": {"gpu": "true"}})
    items = [*workers("w1", "w2", "w3"), fk.pod("web-1", node="w1"), gpu]
    out = plan(capsys, "--cluster", str(write_list(tmp_path / "c.json", items)))
    assert out["launches"] == {}
    assert out["unhelpable"] == [
        {"pod": "default/train", "reason": "NodeAffinity", "detail": out["unhelpable"][0]["detail"]}
    ]
    assert "affinity/selector" in out["unhelpable"][0]["detail"]
    assert out["action"] == "scale_down" and len(out["remove"]) == 1
    assert "pending_pods" not in reason_codes(out)


def test_a_pod_on_a_local_path_volume_pins_its_node(tmp_path, capsys):
    db = fk.pod(
        "db-0",
        node="w2",
        owner=("StatefulSet", "db"),
        volumes=[{"name": "data", "persistentVolumeClaim": {"claimName": "data-db-0"}}],
    )
    items = [
        *workers("w1", "w2", "w3"),
        fk.storage_class(),
        fk.claim("data-db-0", volume="pvc-0001", node="w2"),
        fk.volume("pvc-0001", claim=("default", "data-db-0"), node="w2"),
        db,
        fk.pod("web-1", node="w1"),
        fk.pod("web-3", node="w3"),
    ]
    out = plan(capsys, "--cluster", str(write_list(tmp_path / "c.json", items)))
    assert out["nodes"]["w2"]["candidate"] is False
    assert out["nodes"]["w2"]["reason"] == "pod_cannot_move"
    assert "default/db-0" in out["nodes"]["w2"]["detail"]
    assert "w2" not in out["remove"]


# -- inputs ---------------------------------------------------------------------------------------


def test_yaml_gives_the_same_answer_as_json(tmp_path, capsys):
    items = [*workers("w1", "w2", "w3"), fk.pod("web-1", node="w1")]
    as_json = plan(capsys, "--cluster", str(write_list(tmp_path / "c.json", items)))
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": items}))
    assert plan(capsys, "--cluster", str(path)) == as_json


def test_yaml_timestamps_stay_api_strings(tmp_path, capsys):
    """kubectl quotes them, a hand-written file may not: the answer must not depend on that."""
    node = fk.node("w1", instance_id=IDS["w1"])
    text = yaml.safe_dump({"kind": "List", "items": [node]}).replace("'2025-03-01T08:00:00Z'", "2025-03-01T08:00:00Z")
    assert "creationTimestamp: 2025-03-01T08:00:00Z" in text
    path = tmp_path / "c.yaml"
    path.write_text(text)
    assert set(plan(capsys, "--cluster", str(path))["nodes"]) == {"w1"}


def test_without_instances_a_k3s_node_is_its_own_worker_found_by_its_address(tmp_path, capsys):
    def k3s(name: str, ip: str) -> dict:
        node = fk.node(name, instance_id=None, az=ZONES[name])
        node["status"]["addresses"] = [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": name}]
        return node

    items = [k3s("w1", "10.0.1.11"), k3s("w2", "10.0.2.12"), k3s("w3", "10.0.1.13"), fk.pod("web-1", node="w1")]
    out = plan(capsys, "--cluster", str(write_list(tmp_path / "c.json", items)))
    assert set(out["nodes"]) == {"w1", "w2", "w3"}
    assert "not_a_worker" not in {v["reason"] for v in out["nodes"].values()}
    assert out["action"] == "scale_down"
    assert out["terminate"] == [f"synthetic-{n}" for n in out["remove"]]


def test_instances_from_a_file_only_this_clusters_workers(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("CLUSTER_NAME", "prod")
    ours = {CLUSTER_TAG: "prod", ROLE_TAG: WORKER_ROLE}

    def instance(name: str, tags) -> dict:
        return {
            "id": IDS[name],
            "zone": ZONES[name],
            "state": "running",
            "launched_at": "2025-03-01T08:00:00Z",
            "private_ip": None,
            "private_dns_name": None,
            "vpc_id": "vpc-0a1b2c3d",
            "tags": tags,
        }

    instances = [
        instance("w1", ours),
        instance("w2", [{"Key": k, "Value": v} for k, v in ours.items()]),  # EC2's own shape
        instance("w3", {CLUSTER_TAG: "staging", ROLE_TAG: WORKER_ROLE}),
    ]
    (tmp_path / "i.json").write_text(json.dumps(instances))
    items = [*workers("w1", "w2", "w3")]
    out = plan(
        capsys, "--cluster", str(write_list(tmp_path / "c.json", items)), "--instances", str(tmp_path / "i.json")
    )
    assert out["nodes"]["w3"]["reason"] == "not_a_worker"
    assert IDS["w3"] not in out["terminate"]
    assert any(r["code"] == "not_a_worker" and IDS["w3"] in r["detail"] for r in out["reasons"])

    monkeypatch.setenv("VPC_ID", "vpc-0fffffff")
    out = plan(
        capsys, "--cluster", str(write_list(tmp_path / "c.json", items)), "--instances", str(tmp_path / "i.json")
    )
    assert {v["reason"] for v in out["nodes"].values()} == {"not_a_worker"}, "another VPC: none is ours"


def test_a_worker_stopped_too_long_in_the_instances_file_is_terminated(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("CLUSTER_NAME", "prod")
    stopped = {
        "id": "i-0000000000000005",
        "zone": "eu-west-1a",
        "state": "stopped",
        "launched_at": "2025-03-01T08:00:00Z",
        "stopped_at": "2025-03-01T09:00:00Z",
        "tags": {CLUSTER_TAG: "prod", ROLE_TAG: WORKER_ROLE},
    }
    (tmp_path / "i.json").write_text(json.dumps([stopped]))
    cluster = str(write_list(tmp_path / "c.json", [*workers("w1")]))

    def reasons(now: str) -> list[str]:
        assert (
            main(["plan", "--json", "--now", now, "--cluster", cluster, "--instances", str(tmp_path / "i.json")]) == 0
        )
        return [r["detail"] for r in json.loads(capsys.readouterr().out)["reasons"] if r["code"] == "warm_pool"]

    assert not any("stopped over" in r for r in reasons("2025-03-01T09:59:00Z"))
    assert any(
        r.startswith("i-0000000000000005 terminated: stopped over 3600s ago") for r in reasons("2025-03-01T10:01:00Z")
    )


def test_the_table_names_the_decision_and_every_worker(tmp_path, capsys):
    items = [*workers("w1", "w2", "w3"), fk.pod("web-1", node="w1")]
    assert main(["plan", "--now", NOW, "--cluster", str(write_list(tmp_path / "c.json", items))]) == 0
    text = capsys.readouterr().out
    assert text.startswith(f"node-fleet plan at {NOW}: scale_down")
    for name in ("w1", "w2", "w3", "usage_assumed_low"):
        assert name in text


# -- unreadable input: exit 1, one line, the field named ------------------------------------------


def _bad_node() -> dict:
    node = fk.node("w1")
    del node["metadata"]["name"]
    return node


def _untyped_taint() -> dict:
    return fk.node("w1", taints=[{"key": "dedicated", "value": "batch"}])


@pytest.mark.parametrize(
    "desc, content, wanted",
    [
        ("bad JSON", "{not json", "not JSON"),
        ("neither JSON nor YAML", "kind: List\nitems: [\n", "neither JSON nor YAML"),
        ("not a List", json.dumps(fk.node("w1")), "not a Kubernetes List"),
        ("items not a list", json.dumps({"kind": "List", "items": {}}), "not a Kubernetes List"),
        ("an item without kind", json.dumps({"kind": "List", "items": [{"metadata": {}}]}), "kind"),
        ("a node without a name", json.dumps({"kind": "List", "items": [_bad_node()]}), "metadata.name"),
        ("a taint without effect", json.dumps({"kind": "List", "items": [_untyped_taint()]}), "effect"),
    ],
)
def test_unreadable_cluster_exits_1_naming_the_field(tmp_path, capsys, desc, content, wanted):
    path = tmp_path / "cluster"  # no suffix: JSON, else YAML
    path.write_text(content)
    assert main(["plan", "--cluster", str(path)]) == 1, desc
    captured = capsys.readouterr()
    assert captured.out == ""
    err = captured.err.strip()
    assert err.startswith("node-fleet: ") and "\n" not in err, desc
    assert wanted in err and str(path) in err, desc


def test_a_missing_file_exits_1(tmp_path, capsys):
    assert main(["plan", "--cluster", str(tmp_path / "absent.json")]) == 1
    assert "absent.json" in capsys.readouterr().err


@pytest.mark.parametrize(
    "desc, instances, wanted",
    [
        ("not a list", {"id": "i-1"}, "not a JSON list"),
        ("no id", [{"zone": "a", "state": "running", "launched_at": NOW}], "id"),
        ("unknown state", [{"id": "i-1", "zone": "a", "state": "on", "launched_at": NOW}], "state"),
        ("bad time", [{"id": "i-1", "zone": "a", "state": "running", "launched_at": "yesterday"}], "launched_at"),
        (
            "bad stop time",
            [{"id": "i-1", "zone": "a", "state": "stopped", "launched_at": NOW, "stopped_at": "x"}],
            "stopped_at",
        ),
        ("bad tags", [{"id": "i-1", "zone": "a", "state": "running", "launched_at": NOW, "tags": 3}], "tags"),
    ],
)
def test_unreadable_instances_exit_1_naming_the_field(tmp_path, capsys, desc, instances, wanted):
    (tmp_path / "i.json").write_text(json.dumps(instances))
    cluster = write_list(tmp_path / "c.json", workers("w1"))
    assert main(["plan", "--cluster", str(cluster), "--instances", str(tmp_path / "i.json")]) == 1, desc
    err = capsys.readouterr().err
    assert wanted in err and "\n" not in err.strip(), desc


def test_a_bad_now_exits_1(tmp_path, capsys):
    cluster = write_list(tmp_path / "c.json", workers("w1"))
    assert main(["plan", "--cluster", str(cluster), "--now", "soon"]) == 1
    assert "--now" in capsys.readouterr().err


# -- the live cluster and Prometheus (loopback only) ----------------------------------------------


def test_a_live_cluster_gives_the_file_s_answer_and_is_only_read(tmp_path, capsys, monkeypatch):
    enable_socket()
    items = [
        server(),
        *workers("w1", "w2", "w3"),
        fk.pod("web-1", node="w1", labels={"app": "web"}),
        fk.pdb("web", match_labels={"app": "web"}, disruptions_allowed=0),
        fk.daemonset("agent"),
    ]
    from_file = plan(capsys, "--cluster", str(write_list(tmp_path / "c.json", items)))
    with fk.FakeKube(token="t0k3n") as kube:
        kube.add(*items)
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "fake", "cluster": {"server": kube.url}}],
            "users": [{"name": "me", "user": {"token": "t0k3n"}}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "me"}}],
            "current-context": "fake",
        }
        (tmp_path / "kubeconfig").write_text(json.dumps(config))
        monkeypatch.delenv("K8S_CONTEXT", raising=False)
        live = plan(capsys, "--kubeconfig", str(tmp_path / "kubeconfig"))
        methods = {r.method for r in kube.requests}
    assert live == from_file
    assert methods == {"GET"}


def test_an_unreachable_api_server_exits_1(tmp_path, capsys):
    enable_socket()
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "gone", "cluster": {"server": "http://127.0.0.1:9"}}],
        "users": [{"name": "me", "user": {"token": "x"}}],
        "contexts": [{"name": "gone", "context": {"cluster": "gone", "user": "me"}}],
        "current-context": "gone",
    }
    (tmp_path / "kubeconfig").write_text(json.dumps(config))
    assert main(["plan", "--kubeconfig", str(tmp_path / "kubeconfig")]) == 1
    err = capsys.readouterr().err
    assert "kubeconfig" in err and "\n" not in err.strip()


def test_prometheus_that_cannot_answer_means_no_scale_down(tmp_path, capsys, monkeypatch):
    enable_socket()
    monkeypatch.setenv("PROMETHEUS_RETRIES", "0")
    items = [*workers("w1", "w2", "w3")]
    out = plan(capsys, "--cluster", str(write_list(tmp_path / "c.json", items)), "--prometheus", "http://127.0.0.1:9")
    assert out["action"] == "none" and out["remove"] == []
    assert "metrics_unknown" in reason_codes(out)
    assert "usage_assumed_low" not in reason_codes(out)
    assert {v["reason"] for v in out["nodes"].values()} == {"metrics_unknown"}
