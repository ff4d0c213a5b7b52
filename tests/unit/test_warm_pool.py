"""The warm pool: removed workers stopped rather than terminated, started before launching anew,
and their Nodes given back; planned by the pure core, carried out by the actuator."""

from __future__ import annotations

from dataclasses import replace

from autoscaler.actuator import act
from autoscaler.config import Settings
from autoscaler.model import (
    Action,
    Decision,
    Drain,
    DrainPhase,
    Instance,
    InstanceState,
    Node,
    ReasonCode,
    ScalingState,
)
from autoscaler.planner import plan
from autoscaler.scheduling import ZONE_LABEL, Taint
from autoscaler.service import observe, run_cycle
from builders import CPU, MEM, NOW, busy, pending, pod, snapshot, worker
from fakes import DRAINING, FakeCluster, FakeFleet, ports

POOL = Settings(min_nodes=1, warm_pool_size=2, scale_down_unneeded_time_s=0, scale_down_delay_after_add_s=0)
CALM = ScalingState(last_scale_up=NOW - 7200)


def stopped(
    i: int,
    *,
    az: str = "eu-west-1a",
    started_ago: float = 7200.0,
    stopped_ago: float | None = 3000.0,
    state=InstanceState.STOPPED,
) -> tuple:
    """A stopped worker and its Node as the kubelet left it: NotReady since it stopped, cordoned
    with our taint by the drain that stopped it. `stopped_ago` None: EC2 gave no stop time."""
    stopped_at = None if stopped_ago is None else NOW - stopped_ago
    inst = Instance(f"i-{i:04d}", state, az, "t3.large", NOW - started_ago, stopped_at=stopped_at)
    node = Node(f"n{i}", CPU, MEM, inst.id, az, ready=False, cordoned=True, taints=(DRAINING,), ready_since=NOW - 3000)
    return inst, node


# -- planning ---------------------------------------------------------------------------------------


def zoned(i: int, az: str) -> tuple:
    """A worker whose Node carries its zone label, as the node lifecycle controller keys zones."""
    return worker(i, az=az, labels={ZONE_LABEL: az})


def test_an_empty_worker_removed_goes_into_the_pool_while_it_has_room():
    workers = [zoned(0, "eu-west-1a"), zoned(1, "eu-west-1a"), zoned(2, "eu-west-1b")]
    d = plan(snapshot(workers, busy("n0", 2)), CALM, POOL, NOW)
    assert d.action is Action.SCALE_DOWN
    assert set(d.remove) == {"n1", "n2"} and d.warm == d.remove
    assert ReasonCode.WARM_POOL in d.codes


def test_a_stop_that_could_leave_a_zone_disrupted_terminates_instead():
    # One zone of three workers: with two stopped, one more failure would make 3 of 3 NotReady,
    # and the node lifecycle controller would evict no pod from the failed node.
    workers = [zoned(0, "eu-west-1a"), zoned(1, "eu-west-1a"), zoned(2, "eu-west-1a")]
    d = plan(snapshot(workers, busy("n0", 2)), CALM, POOL, NOW)
    assert set(d.remove) == {"n1", "n2"} and len(d.warm) == 1, d.reasons
    assert any("node lifecycle controller" in r.detail for r in d.reasons), d.reasons


def test_a_large_zone_takes_more_stopped_workers():
    # 12 nodes in the zone: 4 stopped and one failure make 5 of 12 NotReady, under 55 %.
    workers = [zoned(i, "eu-west-1a") for i in range(12)]
    pods = [p for i in range(8) for p in busy(f"n{i}", 3)]
    d = plan(snapshot(workers, pods), CALM, POOL.replace(warm_pool_size=4, max_nodes=20), NOW)
    assert len(d.remove) == 4 and d.warm == d.remove, d.reasons


def test_a_zone_already_holding_notready_nodes_counts_them():
    workers = [zoned(i, "eu-west-1a") for i in range(4)] + [stopped(5), stopped(6)]
    workers[-2:] = [(inst, replace(node, labels={ZONE_LABEL: "eu-west-1a"})) for inst, node in workers[-2:]]
    pods = [p for i in range(2) for p in busy(f"n{i}", 2)]
    d = plan(snapshot(workers, pods), CALM, POOL.replace(warm_pool_size=4), NOW)
    # 2 NotReady of 6; a stop and one failure would make 4 of 6 (67 %).
    assert d.remove and d.warm == (), d.reasons


def test_a_full_pool_leaves_removed_workers_to_be_terminated():
    workers = [worker(0), worker(1), stopped(5), stopped(6)]
    d = plan(snapshot(workers, busy("n0", 2)), CALM, POOL, NOW)
    assert d.remove == ("n1",) and d.warm == ()


def test_drains_already_keeping_their_worker_take_room_in_the_pool():
    workers = [worker(0), worker(1), worker(2), stopped(5)]
    state = replace(CALM, drains=(Drain("n2", "i-0002", NOW - 30, NOW + 270, DrainPhase.EVICTING, keep=True),))
    settings = POOL.replace(max_drains_in_parallel=2)
    d = plan(snapshot(workers, busy("n0", 2)), state, settings, NOW)
    assert d.remove == ("n1",) and d.warm == ()


def test_a_spot_worker_is_never_kept_a_one_time_spot_instance_cannot_stop():
    inst, node = worker(1)
    workers = [worker(0), (replace(inst, lifecycle="spot"), node)]
    d = plan(snapshot(workers, busy("n0", 2)), CALM, POOL, NOW)
    assert d.remove == ("n1",) and d.warm == ()


def test_without_a_pool_every_removed_worker_is_terminated():
    workers = [worker(0), worker(1)]
    d = plan(snapshot(workers, busy("n0", 2)), CALM, POOL.replace(warm_pool_size=0), NOW)
    assert d.remove == ("n1",) and d.warm == ()


# The warm pool's shorter wait: 10 minutes to terminate, 2 to stop into the pool.
EARLY = Settings(min_nodes=1, warm_pool_size=1, warm_pool_unneeded_time_s=120)


def unneeded_for(seconds: float, *names: str) -> ScalingState:
    return replace(CALM, unneeded_since={n: NOW - seconds for n in names})


def test_a_worker_the_pool_has_room_for_is_stopped_after_the_shorter_wait():
    workers = [worker(0), worker(1), worker(2)]
    d = plan(snapshot(workers, busy("n0", 2)), unneeded_for(150, "n1", "n2"), EARLY, NOW)
    assert d.action is Action.SCALE_DOWN and len(d.remove) == 1 and d.warm == d.remove, d.reasons


def test_before_the_shorter_wait_nothing_goes():
    workers = [worker(0), worker(1)]
    d = plan(snapshot(workers, busy("n0", 2)), unneeded_for(90, "n1"), EARLY, NOW)
    assert d.action is Action.NONE and ReasonCode.NO_CANDIDATE in d.codes, d.reasons


def test_with_the_pool_full_a_worker_waits_the_whole_unneeded_time():
    workers = [worker(0), worker(1), stopped(5)]
    early = plan(snapshot(workers, busy("n0", 2)), unneeded_for(150, "n1"), EARLY, NOW)
    assert early.action is Action.NONE, early.reasons
    late = plan(snapshot(workers, busy("n0", 2)), unneeded_for(600, "n1"), EARLY, NOW)
    assert late.remove == ("n1",) and late.warm == (), late.reasons


def test_a_spot_worker_waits_the_whole_unneeded_time():
    inst, node = worker(1)
    workers = [worker(0), (replace(inst, lifecycle="spot"), node)]
    d = plan(snapshot(workers, busy("n0", 2)), unneeded_for(150, "n1"), EARLY, NOW)
    assert d.action is Action.NONE, d.reasons


def test_the_shorter_wait_applies_after_a_scale_up_too():
    workers = [worker(0), worker(1)]
    state = replace(unneeded_for(150, "n1"), last_scale_up=NOW - 150)
    d = plan(snapshot(workers, busy("n0", 2)), state, EARLY, NOW)
    assert d.warm == ("n1",), d.reasons
    state = replace(unneeded_for(150, "n1"), last_scale_up=NOW - 60)
    held = plan(snapshot(workers, busy("n0", 2)), state, EARLY, NOW)
    assert held.action is Action.NONE and ReasonCode.COOLDOWN_AFTER_ADD in held.codes, held.reasons


def test_a_pool_wait_above_both_waits_keeps_the_whole_delay_after_add():
    # Unneeded past the whole wait, but the longer delay after a scale-up still holds.
    workers = [worker(0), worker(1)]
    settings = EARLY.replace(warm_pool_unneeded_time_s=900, scale_down_delay_after_add_s=900)
    state = replace(unneeded_for(700, "n1"), last_scale_up=NOW - 700)
    held = plan(snapshot(workers, busy("n0", 2)), state, settings, NOW)
    assert held.action is Action.NONE and ReasonCode.COOLDOWN_AFTER_ADD in held.codes, held.reasons


def test_scale_up_starts_stopped_workers_of_the_zone_before_launching():
    workers = [worker(0, az="eu-west-1a"), stopped(5, az="eu-west-1a"), stopped(6, az="eu-west-1b")]
    pods = [*busy("n0", 4, cpu=500), *(pending(f"p{k}", cpu=1500) for k in range(3))]
    d = plan(snapshot(workers, pods), CALM, POOL.replace(max_nodes=10), NOW)
    assert d.action is Action.SCALE_UP
    wanted = {"eu-west-1a": 0, "eu-west-1b": 0}
    for az, n in d.launches.items():
        wanted[az] += n
    started = {"i-0005": "eu-west-1a", "i-0006": "eu-west-1b"}
    for instance_id in d.starts:
        wanted[started[instance_id]] += 1
    assert sum(wanted.values()) == 3, "three workers asked, started or launched"
    assert set(d.starts) == {"i-0005", "i-0006"}, "each zone's stopped worker serves that zone's launches first"
    assert ReasonCode.WARM_START in d.codes


def test_the_ramps_extra_worker_is_started_from_the_pool_too():
    workers = [worker(0, az="eu-west-1a"), stopped(5, az="eu-west-1a"), stopped(6, az="eu-west-1b")]
    pods = [*busy("n0", 4, cpu=500), pending("p0", cpu=1500)]
    d = plan(snapshot(workers, pods), ScalingState(last_scale_up=NOW - 60), POOL.replace(max_nodes=10), NOW)
    assert ReasonCode.RAMP in d.codes, d.reasons
    assert set(d.starts) == {"i-0005", "i-0006"} and d.launch_count == 0, "both from the pool, nothing launched"


def test_a_stopping_worker_is_not_started_yet():
    workers = [worker(0, az="eu-west-1a"), stopped(5, az="eu-west-1a", state=InstanceState.STOPPING)]
    pods = [*busy("n0", 4), pending("p0", cpu=1500)]
    d = plan(snapshot(workers, pods), CALM, POOL, NOW)
    assert d.starts == () and d.launch_count == 1


def test_stopped_workers_past_the_pool_size_are_terminated_those_run_longest_ago_first():
    workers = [worker(0), stopped(5, started_ago=100.0), stopped(6, started_ago=900.0), stopped(7, started_ago=50.0)]
    d = plan(snapshot(workers, busy("n0", 2)), CALM, POOL, NOW)
    assert d.retire == ("i-0006",)


def test_a_stopped_worker_last_started_too_long_ago_is_terminated_though_the_pool_has_room():
    week = POOL.warm_pool_max_age_s
    workers = [worker(0), stopped(5, started_ago=week + 60), stopped(6, started_ago=week - 60)]
    d = plan(snapshot(workers, busy("n0", 2)), CALM, POOL, NOW)
    assert d.retire == ("i-0005",)


def test_a_worker_stopped_too_long_is_terminated_and_no_other_goes_for_the_pool_size():
    limit = POOL.warm_pool_max_stopped_s
    workers = [
        worker(0),
        stopped(5, started_ago=limit + 4000, stopped_ago=limit + 60),
        stopped(6, started_ago=limit + 900, stopped_ago=limit - 60),
        stopped(7, started_ago=limit + 8000, stopped_ago=None),
    ]
    d = plan(snapshot(workers, busy("n0", 2)), CALM, POOL, NOW)
    assert d.retire == ("i-0005",)
    assert any(f"stopped over {limit}s ago" in r.detail for r in d.reasons if r.code is ReasonCode.WARM_POOL)


def test_a_stopped_worker_whose_node_holds_a_pod_that_cannot_move_is_never_terminated():
    # A bare pod bound to the stopped worker's Node by nodeName: it has no controller to make it anew.
    limit = POOL.warm_pool_max_stopped_s
    workers = [worker(0), stopped(5, started_ago=POOL.warm_pool_max_age_s + 60, stopped_ago=limit + 60)]
    d = plan(snapshot(workers, [*busy("n0", 2), pod("bare", "n5", owner_kind=None)]), CALM, POOL, NOW)
    assert d.retire == (), d.reasons
    assert any(r.detail == "i-0005 kept in the pool, not terminated: default/bare has no controller" for r in d.reasons)
    movable = plan(snapshot(workers, [*busy("n0", 2), pod("web", "n5")]), CALM, POOL, NOW)
    assert movable.retire == ("i-0005",), movable.reasons


def test_a_removed_worker_started_too_long_ago_is_terminated_not_kept():
    workers = [worker(0), worker(1, launched_ago=POOL.warm_pool_max_age_s + 60)]
    d = plan(snapshot(workers, busy("n0", 2)), CALM, POOL, NOW)
    assert d.remove == ("n1",) and d.warm == ()


def test_a_ready_worker_cordoned_by_no_drain_under_way_is_given_back():
    inst, node = worker(1, cordoned=True, taints=(DRAINING,))
    d = plan(snapshot([worker(0), (inst, node)], busy("n0", 2)), CALM, POOL, NOW)
    assert d.uncordon == ("n1",) and ReasonCode.REJOINED in d.codes


def test_a_node_cordoned_by_someone_else_or_under_a_drain_is_not_given_back():
    by_hand = worker(1, cordoned=True, taints=(Taint("maintenance", "", "NoSchedule"),))
    ours = worker(2, cordoned=True, taints=(DRAINING,))
    state = replace(CALM, drains=(Drain("n2", "i-0002", NOW - 30, NOW + 270, DrainPhase.EVICTING),))
    d = plan(snapshot([worker(0), by_hand, ours], busy("n0", 2)), state, POOL, NOW)
    assert d.uncordon == ()


def test_a_stopped_workers_node_is_neither_dead_nor_given_back():
    d = plan(snapshot([worker(0), worker(1), stopped(5)], busy("n0", 2)), CALM, POOL, NOW)
    assert "n5" not in d.remove and d.uncordon == () and "n5" not in d.nodes


def test_a_started_worker_is_not_dead_for_the_time_it_was_stopped():
    """Its Node went NotReady when it stopped, long ago; it was started a minute ago."""
    inst, node = stopped(5, started_ago=60.0)
    running = replace(inst, state=InstanceState.RUNNING)
    d = plan(snapshot([worker(0), (running, replace(node, cordoned=False, taints=()))]), CALM, POOL, NOW)
    assert ReasonCode.UNREADY_NODE not in d.codes and "n5" not in d.remove


# -- acting -----------------------------------------------------------------------------------------


def pool_world(*extra):
    ws = [worker(0), worker(1), *extra]
    return FakeFleet([w[0] for w in ws]), FakeCluster([w[1] for w in ws if w[1] is not None], busy("n0", 2))


def test_a_kept_drain_stops_the_worker_and_keeps_its_node_cordoned():
    fleet, cluster = pool_world()
    p = ports(fleet, cluster)
    p.state.save(CALM)
    for minute in range(3):
        run_cycle(p, POOL, NOW + 60 * minute, token=f"c{minute}")
    assert ("stop", "i-0001") in fleet.calls and ("terminate", "i-0001") not in fleet.calls
    assert {i.id: i.state for i in fleet.instances}["i-0001"] is InstanceState.STOPPED
    node = {n.name: n for n in cluster.nodes}["n1"]
    assert node.cordoned and DRAINING in node.taints, "the Node stays, cordoned, for the start to give back"
    assert p.state.load().drains == ()


def test_a_start_gives_the_node_back_and_counts_as_in_flight():
    fleet, cluster = pool_world(stopped(5))
    p = ports(fleet, cluster)
    decision = Decision(Action.SCALE_UP, starts=("i-0005",), state=CALM)
    state, outcome = run_act(p, decision)
    assert fleet.calls == [("start", ("i-0005",))]
    assert outcome.started == ["i-0005"] and outcome.uncordoned == ["n5"]
    assert not {n.name: n for n in cluster.nodes}["n5"].cordoned
    assert [x.instance_id for x in state.launches] == ["i-0005"]


def test_a_worker_that_will_not_start_is_replaced_by_a_launch_in_its_zone():
    fleet, cluster = pool_world(stopped(5, az="eu-west-1b"))
    fleet.no_capacity_to_start = True
    p = ports(fleet, cluster)
    _, outcome = run_act(p, Decision(Action.SCALE_UP, starts=("i-0005",), launches={"eu-west-1a": 1}))
    assert outcome.started == [] and outcome.launch_failures == ["i-0005: InsufficientInstanceCapacity"]
    launched = [c for c in fleet.calls if c[0] == "launch"]
    assert sorted((az, n) for _, az, n, _ in launched) == [("eu-west-1a", 1), ("eu-west-1b", 1)]
    assert {n.name: n for n in cluster.nodes}["n5"].cordoned, "a worker that did not start keeps its cordon"


def test_retired_workers_are_terminated_and_stale_cordons_lifted():
    fleet, cluster = pool_world(stopped(5))
    p = ports(fleet, cluster)
    cluster.cordon("n1")
    _, outcome = run_act(p, Decision(Action.NONE, retire=("i-0005",), uncordon=("n1",)))
    assert ("terminate", "i-0005") in fleet.calls and outcome.terminated == ["i-0005"]
    assert outcome.uncordoned == ["n1"] and not {n.name: n for n in cluster.nodes}["n1"].cordoned


def run_act(p, decision):
    snap = observe(p, NOW)
    return act(decision, snap, p, POOL, NOW, "tok", p.state.save)
