"""Flagger: installed by Flux with Prometheus as its metrics provider, the demo app a Canary whose metric
analysis Prometheus can answer, and the gate holding scale-down through Flagger's active phases (the
Canary CRD's own list) and releasing it at promotion or rollback, on the statuses the demo writes."""

from __future__ import annotations

import shutil
import subprocess
from urllib.parse import urlsplit

import pytest
import yaml
from jsonschema import Draft4Validator

from autoscaler.gitops.flux import CANARY_ACTIVE, CANARY_AT_REST, CANARY_FAILED, CANARY_PAUSED, State, verdict
from autoscaler.gitops.gate import evaluate
from gitops_tree import closed, find, metric_names, version_schema
from node_fleet.demo.flux import PROMOTION, ROLLBACK, FakeFlux
from node_fleet.stack.kube_api import FLUX_KINDS, FakeKube

# What podinfo (the demo app's image) exports on /metrics: its HTTP middleware's request counter and
# latency histogram (github.com/stefanprodan/podinfo, pkg/api/http).
PODINFO_METRICS = {"http_requests_total", "http_request_duration_seconds_bucket"}
# Flagger's template variables, as it fills them in for this Canary.
TEMPLATE_VARIABLES = {"{{ namespace }}": "apps", "{{ target }}": "demo-app", "{{ interval }}": "1m"}


def one(docs, kind, name):
    (found,) = find(docs, kind, name)
    return found


def test_flux_installs_flagger_with_prometheus_as_its_provider(applied):
    flagger = one(applied, "HelmRelease", "flagger")
    assert flagger["metadata"]["namespace"] == "flagger-system"
    assert flagger["spec"]["chart"]["spec"]["sourceRef"] == {"kind": "HelmRepository", "name": "flagger"}
    assert one(applied, "HelmRepository", "flagger")["spec"]["url"] == "https://flagger.app"
    assert flagger["spec"]["install"]["crds"] == "Create", "the chart's CRDs: Canary, MetricTemplate"
    values = flagger["spec"]["values"]
    assert values["meshProvider"] == "kubernetes", "no service mesh on this K3s"
    # The metrics server is kube-prometheus-stack's Prometheus Service: <releaseName>-prometheus.<namespace>.
    prometheus = one(applied, "HelmRelease", "kube-prometheus-stack")
    url = urlsplit(values["metricsServer"])
    expected = f"{prometheus['spec']['releaseName']}-prometheus.{prometheus['metadata']['namespace']}"
    assert (url.scheme, url.hostname, url.port) == ("http", expected, 9090)


def test_the_demo_app_is_a_canary_with_metric_analysis(applied):
    canary = one(applied, "Canary", "demo-app")
    namespace = canary["metadata"]["namespace"]
    spec = canary["spec"]
    deployment = one(applied, "Deployment", spec["targetRef"]["name"])
    hpa = one(applied, "HorizontalPodAutoscaler", spec["autoscalerRef"]["name"])
    assert deployment["metadata"]["namespace"] == hpa["metadata"]["namespace"] == namespace
    assert spec["provider"] == "kubernetes"
    # Blue/green by iterations: the kubernetes provider routes no weights.
    analysis = spec["analysis"]
    assert analysis["iterations"] >= 1 and analysis["threshold"] >= 1
    assert not {"stepWeight", "maxWeight", "stepWeights"} & set(analysis)
    metrics_server = one(applied, "HelmRelease", "flagger")["spec"]["values"]["metricsServer"]
    assert {m["name"] for m in analysis["metrics"]} == {"error-rate", "latency-p99"}
    for metric in analysis["metrics"]:
        ref = metric["templateRef"]
        template = one(applied, "MetricTemplate", ref["name"])
        assert template["metadata"]["namespace"] == ref.get("namespace", namespace)
        assert template["spec"]["provider"] == {"type": "prometheus", "address": metrics_server}
        assert set(metric["thresholdRange"]) <= {"min", "max"} and metric["thresholdRange"]
    # Traffic for the analysis: the load tester Flux installs, aimed at the canary's Service.
    (hook,) = analysis["webhooks"]
    loadtester = one(applied, "HelmRelease", "flagger-loadtester")
    assert urlsplit(hook["url"]).hostname == f"flagger-loadtester.{loadtester['metadata']['namespace']}"
    assert f"http://{spec['targetRef']['name']}-canary.{namespace}/" in hook["metadata"]["cmd"]
    # Prometheus scrapes the canary's and the primary's pods on the port the container names.
    release = one(applied, "HelmRelease", "kube-prometheus-stack")
    (monitor,) = [
        m for m in release["spec"]["values"]["prometheus"]["additionalPodMonitors"] if m["name"] == "demo-app"
    ]
    assert monitor["namespaceSelector"]["matchNames"] == [namespace]
    (selector,) = monitor["selector"]["matchExpressions"]
    assert set(selector["values"]) == {"demo-app", "demo-app-primary"}
    ports = {p["name"] for c in deployment["spec"]["template"]["spec"]["containers"] for p in c["ports"]}
    assert {e["port"] for e in monitor["podMetricsEndpoints"]} <= ports


def test_the_metric_queries_are_valid_promql_over_what_podinfo_exports(applied, tmp_path):
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not found (apt-get install prometheus; .ci/run installs it)")
    rules = []
    for template in find(applied, "MetricTemplate"):
        query = template["spec"]["query"]
        for variable, value in TEMPLATE_VARIABLES.items():
            query = query.replace(variable, value)
        assert "{{" not in query, f"{template['metadata']['name']}: a variable Flagger does not fill in"
        assert metric_names(query) <= PODINFO_METRICS, template["metadata"]["name"]
        rules.append({"record": f"flagger:{template['metadata']['name'].replace('-', '_')}", "expr": query})
    path = tmp_path / "queries.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "flagger", "rules": rules}]}))
    out = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr


def flagger_phases() -> set[str]:
    """The Canary CRD's status.phase enum: every phase Flagger sets."""
    return set(
        version_schema("flagger.app", "Canary", "v1beta1")["properties"]["status"]["properties"]["phase"]["enum"]
    )


def test_the_gate_knows_every_phase_flagger_sets(have_crds):
    phases = flagger_phases() - {""}
    known = CANARY_ACTIVE | CANARY_PAUSED | CANARY_AT_REST | {CANARY_FAILED}
    assert known == phases
    assert set(PROMOTION) | set(ROLLBACK) <= phases, "the demo writes only phases Flagger sets"


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("desc", "steps", "final"), [("promotion", PROMOTION, State.READY), ("rollback", ROLLBACK, State.STALLED)]
)
def test_the_gate_holds_during_analysis_and_releases_at_promotion_or_rollback(desc, steps, final, have_crds):
    kube = FakeKube()  # the in-memory store only: never started, no socket
    kube.install(*FLUX_KINDS)
    clock = Clock()
    flux = FakeFlux(kube, clock)
    flux.seed()
    status_schema = closed(version_schema("flagger.app", "Canary", "v1beta1")["properties"]["status"])
    assert verdict(flux.canary()).state is State.READY, "promoted long ago"
    memory = evaluate([flux.canary()], clock.now, None).memory
    for phase in steps:
        clock.now += 60
        flux.canary_step(phase, failed_checks=2 if phase == "Failed" else 0)
        canary = flux.canary()
        assert list(Draft4Validator(status_schema).iter_errors(canary["status"])) == [], (desc, phase)
        gate = evaluate([canary], clock.now, memory, settle_s=30)
        memory = gate.memory
        if phase == steps[-1]:
            assert verdict(canary).state is final and not verdict(canary).holds, (desc, phase)
        else:
            assert verdict(canary).holds and gate.blocked, (desc, phase)
            assert [v.name for v in gate.holding] == ["demo-app"], (desc, phase)
    # Released: after promotion the settle window runs out; after a rollback nothing waits.
    assert not evaluate([flux.canary()], clock.now + 31, memory, settle_s=30).blocked
