"""How `tune --prometheus` turns answers into pods, without a server: the window's chunks, each pod's
lives and requests, and no history at all. tests/adapters/test_tune_prometheus.py asks a real
Prometheus, and checks the answers the reader refuses."""

from __future__ import annotations

import pytest

from node_fleet.prometheus_history import DAY_S, MIB, HistoryError, Window, to_workload

END = 1_800_000_000.0
STEP = 60


def test_the_window_is_asked_a_day_at_a_time_oldest_first_and_covers_exactly_the_days():
    chunks = Window(END, days=2.5, step_s=STEP).chunks()
    assert [span for _, span in chunks] == [DAY_S // 2, DAY_S, DAY_S]
    assert [at for at, _ in chunks] == [END - 2 * DAY_S, END - DAY_S, END]
    assert sum(span for _, span in chunks) == 2.5 * DAY_S


def _series(start: int, stop: int, value: float) -> dict[float, float]:
    return {END + t: value for t in range(start, stop, STEP)}


def test_each_life_of_a_pod_is_a_pod_with_the_most_it_requested():
    web = ("shop", "web-0", "u1")
    gone = ("db", "pg-0", "u2")
    cpu = {
        web: {**_series(0, 600, 0.25), **_series(600, 1200, 0.5)},  # resized: the larger request counts
        gone: {**_series(0, 300, 1.0), **_series(900, 1200, 1.0)},  # absent 300..900: two lives
    }
    mem = {web: _series(0, 1200, 512 * MIB), gone: {**_series(0, 300, MIB + 1), **_series(900, 1200, MIB + 1)}}
    workload = to_workload({"cpu": cpu, "memory": mem}, Window(END + 1200, days=1, step_s=STEP), "test", {gone})
    pods = {p.name: p for p in workload.pods}
    assert {name: p.owner_kind for name, p in pods.items()} == {
        "shop/web-0": "ReplicaSet",
        "db/pg-0": "Job",
        "db/pg-0#2": "Job",
    }
    assert set(pods) == {"shop/web-0", "db/pg-0", "db/pg-0#2"}
    assert (pods["shop/web-0"].cpu_m, pods["shop/web-0"].mem_mib) == (500, 512)
    assert (pods["shop/web-0"].start_s, pods["shop/web-0"].end_s) == (0, None)  # still there at the end
    assert (pods["db/pg-0"].start_s, pods["db/pg-0"].end_s) == (0, 300)  # ends a step after last seen
    assert pods["db/pg-0"].mem_mib == 2  # bytes round up to whole MiB
    assert (pods["db/pg-0#2"].start_s, pods["db/pg-0#2"].end_s) == (900, None)
    assert workload.horizon_s == 1200


def test_no_pod_with_requests_names_the_metrics_expected():
    with pytest.raises(HistoryError, match="kube_pod_container_resource_requests"):
        to_workload({"cpu": {}, "memory": {}}, Window(END, days=1), "test")
