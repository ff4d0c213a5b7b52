"""gitops/ judged by the real API server: every object Flux would apply goes through
`kubectl apply --server-side --dry-run=server`, so the server's own schemas, the Flux and Flagger
CRDs' schemas (from ../shared/flux-crds) and its defaulting decide, not a copy of them.

Every cluster of the repository (clusters/production, clusters/staging) and every folder their
Kustomizations apply, overlays included. SOPS-encrypted Secrets are judged as kustomize-controller
applies them, without their `sops` stanza (the ciphertext standing in for the values).

Not judged here: the PrometheusRule of gitops/monitoring. Its CRD comes with the
kube-prometheus-stack chart that gitops/infrastructure installs, and no copy of it is at hand; its
rules go through `promtool check rules` and `promtool test rules` in tests/manifests instead. Nor
source-watcher's ArtifactGenerator (clusters/base/sources.yaml), whose CRD is not among
../shared/flux-crds: tests/manifests/test_clusters.py checks it.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from gitops_tree import ARTIFACT_GENERATOR, CLUSTERS, as_decrypted
from kube_objects import REPO, Admin, kubectl, kustomize

pytestmark = pytest.mark.controlplane

GITOPS = REPO / "gitops"
CLUSTER = CLUSTERS["production"]
NOT_JUDGED = {("monitoring.coreos.com/v1", "PrometheusRule"), ARTIFACT_GENERATOR}


def flux_folders() -> list[Path]:
    """Each cluster's own folder, then each folder its Flux Kustomizations apply (once, if shared)."""
    folders = []
    for cluster in CLUSTERS.values():
        paths = [
            (REPO / doc["spec"]["path"]).resolve()
            for doc in kustomize(cluster)
            if doc["kind"] == "Kustomization" and doc["apiVersion"].startswith("kustomize.toolkit.fluxcd.io/")
        ]
        folders += [p for p in [cluster, *sorted(set(paths) - {cluster})] if p not in folders]
    return folders


def judged(folder: Path) -> list[dict]:
    return [as_decrypted(d) for d in kustomize(folder) if (d["apiVersion"], d["kind"]) not in NOT_JUDGED]


FOLDERS = flux_folders()


def dry_run(admin: Admin, docs: list[dict]) -> subprocess.CompletedProcess:
    return kubectl(
        "apply", "--server-side", "--dry-run=server", "--field-manager=node-fleet-tests", "-o", "json", "-f", "-",
        kubeconfig=admin.kubeconfig, stdin=yaml.safe_dump_all(docs),
    )  # fmt: skip


@pytest.fixture(scope="module")
def namespaces(controlplane: Admin, flux_crds: list[str]) -> set[str]:
    """Every namespace gitops/ puts objects in, created for real: a dry run cannot create the
    namespace its other objects need."""
    names = {"flux-system"}
    for folder in FOLDERS:
        for doc in kustomize(folder):
            if doc["kind"] == "Namespace":
                names.add(doc["metadata"]["name"])
            elif doc["metadata"].get("namespace"):
                names.add(doc["metadata"]["namespace"])
    for name in names:
        controlplane.namespace(name)
    return names


@pytest.mark.parametrize("folder", FOLDERS, ids=[str(f.relative_to(GITOPS)) for f in FOLDERS])
def test_every_object_is_accepted_by_the_api_server(controlplane: Admin, namespaces: set[str], folder: Path):
    docs = judged(folder)
    if not docs:
        assert folder == GITOPS / "monitoring", f"{folder} renders nothing the server judges"
        return
    out = dry_run(controlplane, docs)
    assert out.returncode == 0, f"the API server refused objects of {folder}:\n{out.stderr}"
    answered = json.loads(out.stdout)
    items = answered["items"] if answered.get("kind") == "List" else [answered]
    assert sorted((i["kind"], i["metadata"]["name"]) for i in items) == sorted(
        (d["kind"], d["metadata"]["name"]) for d in docs
    )
    # Defaulted by the server (a dry run still runs defaulting and admission), and not stored.
    for item in items:
        assert item["metadata"].get("uid"), f"{item['kind']} {item['metadata']['name']}: not judged by the server"
        if item["kind"] == "Deployment":
            assert item["spec"]["strategy"]["type"] == "RollingUpdate"


def test_only_the_prometheus_rule_and_the_artifact_generator_are_left_out():
    kinds = {(d["apiVersion"], d["kind"]) for folder in FOLDERS for d in kustomize(folder)}
    assert kinds & NOT_JUDGED == NOT_JUDGED


def test_every_cluster_and_overlay_is_judged():
    shown = {f.relative_to(GITOPS).as_posix() for f in FOLDERS}
    assert {"clusters/production", "clusters/staging", "overlays/staging/apps", "secrets/staging"} <= shown


BROKEN = [
    pytest.param(lambda d: d["spec"].update(intervall="5m"), ".spec.intervall: field not declared in schema",
                 id="a field the CRD does not have"),
    pytest.param(lambda d: d["spec"].update(interval="five minutes"), "spec.interval", id="an interval that is no duration"),
    pytest.param(lambda d: d["spec"].pop("sourceRef"), "sourceRef", id="no sourceRef"),
]  # fmt: skip


@pytest.mark.parametrize(("break_it", "error"), BROKEN)
def test_the_server_refuses_a_broken_flux_kustomization(controlplane: Admin, namespaces: set[str], break_it, error):
    """The dry run really judges: the same objects, broken, are refused."""
    doc = next(d for d in kustomize(CLUSTER) if d["kind"] == "Kustomization")
    break_it(doc)
    out = dry_run(controlplane, [doc])
    assert out.returncode != 0
    assert error in out.stderr, out.stderr
