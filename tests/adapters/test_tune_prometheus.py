"""`node-fleet tune --prometheus`: a real Prometheus holding three hours of kube-state-metrics history
(backfilled with promtool), read back as a workload, replayed through the CLI; and the clear errors when
Prometheus cannot be reached, holds no such history, or answers what kube-state-metrics would not."""

from __future__ import annotations

import contextlib
import io
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from node_fleet import exits
from node_fleet.cli import main
from node_fleet.prometheus_history import HistoryError, Window, _read, read_workload
from node_fleet.stack.prometheus import INSTALL_HINT, OpenMetrics, PrometheusServer, binaries, closed_port_url

SCRAPE_S = 30
HISTORY_S = 3 * 3600
STEP_S = 60
GIB = 2**30


@dataclass(frozen=True)
class PodHistory:
    namespace: str
    pod: str
    uid: str
    live: tuple[float, float]
    """Seconds after the history's start when it was Pending or Running: [from, to)."""
    pending_until: float
    """It was Pending before this (then Running)."""
    containers: tuple[tuple[float, float], ...]
    """(CPU cores, memory GiB) requested by each container."""
    owner_kind: str = "ReplicaSet"
    deleted: float | None = None
    """Its series end here (the pod object is gone); None: kept to the end, as a completed pod is."""
    scrapers: tuple[str, ...] = ("ksm-0",)
    """The kube-state-metrics instances whose scrapes hold its series (two: each series twice)."""


PODS = (
    PodHistory("shop", "web-0", "u-web", (0, HISTORY_S), 0, ((0.25, 0.5), (0.25, 0.5)), scrapers=("ksm-0", "ksm-1")),
    # Waits 10 minutes for capacity, runs 40, then Succeeded: its series stay, phase Succeeded.
    PodHistory("jobs", "batch-1", "u-batch", (3600, 6600), 4200, ((1.5, 3.0),), "Job"),
    # A StatefulSet pod deleted after 30 minutes, its replacement (same name, new uid) back at 90.
    PodHistory("db", "pg-0", "u-pg-a", (0, 1800), 0, ((0.5, 2.0),), "StatefulSet", deleted=1800),
    PodHistory("db", "pg-0", "u-pg-b", (5400, HISTORY_S), 5400, ((0.5, 2.0),), "StatefulSet"),
    # Goes with its node: not demand the replay should schedule.
    PodHistory("kube-system", "node-exporter-x", "u-ds", (0, HISTORY_S), 0, ((0.1, 0.1),), "DaemonSet"),
)
EXPECTED = {  # name -> (start, end or None, cpu_m, mem_mib)
    "shop/web-0": (0, None, 500, 1024),
    "jobs/batch-1": (3600, 6600, 1500, 3072),
    "db/pg-0": (0, 1800, 500, 2048),
    "db/pg-0#2": (5400, None, 500, 2048),
}


def history(start: float) -> str:
    om = OpenMetrics()
    for t in range(int(start), int(start) + HISTORY_S + 1, SCRAPE_S):
        at = t - start
        for p in PODS:
            if at < p.live[0] or (p.deleted is not None and at >= p.deleted):
                continue
            for scraper in p.scrapers:
                _pod_series(om, t, p, at, {"namespace": p.namespace, "pod": p.pod, "uid": p.uid, "instance": scraper})
    return om.text()


def _pod_series(om: OpenMetrics, t: int, p: PodHistory, at: float, labels: dict[str, str]) -> None:
    """What kube-state-metrics exports for pod `p` at `at` seconds into the history (unix time `t`)."""
    phase = "Succeeded" if at >= p.live[1] else "Pending" if at < p.pending_until else "Running"
    om.add_pod(labels, t, phase, p.owner_kind, [(cores, gib * GIB) for cores, gib in p.containers])


@dataclass(frozen=True)
class Seeded:
    server: PrometheusServer
    start: float
    end: float


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    if binaries() is None:
        pytest.skip(INSTALL_HINT)
    end = float(int(time.time()) // STEP_S * STEP_S)
    start = end - HISTORY_S
    # A 1 minute lookback stands in for the staleness markers a live scrape writes when a series ends
    # (a backfill cannot write them): a deleted pod is gone from the next step on, as in a real cluster.
    server = PrometheusServer(tmp_path_factory.mktemp("prometheus"), history(start), lookback_delta="1m")
    with server:
        yield Seeded(server, start, end)


def _window(seeded: Seeded) -> Window:
    return Window(seeded.end, days=(HISTORY_S + 1800) / 86_400, step_s=STEP_S)


def test_the_pods_are_read_back_with_their_requests_and_lives(seeded):
    workload = read_workload(seeded.server.url, _window(seeded), {})
    pods = {p.name: p for p in workload.pods}
    # The DaemonSet's pod left out, the StatefulSet's two lives apart, web-0's two scrapes counted once.
    assert set(pods) == set(EXPECTED)
    for name, (start, end, cpu_m, mem_mib) in EXPECTED.items():
        pod = pods[name]
        assert (pod.cpu_m, pod.mem_mib) == (cpu_m, mem_mib), name
        assert abs(pod.start_s - start) <= STEP_S, (name, pod.start_s)
        if end is None:
            assert pod.end_s is None, name
        else:
            assert pod.end_s is not None and abs(pod.end_s - end) <= STEP_S, (name, pod.end_s)
    assert abs(workload.horizon_s - HISTORY_S) <= STEP_S
    assert workload.name == "prometheus" and seeded.server.url in workload.description
    # The Job's pod starts over if the replay evicts it; the others are replicas.
    assert {name: pod.owner_kind for name, pod in pods.items()} == {
        "shop/web-0": "ReplicaSet",
        "jobs/batch-1": "Job",
        "db/pg-0": "ReplicaSet",
        "db/pg-0#2": "ReplicaSet",
    }


def test_tune_replays_the_history_from_the_command_line(seeded):
    out, err = io.StringIO(), io.StringIO()
    argv = ["tune", "--prometheus", seeded.server.url, "--days", "0.15", "--grid", "WARM_POOL_SIZE=0,10"]
    argv += ["--grid", "SCALE_DOWN_UNNEEDED_TIME_S=600", "--grid", "TICK_S=15", "--jobs", "1", "--json"]
    argv += [
        "--grid",
        "FORECAST_MAX_PREWARM=0",
        "--grid",
        "WARM_POOL_UNNEEDED_TIME_S=120",
        "--grid",
        "RAMP_WINDOW_S=1800",
    ]
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([*argv, "--grid", "SCALE_DOWN_UTILIZATION_THRESHOLD=0.65"])
    assert code == exits.OK, err.getvalue()
    answer = json.loads(out.getvalue())
    assert answer["workload"] == "prometheus" and answer["description"].startswith(f"{len(EXPECTED)} pods")
    assert answer["replays"] == 2 and answer["recommended"] in answer["front"]


def test_a_window_without_history_names_the_metrics_expected(seeded):
    before = Window(seeded.start - 7200, days=1 / 24, step_s=STEP_S)
    with pytest.raises(HistoryError, match=r"no Pending or Running pod.*kube_pod_container_resource_requests"):
        read_workload(seeded.server.url, before, {})


def test_an_unreachable_prometheus_is_one_line_and_exit_code_1():
    url = closed_port_url()
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(["tune", "--prometheus", url, "--days", "1"])
    assert code == exits.FAILED
    message = err.getvalue().strip()
    assert len(message.splitlines()) == 1
    assert f"Prometheus at {url}: cannot connect" in message and "kube_pod_status_phase" in message


# -- answers the reader refuses, from a stand-in for the adapter's Transport ----------------------

FIXED_END = 1_800_000_000.0


class _Answers:
    """Stands for the adapter's Transport: the same `data` for every query."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data

    def range(self, expr: str, start: float, end: float, step_s: float, deadline: float) -> dict[str, Any]:
        return self.data


def _matrix(value: str) -> dict[str, Any]:
    return {
        "resultType": "matrix",
        "result": [{"metric": {"namespace": "a", "pod": "p", "uid": "u"}, "values": [[FIXED_END, value]]}],
    }


@pytest.mark.parametrize("value", ["NaN", "-1", "+Inf"])
def test_a_request_that_is_not_a_finite_number_at_least_0_is_refused(value):
    with pytest.raises(HistoryError, match=r"pod a/p requests .* expected a finite number >= 0"):
        _read(_Answers(_matrix(value)), "http://prom", "expr", Window(FIXED_END, days=1), 10.0)


def test_an_answer_that_is_not_a_matrix_is_refused():
    with pytest.raises(HistoryError, match="expected a matrix answer, got 'vector'"):
        _read(_Answers({"resultType": "vector", "result": []}), "http://prom", "expr", Window(FIXED_END, days=1), 10.0)


def test_samples_of_overlapping_chunks_count_once():
    series = _read(_Answers(_matrix("0.5")), "http://prom", "expr", Window(FIXED_END, days=3), 10.0)
    assert series == {("a", "p", "u"): {FIXED_END: 0.5}}
