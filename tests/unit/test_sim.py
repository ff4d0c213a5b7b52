"""The simulator: the same core over a virtual cluster, deterministic, honest about its policies."""

from __future__ import annotations

import json

import pytest

from autoscaler.config import Settings
from autoscaler.forecast import DAY_S, history_read
from autoscaler.model import InstanceState
from autoscaler.pricing import DEFAULT_PRICES
from autoscaler.scheduling import (
    HOSTNAME_LABEL,
    ZONE_LABEL,
    LabelSelector,
    Placement,
    PodAffinityTerm,
    SpreadConstraint,
    Taint,
    Toleration,
)
from node_fleet.cli import main
from node_fleet.sim.cluster import ClusterModel, VirtualCluster
from node_fleet.sim.engine import peak_lower_bound, replay
from node_fleet.sim.policies import POLICY_NAMES
from node_fleet.sim.ports import Clock, SimCluster, SimFleet, SimMetrics
from node_fleet.sim.record import RunRecord
from node_fleet.sim.report import score, waits_by_cause
from node_fleet.sim.scenarios import scenario
from node_fleet.sim.workload import PodSpec, Workload

SPIKE = Workload(
    "spike",
    tuple(PodSpec(f"base{i}", 0, None, 500, 512) for i in range(4))
    + tuple(PodSpec(f"sale{i}", 600, 1800, 1000, 1024) for i in range(10)),
    horizon_s=5400,
)


def test_replay_is_deterministic():
    a = replay(SPIKE, "node-fleet", Settings())
    b = replay(SPIKE, "node-fleet", Settings())
    assert score(a) == score(b)
    assert [(i.launched_at, i.ready_at) for i in a.instances] == [(i.launched_at, i.ready_at) for i in b.instances]


def test_node_fleet_scales_up_for_the_spike_and_back_down_after_it():
    record = replay(SPIKE, "node-fleet", Settings())
    ready = {s.t: s.ready_nodes for s in record.samples}
    assert ready[0] == 2
    assert max(ready.values()) >= 5
    assert ready[max(ready)] == 2, "back to min_nodes once the sale is over"
    assert all(s.instances <= Settings().max_nodes for s in record.samples)
    assert all(s.ready_nodes >= 2 for s in record.samples)
    assert all(p.bound_at is not None for p in record.pods)


TWO_SALES = Workload(
    "two-sales",
    tuple(PodSpec(f"base{i}", 0, None, 500, 512) for i in range(4))
    + tuple(PodSpec(f"sale{i}", 600, 1800, 1000, 1024) for i in range(10))
    + tuple(PodSpec(f"again{i}", 4800, 6000, 1000, 1024) for i in range(10)),
    horizon_s=7200,
)


def test_the_warm_pool_stops_after_the_first_sale_and_starts_for_the_second():
    pool = Settings(warm_pool_size=10)
    warm, cold = replay(TWO_SALES, "node-fleet", pool), replay(TWO_SALES, "node-fleet", Settings(warm_pool_size=0))
    kinds = [a.kind for a in warm.actions]
    assert "stop" in kinds and "start" in kinds
    assert [a.kind for a in cold.actions if a.kind in ("stop", "start")] == []
    second = [p for p in warm.pods if p.name.startswith("again")]
    second_cold = [p for p in cold.pods if p.name.startswith("again")]
    wait = sum(p.bound_at - p.created_at for p in second)
    wait_cold = sum(p.bound_at - p.created_at for p in second_cold)
    assert wait < wait_cold, "a stopped worker is Ready sooner than a new one"
    assert len(warm.instances) < len(cold.instances), "the second sale started the first one's workers"
    assert any(i.stops for i in warm.instances)


def causes(record: RunRecord, prefix: str) -> set[str]:
    return {p.waited_for for p in record.pods if p.name.startswith(prefix)}


def test_each_pods_wait_is_put_down_to_the_launch_start_or_room_that_ended_it():
    warm = replay(TWO_SALES, "node-fleet", Settings(warm_pool_size=10))
    assert causes(warm, "base") == {""}, "bound at once"
    assert "launch" in causes(warm, "sale") and "start" not in causes(warm, "sale")
    assert "start" in causes(warm, "again") and "launch" not in causes(warm, "again")
    waits = waits_by_cause(warm.pods, warm.horizon_s)
    starts = [p.bound_at - p.created_at for p in warm.pods if p.waited_for == "start"]
    assert waits["start"] == (len(starts), pytest.approx(sum(starts))) and waits["unserved"] == (0, 0.0)

    # Stopped longer than allowed, the first sale's workers are gone when the second comes.
    expired = replay(TWO_SALES, "node-fleet", Settings(warm_pool_size=10, warm_pool_max_stopped_s=600))
    assert "start" not in causes(expired, "again") and "launch" in causes(expired, "again")
    assert all(not i.stops or i.terminated_at is not None for i in expired.instances)


@pytest.mark.parametrize("policy", POLICY_NAMES)
def test_every_policy_runs_and_serves_the_workload(policy):
    s = score(replay(SPIKE, policy, Settings()))
    assert s.node_hours >= s.lower_bound_node_hours * 0.95
    # Target tracking watches CPU usage only, so pods it never makes room for are its known failure.
    assert s.unbound_pods == 0 or policy == "target-tracking"


def test_static_peak_boots_the_peak_and_never_acts():
    record = replay(SPIKE, "static-peak", Settings())
    assert record.samples[0].ready_nodes == peak_lower_bound(SPIKE, Settings()) == 6
    assert record.actions == []


@pytest.mark.parametrize(
    ("policy", "tick_s", "invocations"),
    [
        ("node-fleet", 60.0, 90),  # 5400 s of minute ticks, each one run of the Lambda
        ("node-fleet", 30.0, 180),
        ("node-fleet", 15.0, 360),  # between the world's 10 s steps too
        ("ca-10s", 10.0, 0),  # a pod on the server node: no charge of its own
        ("target-tracking", 60.0, 0),
    ],
)
def test_the_lambda_policies_pay_one_invocation_a_tick(policy, tick_s, invocations):
    record = replay(SPIKE, policy, Settings(tick_s=60), tick_s=tick_s)
    assert record.lambda_invocations == invocations
    assert score(record).lambda_dollars == pytest.approx(DEFAULT_PRICES.lambda_dollars(invocations))


def test_workers_are_the_templates_default_type():
    record = replay(SPIKE, "node-fleet", Settings())
    assert record.instance_type == "m7g.large"
    assert all(i.lifecycle == "on-demand" for i in record.instances)


def test_a_tick_between_two_steps_runs_at_its_own_time_on_the_same_world_steps():
    """The world steps every 10 s whatever the tick: a 15 s ticker whose ticks advanced the world
    would bind its pods on finer steps than a 10 s one, and wait less for that alone."""
    record = replay(SPIKE, "node-fleet", Settings(tick_s=15), tick_s=60)
    assert record.step_s == 10 and record.tick_s == 15
    assert [s.t for s in record.samples[:4]] == [0, 10, 20, 30]
    acted = {a.t % 30 for a in record.actions}
    assert acted <= {0, 15} and 15 in acted, sorted(acted)


def test_ca_policies_keep_their_own_tick():
    assert replay(SPIKE, "ca-10s", Settings(), tick_s=60).tick_s == 10
    assert replay(SPIKE, "node-fleet", Settings(tick_s=60), tick_s=30).tick_s == 30


def test_launch_with_the_same_token_starts_nothing_new():
    vc = VirtualCluster(SPIKE, ClusterModel(), RunRecord("p", "w", 60, 10, 60, 2000, 7680, 2))
    fleet = SimFleet(vc, Clock())
    first = fleet.launch("sim-a", 2, "tok")
    again = fleet.launch("sim-a", 2, "tok")
    assert first == again and len(fleet.list_workers()) == 2
    assert {i.state for i in fleet.list_workers()} == {InstanceState.PENDING}


def test_some_launches_never_join():
    model = ClusterModel(never_join_share=0.5, seed=3)
    vc = VirtualCluster(SPIKE, model, RunRecord("p", "w", 60, 10, 60, 2000, 7680, 2))
    SimFleet(vc, Clock()).launch("sim-a", 40, "tok")
    never = sum(1 for i in vc.record.instances if i.ready_at is None)
    assert 10 < never < 30


def test_metrics_lag_behind_the_cluster():
    vc = VirtualCluster(SPIKE, ClusterModel(metrics_lag_s=60), RunRecord("p", "w", 600, 10, 60, 2000, 7680, 2))
    vc.boot(2)
    for t in range(0, 130, 10):
        vc.step(float(t))
    assert vc.metrics_at(30.0) == (None, {})
    cluster, per_node = vc.metrics_at(120.0)
    assert cluster is not None and len(per_node) == 2


def _booted(pods, nodes: int = 2, **model) -> VirtualCluster:
    """A virtual cluster of `nodes` Ready workers after one scheduling step over `pods`."""
    vc = VirtualCluster(
        Workload("w", tuple(pods), 600), ClusterModel(**model), RunRecord("p", "w", 600, 10, 60, 2000, 7680, 2)
    )
    vc.boot(nodes)
    vc.step(0.0)
    return vc


def _bound(vc: VirtualCluster) -> dict[str, str | None]:
    return {name: p.node for name, p in vc.pods.items()}


WEB = (("app", "web"),)
ANTI_HOST = PodAffinityTerm(LabelSelector(WEB), HOSTNAME_LABEL)


@pytest.mark.parametrize(
    "desc, pods, model, want",
    [
        (
            "resources only: first fit, in arrival order",
            [PodSpec("a", 0, None, 1500, 512), PodSpec("b", 0, None, 1500, 512), PodSpec("c", 0, None, 400, 512)],
            {},
            {"a": "node-i-00000001", "b": "node-i-00000002", "c": "node-i-00000001"},
        ),
        (
            "a selector no worker matches stays pending; the rest bind",
            [
                PodSpec("gpu", 0, None, 100, 128, placement=Placement(node_selector=(("gpu", "true"),))),
                PodSpec("web", 0, None, 100, 128),
            ],
            {},
            {"gpu": None, "web": "node-i-00000001"},
        ),
        (
            "a selector on the zone label picks that zone's worker",
            [PodSpec("b-only", 0, None, 100, 128, placement=Placement(node_selector=((ZONE_LABEL, "sim-b"),)))],
            {},
            {"b-only": "node-i-00000002"},
        ),
        (
            "hostname anti-affinity: one replica per worker, the third waits",
            [
                PodSpec(f"web{i}", 0, None, 100, 128, labels=dict(WEB), placement=Placement(anti_affinity=(ANTI_HOST,)))
                for i in range(3)
            ],
            {},
            {"web0": "node-i-00000001", "web1": "node-i-00000002", "web2": None},
        ),
        (
            "zone spread with max skew 1 alternates the zones",
            [
                PodSpec(
                    f"s{i}",
                    0,
                    None,
                    100,
                    128,
                    labels=dict(WEB),
                    placement=Placement(spread=(SpreadConstraint(1, ZONE_LABEL, LabelSelector(WEB)),)),
                )
                for i in range(3)
            ],
            {},
            {"s0": "node-i-00000001", "s1": "node-i-00000002", "s2": "node-i-00000001"},
        ),
        (
            "workers tainted by the template take only pods that tolerate it",
            [
                PodSpec("plain", 0, None, 100, 128),
                PodSpec(
                    "tolerant", 0, None, 100, 128, placement=Placement(tolerations=(Toleration("pool", "Exists"),))
                ),
            ],
            {"node_taints": (Taint("pool", "batch"),)},
            {"plain": None, "tolerant": "node-i-00000001"},
        ),
        (
            "pods per node: a full node takes no more, however small the pod",
            [PodSpec(f"p{i}", 0, None, 10, 16) for i in range(5)],
            {"node_max_pods": 2},
            {
                "p0": "node-i-00000001",
                "p1": "node-i-00000001",
                "p2": "node-i-00000002",
                "p3": "node-i-00000002",
                "p4": None,
            },
        ),
    ],
)
def test_virtual_scheduler_places_by_the_placement_predicate(desc, pods, model, want):
    vc = _booted(pods, **model)
    assert _bound(vc) == want, desc
    waiting = {name for name, node in want.items() if node is None}
    assert {name for name, p in vc.pods.items() if p.unschedulable_since is not None} == waiting, desc


def test_the_planner_sees_the_labels_taints_and_placement_the_scheduler_used():
    placement = Placement(node_selector=(("pool", "web"),))
    vc = _booted(
        [PodSpec("web", 0, None, 100, 128, labels=dict(WEB), placement=placement)],
        node_labels={"pool": "web"},
        node_taints=(Taint("dedicated", "web", "PreferNoSchedule"),),
        node_max_pods=58,
    )
    cluster = SimCluster(vc, Clock())
    node = {n.name: n for n in cluster.list_nodes()}["node-i-00000001"]
    assert node.labels == {"pool": "web", HOSTNAME_LABEL: "node-i-00000001", ZONE_LABEL: "sim-a"}
    assert node.taints == (Taint("dedicated", "web", "PreferNoSchedule"),)
    assert node.alloc_pods == 58
    (pod,) = cluster.list_pods()
    assert (pod.node, pod.labels, pod.placement) == ("node-i-00000001", dict(WEB), placement)


def test_an_evicted_pod_holds_its_room_for_the_grace_period():
    vc = _booted([PodSpec("big", 0, None, 1500, 512)], nodes=1, grace_period_s=30)
    vc.evict("big", 0.0)
    vc.step(10.0)
    assert vc.pods["big"].node is None, "its old self still takes 1500m of the only worker"
    vc.step(30.0)
    assert vc.pods["big"].node == "node-i-00000001"


def test_an_evicted_pod_may_land_again_where_its_old_self_still_terminates():
    vc = _booted([PodSpec("web", 0, 60, 500, 512)], nodes=1, grace_period_s=30)
    vc.evict("web", 0.0)
    for t in (10.0, 40.0, 70.0):  # rebound beside its old self, which goes at 30 s; it ends at 60 s
        vc.step(t)
    assert vc.record.pods[0].bound_at == 0.0 and "web" not in vc.pods
    assert vc.room.slots["node-i-00000001"].cpu_m == 2000


def test_an_evicted_jobs_pod_starts_its_work_over_and_a_replicas_keeps_its_end():
    # Both ran 400 s of their 600 s when evicted: the Job's new pod needs all 600 s again (it ends
    # at 1000 s), the replica's replacement ends at 600 s as the workload says.
    pods = [PodSpec("job", 0, 600, 500, 512, owner_kind="Job"), PodSpec("web", 0, 600, 500, 512)]
    vc = _booted(pods, nodes=1, grace_period_s=30)
    for name in ("job", "web"):
        vc.evict(name, 400.0)
    for t in range(410, 1010, 10):
        vc.step(float(t))
        assert ("web" in vc.pods) == (t < 600) and ("job" in vc.pods) == (t < 1000), t
    # The rerun is the eviction's waste, not the workload's demand: the lower bound ends at 600 s.
    assert [s.demand_cpu_m for s in vc.record.samples if s.t in (590.0, 600.0, 990.0)] == [1000, 0, 0]


def test_a_jobs_pod_lost_with_its_node_starts_over_too():
    vc = _booted([PodSpec("job", 0, 600, 500, 512, owner_kind="Job")], nodes=2)
    node = vc.pods["job"].node
    vc.terminate(node.removeprefix("node-"), 300.0)
    for t in range(310, 900, 10):
        vc.step(float(t))
    assert "job" in vc.pods and vc.pods["job"].node not in (None, node)
    vc.step(900.0)  # 300 s run, lost, and 600 s again
    assert "job" not in vc.pods


def test_a_batch_scenarios_jobs_are_jobs_and_its_service_is_replicas():
    kinds = {p.name.split("-")[1]: p.owner_kind for p in scenario("batch").pods}
    assert kinds == {"svc": "ReplicaSet", "job": "Job"}


def test_a_dropped_node_takes_its_terminating_pods_out_of_the_spread_counts():
    """Zones a, b, a, b. s1 is evicted from the zone-b node, which goes before its grace period
    ends; s1 comes back on the other zone-b node, so s2 may join zone a (1 pod each)."""
    zone_spread = Placement(spread=(SpreadConstraint(1, ZONE_LABEL, LabelSelector(WEB)),))
    pods = [PodSpec(f"s{i}", start, None, 100, 128, labels=dict(WEB), placement=zone_spread) for i, start in
            enumerate((0, 0, 100))]  # fmt: skip
    vc = _booted(pods, nodes=4, grace_period_s=30)
    assert _bound(vc) == {"s0": "node-i-00000001", "s1": "node-i-00000002"}
    vc.evict("s1", 10.0)
    vc.terminate("i-00000002", 10.0)
    for t in (10.0, 50.0, 100.0):
        vc.step(t)
    assert _bound(vc) == {"s0": "node-i-00000001", "s1": "node-i-00000004", "s2": "node-i-00000001"}


def test_replay_honours_the_template_labels_and_taints_from_settings():
    tolerant = Placement(node_selector=(("pool", "batch"),), tolerations=(Toleration("pool", "Equal", "batch"),))
    workload = Workload("w", tuple(PodSpec(f"j{i}", 0, None, 500, 512, placement=tolerant) for i in range(6)), 1800)
    settings = Settings(worker_labels="pool=batch", worker_taints="pool=batch:NoSchedule")
    record = replay(workload, "node-fleet", settings)
    assert all(p.bound_at is not None for p in record.pods)


def test_node_fleet_launches_one_worker_per_anti_affine_replica_and_none_for_a_pod_no_worker_fits():
    replicas = tuple(
        PodSpec(f"web{i}", 600, None, 100, 128, labels=dict(WEB), placement=Placement(anti_affinity=(ANTI_HOST,)))
        for i in range(4)
    )
    gpu = PodSpec("train", 600, None, 100, 128, placement=Placement(node_selector=(("gpu", "true"),)))
    record = replay(Workload("w", (*replicas, gpu), 3600), "node-fleet", Settings())
    bound = {p.name: p.bound_at for p in record.pods}
    assert all(bound[f"web{i}"] is not None for i in range(4)), "two more workers, one replica each"
    assert bound["train"] is None
    assert max(s.instances for s in record.samples) == 4, "nothing launched for the GPU pod"


def test_simulate_json_names_every_policy(capsys):
    assert main(["simulate", "--scenario", "flash-sale", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out["policies"]) == set(POLICY_NAMES)
    assert "m7g.large" in out["prices"]
    for fields in out["policies"].values():
        for key in (
            "dollars",
            "lower_bound_dollars",
            "cost_ratio",
            "spot_savings",
            "node_hours",
            "lower_bound_node_hours",
            "pending_pod_seconds",
            "p95_pending_s",
            "scale_actions",
            "flaps",
        ):
            assert key in fields


def test_simulate_one_policy_writes_a_plot(tmp_path, capsys):
    png = tmp_path / "run.png"
    assert main(["simulate", "--scenario", "batch", "--policy", "node-fleet", "--plot", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "node-fleet" in capsys.readouterr().out


def test_simulate_reports_a_bad_trace_row_and_fails(tmp_path, capsys):
    bad = tmp_path / "pods.csv"
    bad.write_text("name,start_s,end_s,cpu_m,mem_mib\nweb-1,0,,abc,512\n")
    assert main(["simulate", "--trace", str(bad), "--format", "pods"]) == 1
    err = capsys.readouterr().err
    assert "line 2" in err and "cpu_m" in err


def test_simulate_rejects_a_bad_setting_from_the_environment(monkeypatch, capsys):
    monkeypatch.setenv("MAX_NODES", "0")
    assert main(["simulate", "--scenario", "diurnal"]) == 1
    assert "MAX_NODES=0" in capsys.readouterr().err


def test_scenarios_replay_within_bounds():
    record = replay(scenario("flash-sale"), "node-fleet", Settings(max_nodes=12))
    assert max(s.instances for s in record.samples) <= 12


def test_gate_command_prints_one_verdict(tmp_path, capsys):
    objects = tmp_path / "objects.json"
    objects.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "List",
                "items": [
                    {
                        "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
                        "kind": "Kustomization",
                        "metadata": {"name": "apps", "namespace": "flux-system", "generation": 2},
                        "status": {"observedGeneration": 1, "conditions": []},
                    }
                ],
            }
        )
    )
    assert main(["gate", "--objects", str(objects)]) == 3  # holding
    out = json.loads(capsys.readouterr().out)
    assert out["blocked"] is True and out["reasons"][0]["name"] == "apps"


@pytest.mark.parametrize("content", ["{not json", '{"kind": "Pod"}', "42"])
def test_gate_command_fails_on_unreadable_input(tmp_path, capsys, content):
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    assert main(["gate", "--objects", str(bad)]) == 1
    assert "node-fleet:" in capsys.readouterr().err


def test_tick_s_runs_node_fleet_every_tick_each_its_own_invocation():
    every_minute = replay(SPIKE, "node-fleet", Settings(tick_s=60))
    quarter = replay(SPIKE, "node-fleet", Settings(tick_s=15))
    assert quarter.tick_s == 15 and quarter.lambda_invocations == 4 * every_minute.lambda_invocations
    assert score(quarter).pending_pod_seconds < score(every_minute).pending_pod_seconds
    assert replay(SPIKE, "ca-60s", Settings(tick_s=15)).tick_s == 60, "a baseline keeps its own tick"


def test_the_demand_history_is_the_replays_past_as_prometheus_would_scrape_it():
    vc = VirtualCluster(SPIKE, ClusterModel(metrics_lag_s=60), RunRecord("p", "w", 3600, 10, 60, 2000, 7680, 2))
    vc.boot(2)
    for t in range(0, 1810, 10):
        vc.step(float(t))
    history = SimMetrics(vc).demand(1800.0, history_read(600))
    assert history.samples and all(t <= 1800.0 for t, _, _ in history.samples)
    for t, cpu, _ in history.samples:  # each point as scraped metrics_lag_s before it
        seen = max((s for s in vc.record.samples if s.t <= t - 60), key=lambda s: s.t)
        assert cpu == seen.demand_cpu_m
    assert history.at(1800.0 - DAY_S) is None  # a replay has no day before its start


def test_the_forecast_acts_only_once_the_replay_has_a_day_behind_it_and_then_pods_wait_less():
    w = scenario("diurnal-3d")
    # The ramp off: a 30-minute one already has room ready for diurnal's mornings.
    ahead = replay(w, "node-fleet", Settings(max_nodes=13, ramp_window_s=0, forecast_max_prewarm=2))
    plain = replay(w, "node-fleet", Settings(max_nodes=13, ramp_window_s=0))

    def launches(record, start, end):
        return [(a.t, a.count) for a in record.actions if a.kind == "launch" and start <= a.t < end]

    assert launches(ahead, 0, DAY_S) == launches(plain, 0, DAY_S)
    assert launches(ahead, DAY_S, 3 * DAY_S) != launches(plain, DAY_S, 3 * DAY_S)
    assert score(ahead).pending_pod_seconds < score(plain).pending_pod_seconds


RAMP = Workload(
    "ramp",
    tuple(PodSpec(f"base{i}", 0, None, 500, 512) for i in range(4))
    + tuple(PodSpec(f"step{k}-{i}", 600 + 90 * k, 3600, 1000, 1024) for k in range(10) for i in range(2)),
    horizon_s=5400,
)
"""Ten steps of a worker's worth of pods, 90 s apart: each would wait for a launch of its own."""


def test_the_ramp_has_room_ready_for_the_next_step_at_the_cost_of_one_worker_more():
    runs = {w: score(replay(RAMP, "node-fleet", Settings(max_nodes=20, ramp_window_s=w))) for w in (300, 0)}
    ramp, plain = runs[300], runs[0]
    assert ramp.pending_pod_seconds < 0.7 * plain.pending_pod_seconds
    assert ramp.peak_nodes == plain.peak_nodes + 1
    assert ramp.node_hours < 1.05 * plain.node_hours


def test_a_launch_that_never_joins_is_replaced_once_late_not_after_the_provision_time():
    # Seed 1: one of the spike's launches never joins.
    model = ClusterModel(never_join_share=0.3, seed=1)
    runs = {
        late: replay(SPIKE, "node-fleet", Settings(max_nodes=10, tick_s=60, launch_late_after_s=late), 60.0, model)
        for late in (180, 900)
    }
    lives = {
        late: [i.terminated_at - i.launched_at for i in r.instances if i.ready_at is None] for late, r in runs.items()
    }
    assert lives == {180: [240.0], 900: [960.0]}  # the next tick after 180 s; after 900 s
    hedged, waited = (score(runs[late]).pending_pod_seconds for late in (180, 900))
    assert hedged < 0.5 * waited
