"""The forecast's demand history read from a real Prometheus: kube-state-metrics series of today and
of the same time yesterday, backfilled with promtool, read back by one range query over every lag."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from autoscaler.adapters.prometheus import PrometheusMetrics, PrometheusOptions
from autoscaler.forecast import DAY_S, DemandHistory, forecast, history_read
from node_fleet.stack.prometheus import INSTALL_HINT, OpenMetrics, PrometheusServer, binaries, closed_port_url

STEP_S = 60
WINDOW_S = 1800
MIB = 2**20
# pod -> (owner kind, phase, CPU cores, memory MiB, the times it exists as (start, end) relative to `end`)
PODS = {
    "web-1": ("ReplicaSet", "Running", 0.5, 512, (-DAY_S - WINDOW_S, 0)),
    "web-2": ("ReplicaSet", "Pending", 0.25, 256, (-WINDOW_S, 0)),
    # Yesterday, a job started 5 minutes after this time of day: the ramp today's forecast expects.
    "job-1": ("Job", "Running", 1.0, 1024, (-DAY_S + 300, -DAY_S + WINDOW_S)),
    # Never demand: a DaemonSet's pod (each worker brings its own) and a finished pod.
    "agent-x": ("DaemonSet", "Running", 0.1, 64, (-DAY_S - WINDOW_S, 0)),
    "done-1": ("Job", "Succeeded", 2.0, 2048, (-DAY_S - WINDOW_S, 0)),
}


def openmetrics(end: float) -> str:
    om = OpenMetrics()
    for window_end in (end - DAY_S + WINDOW_S, end):
        for t in range(int(window_end - 2 * WINDOW_S), int(window_end) + 1, STEP_S):
            for pod, (owner, phase, cpu, mem, (start, stop)) in PODS.items():
                if not end + start <= t <= end + stop:
                    continue
                labels = {"namespace": "default", "pod": pod, "uid": f"uid-{pod}", "job": "kube-state-metrics"}
                om.add_pod(labels, t, phase, owner, [(cpu, mem * MIB)])
    return om.text()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, float]]:
    if binaries() is None:
        pytest.skip(INSTALL_HINT)
    end = float(int(time.time()) // STEP_S * STEP_S)
    with PrometheusServer(tmp_path_factory.mktemp("prometheus"), openmetrics(end)) as server:
        yield server.url, end


def test_the_history_holds_the_requests_of_running_and_pending_pods_only(served):
    url, end = served
    h = PrometheusMetrics(PrometheusOptions(url=url)).demand(end, history_read(600))
    assert isinstance(h, DemandHistory)
    assert h.at(end) == pytest.approx((750.0, 768.0))  # web-1 and web-2; not the agent, not done-1
    assert h.at(end - DAY_S) == pytest.approx((500.0, 512.0))
    assert h.at(end - DAY_S + 600) == pytest.approx((1500.0, 1536.0))  # yesterday's job
    assert all(t <= end for t, _, _ in h.samples)  # no point past `now`, though lag 0 reads ahead
    assert h.at(end - 3 * DAY_S) is None  # no history there: missing, never zero


@pytest.mark.parametrize("fraction_ms", [0.4, 0.6])
def test_todays_level_is_read_at_now_whichever_way_its_milliseconds_round(served, fraction_ms):
    url, end = served
    now = end + 7 + fraction_ms / 1000
    h = PrometheusMetrics(PrometheusOptions(url=url)).demand(now, history_read(600))
    newest = max(t for t, _, _ in h.samples)
    assert now - 0.001 < newest <= now  # the point at now, not the one a step before


def test_yesterdays_job_makes_todays_forecast_rise(served):
    url, end = served
    h = PrometheusMetrics(PrometheusOptions(url=url)).demand(end, history_read(600))
    f = forecast(h, end, 600)
    assert f is not None and f.rise_cpu_m == pytest.approx(1000.0) and f.rise_mem_mib == pytest.approx(1024.0)


def test_an_unreachable_prometheus_gives_no_history_and_no_error():
    metrics = PrometheusMetrics(PrometheusOptions(url=closed_port_url(), retries=0))
    assert metrics.demand(time.time(), history_read(300)) is None
