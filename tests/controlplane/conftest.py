"""A real Kubernetes control plane on loopback for the tests marked `controlplane`.

The binary is tools/controlplane (etcd, kube-apiserver, kube-controller-manager and kube-scheduler
of one Kubernetes release, in one process), built once per machine by `make controlplane`, which
`make test` runs first. It is started once per session in a temporary directory on a free port.
There are no kubelets: tests create Nodes themselves (status included, as a kubelet registers
them) and set their pods' status through the status subresource.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import yaml

from kube_objects import Admin, flux_crds_dir, kubectl, running_controlplane


@pytest.fixture(scope="session")
def controlplane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Admin]:
    """The running control plane, as its admin (system:masters) sees it."""
    with running_controlplane(tmp_path_factory.mktemp("controlplane")) as admin:
        yield admin


@pytest.fixture(scope="session")
def flux_crds(controlplane: Admin) -> list[str]:
    """The Flux and Flagger CRDs of ../shared/flux-crds installed and Established; their names."""
    folder = flux_crds_dir()
    out = kubectl("apply", "--server-side", "-f", str(folder), kubeconfig=controlplane.kubeconfig)
    assert out.returncode == 0, out.stderr
    names = [
        doc["metadata"]["name"]
        for path in sorted(folder.glob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text())
        if doc and doc.get("kind") == "CustomResourceDefinition"
    ]
    out = kubectl(
        "wait", "--for=condition=Established", "--timeout=120s", *(f"crd/{n}" for n in names),
        kubeconfig=controlplane.kubeconfig,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    return names
