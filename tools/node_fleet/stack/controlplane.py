"""tools/controlplane run as a process: a real Kubernetes control plane (etcd, kube-apiserver,
kube-controller-manager, kube-scheduler) on a free 127.0.0.1 port, for the embedded stack and the
tests marked `controlplane`. `make controlplane` builds the binary (`make -s controlplane-path`
prints where); nothing here builds it.

    plane = ControlPlane(binary, workdir).start()   # returns once the binary wrote `ready`
    plane.url, plane.token, plane.ca_file           # the admin (system:masters) view
    plane.stop()

`start_real_api` is what the embedded stack runs on it: the control plane, the Flux CRDs it is
given, and gitops/infrastructure/node-fleet-rbac applied, whose ServiceAccount token (the one
the token controller writes into the Secret, which operators copy into SSM) the functions use.
"""

from __future__ import annotations

import base64
import socket
import subprocess  # nosec B404  # runs the control plane binary built by `make controlplane`, no shell
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from node_fleet.stack.errors import StackError
from node_fleet.stack.kube_real import RealKube

STARTUP_S = 180.0
RBAC = Path(__file__).resolve().parents[3] / "gitops" / "infrastructure" / "node-fleet-rbac"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ControlPlane:
    """The binary started in `workdir` (its datastore, certificates, admin token and kubeconfig go
    there); `kcm_args` are extra kube-controller-manager flags."""

    def __init__(self, binary: str | Path, workdir: str | Path, *, kcm_args: Sequence[str] = ()) -> None:
        self.binary = Path(binary)
        self.workdir = Path(workdir)
        self.kcm_args = tuple(kcm_args)
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self.workdir / "controlplane.log"

    @property
    def url(self) -> str:
        return (self.workdir / "ready").read_text().strip()

    @property
    def token(self) -> str:
        return (self.workdir / "admin.token").read_text().strip()

    @property
    def ca_file(self) -> Path:
        return self.workdir / "certs" / "apiserver.crt"

    @property
    def kubeconfig(self) -> Path:
        return self.workdir / "kubeconfig"

    def start(self, timeout_s: float = STARTUP_S) -> ControlPlane:
        """Start the binary and wait for its `ready` file; StackError (with the log's tail) if it
        is missing, exits or is not ready within `timeout_s`."""
        if self._proc is not None:
            return self
        if not self.binary.is_file():
            raise StackError(f"the control plane binary {self.binary} is missing: run `make controlplane`")
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "ready").unlink(missing_ok=True)
        args = [str(self.binary), f"-dir={self.workdir}", f"-port={free_port()}"]
        args += [f"-kcm-arg={arg}" for arg in self.kcm_args]
        with self.log_path.open("wb") as log:
            self._proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)  # nosec B603  # fixed argv
        deadline = time.monotonic() + timeout_s
        while not (self.workdir / "ready").exists():
            if self._proc.poll() is not None or time.monotonic() > deadline:
                code = self._proc.poll()
                self.stop()
                tail = self.log_path.read_text(errors="replace")[-4000:]
                raise StackError(f"the control plane did not become ready (exit {code}):\n{tail}")
            time.sleep(0.2)
        return self

    def stop(self) -> None:
        """Stop the process (SIGTERM, then SIGKILL after 30 s); idempotent."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@dataclass
class RealApi:
    """A started control plane, its admin's view, and what node-fleet's functions are given."""

    plane: ControlPlane
    kube: RealKube
    token: str
    """The `node-fleet` ServiceAccount's token."""
    ca_pem: str

    def stop(self) -> None:
        self.kube.close()
        self.plane.stop()


def start_real_api(binary: str | Path, workdir: Path, crds: Sequence[str | Path] = ()) -> RealApi:
    """The control plane started in `workdir`, the CRDs of `crds` (files or folders) installed,
    the `flux-system` namespace made, and node-fleet's RBAC applied."""
    plane = ControlPlane(binary, workdir).start()
    kube = RealKube(plane.url, plane.token, plane.ca_file)
    try:
        kube.namespace("flux-system")
        kube.install_crds(crds)
        token = service_account_token(kube, rbac_objects(RBAC))
        return RealApi(plane, kube, token, plane.ca_file.read_text())
    except BaseException:
        kube.close()
        plane.stop()
        raise


def rbac_objects(folder: Path) -> list[dict]:
    """The objects of a kustomization that only lists resources (node-fleet-rbac's is one)."""
    kustomization = yaml.safe_load((folder / "kustomization.yaml").read_text(encoding="utf-8"))
    if set(kustomization) - {"apiVersion", "kind", "resources"}:
        raise StackError(f"{folder}/kustomization.yaml does more than list resources: render it with kustomize")
    return [
        doc
        for name in kustomization["resources"]
        for doc in yaml.safe_load_all((folder / name).read_text(encoding="utf-8"))
        if doc
    ]


def service_account_token(kube: RealKube, objects: Sequence[dict], timeout_s: float = 60.0) -> str:
    """Apply the RBAC objects and return the token the token controller writes into their
    ServiceAccount token Secret."""
    kube.add(*objects)
    (secret,) = [o for o in objects if o.get("type") == "kubernetes.io/service-account-token"]
    name, namespace = secret["metadata"]["name"], secret["metadata"]["namespace"]
    deadline = time.monotonic() + timeout_s
    while not ((found := kube.get("secrets", name, namespace)) and (found.get("data") or {}).get("token")):
        if time.monotonic() > deadline:
            raise StackError(f"the token controller did not fill the Secret {namespace}/{name} within {timeout_s:g}s")
        time.sleep(0.1)
    return base64.b64decode(found["data"]["token"]).decode()
