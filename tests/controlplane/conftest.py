"""A real Kubernetes control plane on loopback for the tests marked `controlplane`.

The binary is tools/controlplane (etcd, kube-apiserver, kube-controller-manager and kube-scheduler
of one Kubernetes release, in one process), built once per machine by `make controlplane`, which
`make test` runs first. It is started once per session in a temporary directory on a free port.
There are no kubelets: tests create Nodes themselves (status included, as a kubelet registers
them) and set their pods' status through the status subresource.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from kube_objects import REPO, Admin, kubectl

FLUX_CRDS = REPO.parent / "shared" / "flux-crds"
STARTUP_S = 180.0


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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def controlplane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Admin]:
    """The running control plane, as its admin (system:masters) sees it."""
    binary = controlplane_binary()
    if not binary.is_file():
        # Not a skip: these tests must run wherever the suite runs, and `make test` builds it first.
        pytest.fail(f"the control plane binary {binary} is missing: run `make controlplane` (it takes several minutes)")
    work = tmp_path_factory.mktemp("controlplane")
    log_path = work / "controlplane.log"
    args = [
        str(binary),
        f"-dir={work}",
        f"-port={free_port()}",
        # No kubelet renews these Nodes' Leases: without this the node lifecycle controller would
        # mark them NotReady and taint them after 50 s, in the middle of a test.
        "-kcm-arg=--node-monitor-grace-period=1h",
    ]
    with log_path.open("wb") as log:
        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + STARTUP_S
        while not (work / "ready").exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = log_path.read_text(errors="replace")[-4000:]
                pytest.fail(f"the control plane did not become ready (exit {proc.poll()}):\n{tail}")
            time.sleep(0.2)
        admin = Admin.from_dir(work)
        admin.wait_ready()
        yield admin
        admin.close()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="session")
def flux_crds(controlplane: Admin) -> list[str]:
    """The Flux and Flagger CRDs of ../shared/flux-crds installed and Established; their names."""
    assert FLUX_CRDS.is_dir(), f"the Flux CRDs are missing at {FLUX_CRDS} (../shared/flux-crds next to the clone)"
    out = kubectl("apply", "--server-side", "-f", str(FLUX_CRDS), kubeconfig=controlplane.kubeconfig)
    assert out.returncode == 0, out.stderr
    names = [
        doc["metadata"]["name"]
        for path in sorted(FLUX_CRDS.glob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text())
        if doc and doc.get("kind") == "CustomResourceDefinition"
    ]
    out = kubectl(
        "wait", "--for=condition=Established", "--timeout=120s", *(f"crd/{n}" for n in names),
        kubeconfig=controlplane.kubeconfig,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    return names
