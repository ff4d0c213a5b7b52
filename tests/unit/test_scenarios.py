"""Built-in scenarios: deterministic per seed, and sized for the default 2..10-worker cluster."""

from __future__ import annotations

from itertools import pairwise

import pytest

from node_fleet.sim.scenarios import POD_SIZES, SCENARIOS, scenario
from node_fleet.sim.traces import load_pods_csv, write_pods_csv
from node_fleet.sim.workload import Workload

NODE_CPU_M, NODE_MEM_MIB, MAX_NODES = 2000, 7680, 10
NAMES = ["diurnal", "diurnal-3d", "flash-sale", "sale-day", "batch"]
SEEDS = [1, 2, 3, 17, 123]


def demand(w: Workload, t: float) -> tuple[int, int]:
    live = [p for p in w.pods if p.start_s <= t and (p.end_s is None or p.end_s > t)]
    return sum(p.cpu_m for p in live), sum(p.mem_mib for p in live)


def event_times(w: Workload) -> list[float]:
    return sorted({p.start_s for p in w.pods} | {p.end_s for p in w.pods if p.end_s is not None} | {0.0})


def first_fit_decreasing(sizes: list[tuple[int, int]], bins: int) -> bool:
    free = [[NODE_CPU_M, NODE_MEM_MIB] for _ in range(bins)]
    for cpu, mem in sorted(sizes, reverse=True):
        for node in free:
            if node[0] >= cpu and node[1] >= mem:
                node[0] -= cpu
                node[1] -= mem
                break
        else:
            return False
    return True


def test_names_and_unknown_scenario():
    assert list(SCENARIOS) == NAMES
    with pytest.raises(
        ValueError,
        match="unknown scenario 'black-friday': expected one of diurnal, diurnal-3d, flash-sale, sale-day, batch",
    ):
        scenario("black-friday")


@pytest.mark.parametrize("name", NAMES)
def test_deterministic_for_a_seed(name):
    assert scenario(name) == scenario(name, seed=1) == SCENARIOS[name](1)
    assert scenario(name, seed=7) == scenario(name, seed=7)
    assert scenario(name, seed=7) != scenario(name, seed=8)


@pytest.mark.parametrize(
    ("name", "horizon_s"),
    [
        pytest.param("diurnal", 86400.0, id="diurnal: one day"),
        pytest.param("diurnal-3d", 3 * 86400.0, id="diurnal-3d: three days"),
        pytest.param("flash-sale", 9000.0, id="flash-sale: 2.5 h"),
        pytest.param("sale-day", 86400.0, id="sale-day: 24 h"),
        pytest.param("batch", 21600.0, id="batch: 6 h"),
    ],
)
@pytest.mark.parametrize("seed", SEEDS)
def test_pods_are_well_formed(name, horizon_s, seed):
    w = scenario(name, seed)
    assert w.name == name
    assert w.horizon_s == horizon_s
    assert f"seed {seed}" in w.description
    assert len({p.name for p in w.pods}) == len(w.pods)
    sizes = {(cpu, mem) for cpu, mem, _ in POD_SIZES}
    for p in w.pods:
        assert 0 <= p.start_s < horizon_s
        assert p.end_s is None or p.start_s < p.end_s < horizon_s
        assert (p.cpu_m, p.mem_mib) in sizes
        assert 0.4 <= p.usage <= 0.8


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("seed", SEEDS)
def test_peak_demand_fits_ten_workers(name, seed):
    w = scenario(name, seed)
    for t in event_times(w):
        cpu, mem = demand(w, t)
        assert cpu <= MAX_NODES * NODE_CPU_M, (t, cpu)
        assert mem <= MAX_NODES * NODE_MEM_MIB, (t, mem)
    # And the live pods actually pack onto 10 workers at the busiest moment.
    peak = max(event_times(w), key=lambda t: demand(w, t)[0])
    live = [(p.cpu_m, p.mem_mib) for p in w.pods if p.start_s <= peak and (p.end_s is None or p.end_s > peak)]
    assert first_fit_decreasing(live, MAX_NODES)


@pytest.mark.parametrize("seed", SEEDS)
def test_diurnal_busy_day_quiet_night_smooth_ramps(seed):
    w = scenario("diurnal", seed)
    night = [demand(w, h * 3600.0)[0] / NODE_CPU_M for h in (1, 3, 5)]
    day = [demand(w, h * 3600.0)[0] / NODE_CPU_M for h in (10, 13, 16, 19)]
    assert all(2.5 <= x <= 3.6 for x in night), night
    assert all(7.5 <= x <= 9.5 for x in day), day
    samples = [demand(w, t)[0] for t in range(0, 86400, 300)]
    assert min(samples) >= 2 * NODE_CPU_M  # never below the 2-node minimum's worth
    jumps = [abs(b - a) for a, b in pairwise(samples)]
    assert max(jumps) <= 1.5 * NODE_CPU_M  # ramps, not steps
    assert sum(jumps) > 0
    # Churn: pods end and are replaced even in the steady daytime.
    assert sum(1 for p in w.pods if p.end_s is not None and 10 * 3600 < p.end_s < 20 * 3600) > 10


@pytest.mark.parametrize("seed", SEEDS)
def test_flash_sale_spikes_five_fold_for_half_an_hour(seed):
    w = scenario("flash-sale", seed)
    base = demand(w, 30 * 60)[0]
    assert base == demand(w, 59 * 60)[0] == demand(w, 120 * 60)[0]
    assert 1.5 * NODE_CPU_M <= base <= 2 * NODE_CPU_M
    spike = demand(w, 61 * 60)[0]  # all spike pods are in within a minute
    assert spike / base == pytest.approx(5, abs=0.5)
    assert demand(w, 88 * 60)[0] == spike
    assert demand(w, 93 * 60)[0] == base  # back after ~30 min


@pytest.mark.parametrize("seed", SEEDS)
def test_batch_waves_of_short_jobs(seed):
    w = scenario("batch", seed)
    jobs = [p for p in w.pods if "-job-" in p.name]
    service = [p for p in w.pods if "-job-" not in p.name]
    assert sum(p.cpu_m for p in service) == 2000
    assert all(p.start_s == 0 and p.end_s is None for p in service)
    assert all(300 <= p.end_s - p.start_s <= 1200 for p in jobs)
    # Waves: groups of jobs starting within 2 minutes, gaps of at least 25 minutes between groups.
    starts = sorted(p.start_s for p in jobs)
    waves = [[starts[0]]]
    for s in starts[1:]:
        if s - waves[-1][0] <= 120:
            waves[-1].append(s)
        else:
            assert s - waves[-1][0] >= 25 * 60
            waves.append([s])
    assert len(waves) >= 6
    assert all(len(wave) >= 6 for wave in waves)
    quiet = [demand(w, t)[0] for t in range(0, 21600, 60)]
    assert min(quiet) == 2000  # between waves only the service runs


@pytest.mark.parametrize("name", NAMES)
def test_round_trips_through_the_pod_csv(tmp_path, name):
    w = scenario(name)
    path = tmp_path / f"{name}.csv"
    write_pods_csv(w, path)
    assert load_pods_csv(path).pods == w.pods


def test_diurnal_days_repeat_the_shape_with_their_own_noise():
    """What a seasonal forecast learns: each day rises 07-09 and falls 21-23 like the one before."""
    w = scenario("diurnal-3d")
    for day in range(3):
        night, noon = demand(w, day * 86400 + 4 * 3600)[0], demand(w, day * 86400 + 12 * 3600)[0]
        assert 5000 <= night <= 7500 and 15500 <= noon <= 18500, (day, night, noon)
    assert demand(w, 12 * 3600) != demand(w, 86400 + 12 * 3600)
