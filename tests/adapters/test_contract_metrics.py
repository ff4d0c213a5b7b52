"""The contract of the Metrics port (src/autoscaler/ports.py), run against every implementation: the
unit tests' FakeMetrics, the simulator's SimMetrics, and PrometheusMetrics against a real
Prometheus (conftest's `prom`, holding prom_history's history) or, for the unknown case, a closed
port. Each is asked once where it knows the cluster's usage, once where it cannot: usage is a
ratio, and what cannot be trusted comes back unknown with a reason, never as zero. What only the
Prometheus adapter has (queries, retries, faults, auth) stays in test_prometheus.py."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from autoscaler.adapters.prometheus import PrometheusMetrics, PrometheusOptions
from autoscaler.model import MetricsView
from autoscaler.ports import Metrics
from builders import NOW
from fakes import FakeMetrics
from node_fleet.sim.cluster import ClusterModel, VirtualCluster
from node_fleet.sim.ports import SimMetrics
from node_fleet.sim.record import RunRecord
from node_fleet.sim.workload import PodSpec, Workload
from node_fleet.stack.prometheus import closed_port_url

# (metrics, the `now` to sample at); `knows` picks the world with usage or the one without.
Subject = tuple[Metrics, float]


def memory(knows: bool) -> Subject:
    view = MetricsView(cluster_cpu=0.4, node_cpu={"n1": 0.3}) if knows else MetricsView(unknown_reason="no answer")
    return FakeMetrics(view), NOW


def simulated(knows: bool) -> Subject:
    model = ClusterModel(metrics_lag_s=60)
    workload = Workload("w", (PodSpec("web-1", 0.0, None, 500, 512),), 600)
    vc = VirtualCluster(workload, model, RunRecord("p", "w", 600, 10, 60, 2000, 7680, 2))
    vc.boot(2)
    end = 120 if knows else 0  # before the first reading is `metrics_lag_s` old, nothing is known
    for t in range(0, end + 1, 10):
        vc.step(float(t))
    return SimMetrics(vc), float(end)


def prometheus(request: pytest.FixtureRequest, knows: bool) -> Subject:
    if not knows:
        return PrometheusMetrics(PrometheusOptions(url=closed_port_url(), retries=0)), time.time()
    prom = request.getfixturevalue("prom")
    return PrometheusMetrics(prom.options()), prom.now


@pytest.fixture(params=["memory", "sim", "prometheus"])
def make(request) -> Callable[[bool], Subject]:
    if request.param == "memory":
        return memory
    if request.param == "sim":
        return simulated
    return lambda knows: prometheus(request, knows)


def ratio(value: float | None) -> bool:
    return value is not None and 0.0 <= value <= 1.0


def test_known_usage_is_a_ratio_for_the_cluster_and_each_node_it_names(make):
    metrics, now = make(True)

    view = metrics.sample(now)

    assert view.known and ratio(view.cluster_cpu), view
    assert view.node_cpu and all(ratio(v) for v in view.node_cpu.values()), view


def test_what_cannot_be_trusted_is_unknown_with_a_reason_never_zero(make):
    metrics, now = make(False)

    view = metrics.sample(now)

    assert not view.known and view.cluster_cpu is None and view.unknown_reason, view
    assert not view.node_cpu, "no node reads as idle when nothing is known"
