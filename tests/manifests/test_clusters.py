"""One repository, two clusters: production and staging sync the same chain from clusters/base, each with
its own overlays and Secrets; and each cluster's Kustomizations read an ExternalArtifact that source-watcher
makes from the folders that cluster uses, so a commit elsewhere in the repository reconciles nothing."""

from __future__ import annotations

import re
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

import pytest
import yaml

from gitops_tree import ARTIFACT_GENERATOR, CLUSTERS, GITOPS, ROOT, find, flux_paths

# The patterns of source-watcher's ArtifactGenerator CRD (source.extensions.fluxcd.io/v1beta1) for what
# is checked here; the CRD itself is not among ../shared/flux-crds.
ALIAS = r"[a-z0-9]([a-z0-9_-]*[a-z0-9])?"
COPY_FROM = re.compile(rf"^@({ALIAS})/(.*)$")
COPY_TO = re.compile(r"^@(artifact)/(.*)$")
NAME = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")


def generator(builds, cluster: str) -> dict[str, Any]:
    (found,) = [d for d in builds[CLUSTERS[cluster]] if (d["apiVersion"], d["kind"]) == ARTIFACT_GENERATOR]
    return found


def copies(builds, cluster: str) -> list[tuple[str, str]]:
    """(glob in the repository, folder in the artifact) of each copy of the cluster's one artifact."""
    (artifact,) = generator(builds, cluster)["spec"]["artifacts"]
    return [(COPY_FROM.match(c["from"]).group(3), COPY_TO.match(c["to"]).group(2)) for c in artifact["copy"]]


def in_artifact(builds, cluster: str, path: str) -> bool:
    """Would a change to this repository path change the cluster's artifact (and so reconcile it)?"""
    return any(fnmatch(path, glob) for glob, _ in copies(builds, cluster))


def test_the_artifact_generator_is_well_formed(builds, cluster):
    gen = generator(builds, cluster)
    assert gen["metadata"]["namespace"] == "flux-system"
    (source,) = gen["spec"]["sources"]
    assert re.fullmatch(ALIAS, source["alias"]) and source["kind"] == "GitRepository"
    (repo,) = find(builds[CLUSTERS[cluster]], "GitRepository", source["name"])
    assert repo["metadata"]["namespace"] == gen["metadata"]["namespace"]
    (artifact,) = gen["spec"]["artifacts"]
    assert NAME.match(artifact["name"]) and artifact["originRevision"] == f"@{source['alias']}"
    assert "revision" not in artifact, "the revision must be the content's digest, not the commit"
    for copy in artifact["copy"]:
        src, dst = COPY_FROM.match(copy["from"]), COPY_TO.match(copy["to"])
        assert src and dst and src.group(1) == source["alias"], copy
        # The artifact keeps the repository's paths, so every Kustomization's path reads the same.
        assert src.group(3) == f"{dst.group(2)}**", copy
    # Every Kustomization but flux-system reads it.
    readers = [d for d in find(builds[CLUSTERS[cluster]], "Kustomization") if d["metadata"]["name"] != "flux-system"]
    assert readers and all(
        d["spec"]["sourceRef"] == {"kind": "ExternalArtifact", "name": artifact["name"]} for d in readers
    )


def kustomize_inputs(folder: Path) -> set[Path]:
    """Every folder a kustomization builds from: itself and, through resources and components, the rest."""
    found = {folder}
    spec = yaml.safe_load((folder / "kustomization.yaml").read_text())
    for entry in spec.get("resources", []) + spec.get("components", []):
        target = (folder / entry).resolve()
        if target.is_dir():
            found |= kustomize_inputs(target)
    return found


def test_every_folder_a_kustomization_builds_from_is_in_the_artifact(builds, cluster):
    # A folder left out of the artifact would fail the build in the cluster; the tests here build from Git.
    readers = [d for d in find(builds[CLUSTERS[cluster]], "Kustomization") if d["metadata"]["name"] != "flux-system"]
    for doc in readers:
        for folder in kustomize_inputs((ROOT / doc["spec"]["path"]).resolve()):
            for file in folder.iterdir():
                path = file.relative_to(ROOT).as_posix()
                assert file.is_dir() or in_artifact(builds, cluster, path), (doc["metadata"]["name"], path)


@pytest.mark.parametrize(
    ("path", "production", "staging"),
    [
        ("src/autoscaler/planner.py", False, False),
        ("README.md", False, False),
        ("tests/manifests/test_clusters.py", False, False),
        ("gitops/README.md", False, False),
        ("gitops/scripts/check-status.sh", False, False),
        ("gitops/apps/demo-app/deployment.yaml", True, True),
        ("gitops/infrastructure/flagger/release.yaml", True, True),
        ("gitops/monitoring/alerts.yaml", True, True),
        ("gitops/overlays/staging/apps/kustomization.yaml", False, True),
        ("gitops/secrets/staging/slack-webhook.sops.yaml", False, True),
        ("gitops/secrets/production/slack-webhook.sops.yaml", True, False),
    ],
)
def test_a_commit_reconciles_only_the_clusters_whose_folders_it_touches(builds, path, production, staging):
    assert (in_artifact(builds, "production", path), in_artifact(builds, "staging", path)) == (production, staging)


def test_the_docs_no_longer_say_the_git_source_skips_commits():
    # source-controller makes a new artifact for every new commit; the ignore rules only keep it small.
    for path in (GITOPS / "README.md", GITOPS / "clusters" / "base" / "flux-system" / "kustomization.yaml"):
        text = " ".join(path.read_text().split())
        assert "makes no new artifact" not in text, path
    assert "new artifact for every new commit" in " ".join((GITOPS / "README.md").read_text().split())


# --- staging: the same tree, smaller ---------------------------------------------------------------------


def objects(builds, cluster: str) -> dict[tuple[str, str, str], dict[str, Any]]:
    """(kind, namespace, name) -> object, for what the cluster's Kustomizations apply (not its own folder)."""
    folders = set(flux_paths(builds[CLUSTERS[cluster]])) - {CLUSTERS[cluster]}
    return {
        (d["kind"], d["metadata"].get("namespace", ""), d["metadata"]["name"]): d
        for folder in folders
        for d in builds[folder]
    }


def test_staging_runs_what_production_runs(builds):
    assert set(objects(builds, "staging")) == set(objects(builds, "production"))


def test_staging_is_smaller_where_its_overlays_say(builds):
    prod, stage = objects(builds, "production"), objects(builds, "staging")
    hpa = ("HorizontalPodAutoscaler", "apps", "demo-app")
    assert stage[hpa]["spec"]["maxReplicas"] < prod[hpa]["spec"]["maxReplicas"]
    assert stage[hpa]["spec"]["minReplicas"] < prod[hpa]["spec"]["minReplicas"]
    canary = ("Canary", "apps", "demo-app")
    assert stage[canary]["spec"]["analysis"]["iterations"] < prod[canary]["spec"]["analysis"]["iterations"]
    prometheus = ("HelmRelease", "monitoring", "kube-prometheus-stack")
    stage_spec = stage[prometheus]["spec"]["values"]["prometheus"]["prometheusSpec"]
    prod_spec = prod[prometheus]["spec"]["values"]["prometheus"]["prometheusSpec"]
    assert stage_spec["retention"] == "2d" and prod_spec["retention"] == "7d"
    # Everything else is the same object.
    changed = {hpa, canary, prometheus} | {k for k in prod if k[0] == "Secret" and k[1] == "flux-system"}
    assert [k for k in prod if k not in changed and prod[k] != stage[k]] == []


def test_each_cluster_has_its_own_secrets_and_the_same_names(builds):
    names = {}
    for cluster in CLUSTERS:
        folder = GITOPS / "secrets" / cluster
        names[cluster] = {d["metadata"]["name"] for d in builds[folder]}
        texts = {p.read_text() for p in folder.glob("*.sops.yaml")}
        assert texts, cluster
    assert names["production"] == names["staging"] == {"node-fleet-gate-hook", "slack-webhook"}


def test_staging_has_its_own_stack(builds):
    import tomllib

    config = tomllib.loads((ROOT / "samconfig.toml").read_text())
    staging, default = config["staging"], config["default"]
    assert staging["global"]["parameters"]["stack_name"] != default["global"]["parameters"]["stack_name"]
    overrides = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', staging["deploy"]["parameters"]["parameter_overrides"]))
    assert overrides["ClusterName"] == "staging"
    assert int(overrides["MaxNodes"]) < 10, "smaller than the template's default"
    for param in ("K8sTokenParam", "K8sCaParam", "WebhookHmacParam"):
        assert overrides[param].startswith("/node-fleet-staging/"), param
    stack = staging["global"]["parameters"]["stack_name"]
    assert all(
        name.startswith(f"{stack}-scale-") for name in re.findall(r'\\"([\w-]+)\\": \{', overrides["AlarmActions"])
    )
