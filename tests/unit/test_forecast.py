"""The demand forecast (seasonal plus trend) and what the planner does with it: workers launched
ahead of a predicted ramp, capped and counted against the free room, and a shorter scale-down wait
when no rise is predicted."""

from __future__ import annotations

from dataclasses import replace

import pytest

from autoscaler.ahead import forecast_read
from autoscaler.config import Settings
from autoscaler.forecast import DAY_S, STEP_S, TREND_WINDOW_S, DemandHistory, forecast, history_read
from autoscaler.model import Action, ReasonCode, ScalingState
from autoscaler.planner import plan
from autoscaler.service import run_cycle
from builders import NOW, busy, snapshot, worker
from fakes import FakeMetrics, ports

CALM = ScalingState(last_scale_up=NOW - 7200)
AHEAD = Settings(min_nodes=1, forecast_max_prewarm=2, forecast_lead_s=300)


def history(level, lags=(0.0, DAY_S), before=TREND_WINDOW_S + STEP_S, after=900.0, now=NOW, mem_per_m=2.0):
    """Samples on the read grid around `now` and each lag; `level(t)` is the demand in millicores."""
    samples = {}
    for lag in lags:
        t = now - lag - before
        while t <= min(now, now - lag + after):
            samples[t] = (t, level(t), level(t) * mem_per_m)
            t += STEP_S
    return DemandHistory(tuple(samples[t] for t in sorted(samples)))


def ramp_at(start, rise, length=600.0, base=4000.0):
    """Demand `base`, rising by `rise` linearly over `length` seconds from `start` (each day)."""

    def level(t):
        into = (t - start) % DAY_S
        return base + rise * min(1.0, into / length) if into < DAY_S / 2 else base

    return level


# -- the model -------------------------------------------------------------------------------------


def test_the_value_at_a_time_is_the_newest_sample_no_older_than_a_step():
    h = DemandHistory(((100.0, 1.0, 2.0), (160.0, 3.0, 4.0), (400.0, 5.0, 6.0)))
    assert h.at(100.0) == (1.0, 2.0)
    assert h.at(219.0) == (3.0, 4.0)
    assert h.at(221.0) is None  # a gap longer than a step is missing data, not the last value
    assert h.at(99.0) is None


def test_no_forecast_until_the_history_reaches_back_a_day():
    rising = history(lambda t: 4000 + (t - NOW + 3600), lags=(0.0,))
    assert forecast(rising, NOW, 300) is None  # the trend alone reads ramps that are not there
    assert forecast(DemandHistory(), NOW, 300) is None


def test_yesterdays_ramp_at_this_time_predicts_todays():
    # Yesterday demand rose by 3000 m from 5 minutes after this moment; today it is flat so far.
    h = history(ramp_at(NOW + 300 - DAY_S, 3000))
    f = forecast(h, NOW, 900)
    assert f is not None and f.rising
    assert f.rise_cpu_m == pytest.approx(3000 * 600 / 600)
    assert f.rise_mem_mib == pytest.approx(2 * f.rise_cpu_m)
    assert f.basis == "1 past day + trend"
    # Within a lead that ends before the ramp, nothing is predicted.
    assert not forecast(h, NOW, 240).rising


def test_the_median_of_past_days_ignores_one_odd_day():
    def level(t):
        ago = NOW - t
        odd_day = DAY_S / 2 < ago < 1.5 * DAY_S  # yesterday: a one-off spike after this moment
        return 4000 + (5000 if odd_day and t > NOW - DAY_S + 60 else 0)

    h = history(level, lags=(0.0, DAY_S, 2 * DAY_S, 3 * DAY_S))
    f = forecast(h, NOW, 600)
    assert f is not None and f.rise_cpu_m == 0 and f.basis == "3 past days and weeks + trend"


def test_a_ramp_under_way_adds_its_trend_when_past_days_were_flat():
    def level(t):  # flat yesterday; today +10 m a second for the last 5 minutes
        return 4000 + (10 * (t - (NOW - 300)) if t > NOW - 300 else 0)

    f = forecast(history(level), NOW, 300)
    assert f is not None and f.rise_cpu_m > 1000


def test_a_falling_demand_predicts_no_rise():
    f = forecast(history(lambda t: 8000 - (t - NOW + DAY_S) * 0.01), NOW, 600)
    assert f is not None and not f.rising


def test_the_history_read_covers_the_trend_and_the_horizon_at_every_lag():
    read = history_read(300)
    assert read.lags_s[0] == 0 and DAY_S in read.lags_s and 7 * DAY_S in read.lags_s
    assert read.before_s > TREND_WINDOW_S and read.after_s >= 300
    assert forecast_read(Settings()) is None  # the defaults do not read it at all
    assert forecast_read(AHEAD).after_s >= 300
    assert forecast_read(Settings(forecast_unneeded_time_s=120)).after_s >= 600


# -- launching ahead -------------------------------------------------------------------------------

WORKERS = [worker(0), worker(1)]
FULL = busy("n0", 4) + busy("n1", 4)  # each worker's CPU taken


def with_demand(snap, h):
    return replace(snap, demand=h)


def test_workers_are_launched_ahead_of_a_predicted_ramp_with_their_own_reason():
    # Yesterday, 3000 m more from 60 to 180 s after this moment: within the 300 s lead.
    snap = with_demand(snapshot(WORKERS, FULL), history(ramp_at(NOW + 60 - DAY_S, 3000, length=120)))
    d = plan(snap, CALM, AHEAD, NOW)
    assert d.action is Action.SCALE_UP and sum(d.launches.values()) == 2
    assert ReasonCode.FORECAST_RAMP in d.codes
    assert ReasonCode.UNSCHEDULABLE_PODS not in d.codes
    # Nothing ahead of it without the forecast, or with no ramp predicted.
    assert plan(snap, CALM, AHEAD.replace(forecast_max_prewarm=0), NOW).action is Action.NONE
    flat = with_demand(snapshot(WORKERS, FULL), history(lambda t: 4000))
    assert plan(flat, CALM, AHEAD, NOW).action is Action.NONE


def test_pre_scaling_is_capped_at_forecast_max_prewarm_workers_of_room():
    snap = with_demand(snapshot(WORKERS, FULL), history(ramp_at(NOW + 120 - DAY_S, 20000)))
    assert sum(plan(snap, CALM, AHEAD.replace(forecast_max_prewarm=1), NOW).launches.values()) == 1
    assert sum(plan(snap, CALM, AHEAD.replace(forecast_max_prewarm=3), NOW).launches.values()) == 3


def test_free_room_and_workers_already_launching_count_against_the_rise():
    h = history(ramp_at(NOW + 120 - DAY_S, 1500))
    # Half of each worker's CPU is free: 2000 m of room take the 1500 m rise.
    assert plan(with_demand(snapshot(WORKERS, busy("n0", 2) + busy("n1", 2)), h), CALM, AHEAD, NOW).action is (
        Action.NONE
    )
    launching = [*WORKERS, worker(2, ready=None, launched_ago=30)]
    assert plan(with_demand(snapshot(launching, FULL), h), CALM, AHEAD, NOW).action is Action.NONE


def test_pre_scaling_stays_within_max_nodes():
    snap = with_demand(snapshot(WORKERS, FULL), history(ramp_at(NOW + 120 - DAY_S, 20000)))
    d = plan(snap, CALM, AHEAD.replace(max_nodes=3, forecast_max_prewarm=4), NOW)
    assert sum(d.launches.values()) == 1


def test_the_cycle_reads_the_history_only_when_the_forecast_is_on():
    metrics = FakeMetrics(history=history(ramp_at(NOW + 120 - DAY_S, 3000)))
    p = ports(metrics=metrics)
    p.fleet.instances, p.cluster.nodes, p.cluster.pods = [w[0] for w in WORKERS], [w[1] for w in WORKERS], FULL
    run_cycle(p, AHEAD.replace(dry_run=True), NOW, token="t1")
    assert metrics.reads == [forecast_read(AHEAD)]
    run_cycle(p, Settings(min_nodes=1, dry_run=True), NOW + 60, token="t2")
    assert len(metrics.reads) == 1


# -- the scale-down wait ---------------------------------------------------------------------------

SHORT = Settings(min_nodes=1, scale_down_unneeded_time_s=600, forecast_unneeded_time_s=120, warm_pool_size=0)
IDLE = [worker(0), worker(1), worker(2)]
UNNEEDED = ScalingState(last_scale_up=NOW - 7200, unneeded_since={"n2": NOW - 200})


def test_with_no_rise_predicted_an_unneeded_worker_goes_after_the_shorter_wait():
    snap = with_demand(snapshot(IDLE, busy("n0", 2)), history(lambda t: 1000))
    d = plan(snap, UNNEEDED, SHORT, NOW)
    assert d.action is Action.SCALE_DOWN and ReasonCode.FORECAST_CALM in d.codes


def test_a_predicted_rise_beyond_the_free_room_keeps_the_full_wait():
    # 5000 m free, 3000 m without one worker: a 4000 m rise within the 600 s window needs them all.
    snap = with_demand(snapshot(IDLE, busy("n0", 2)), history(ramp_at(NOW + 300 - DAY_S, 8000)))
    d = plan(snap, UNNEEDED, SHORT, NOW)
    assert d.action is Action.NONE and ReasonCode.FORECAST_CALM not in d.codes
    assert "none for 600s yet" in " ".join(r.detail for r in d.reasons)


def test_without_history_the_full_wait_holds():
    d = plan(snapshot(IDLE, busy("n0", 2)), UNNEEDED, SHORT, NOW)
    assert d.action is Action.NONE
