"""The planner's rules, one table row each, at a fixed `now`."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autoscaler.config import Settings
from autoscaler.model import Action, Drain, Intent, IntentKind, Launch, MetricsView, Node, ReasonCode, ScalingState
from autoscaler.planner import plan
from builders import NOW, ZONES, busy, pending, pod, snapshot, worker

A, B = ZONES
R = ReasonCode


def w(n: int, **kw):
    return [worker(i, **kw) for i in range(n)]


FRESH = ScalingState()


def case(desc, snap, *, state=FRESH, settings=None, action, launches=None, remove=(), codes=(), terminate=()):
    return pytest.param(snap, state, settings or {}, action, launches, remove, codes, terminate, id=desc)


# Three workers kept busy enough (2 x 500m of 2000m = 50 %) that none is a scale-down candidate.
def full(n: int = 3):
    ws = w(n)
    return ws, [p for i in range(n) for p in busy(f"n{i}", 2)]


WS, BUSY = full()
# Three pods more than the busy workers hold: one new worker's worth.
RISING = snapshot(WS, BUSY + [pending(f"p{k}") for k in range(3)])

CASES = [
    # -- scale-up -----------------------------------------------------------------------------
    case(
        "unschedulable pods are bin-packed onto new workers, spread over zones",
        snapshot(WS, BUSY + [pending(f"p{k}") for k in range(6)]),
        action=Action.SCALE_UP,
        launches={A: 1, B: 1},
        codes=(R.UNSCHEDULABLE_PODS,),
    ),
    case(
        "memory-bound pods need a worker each",
        snapshot(WS, BUSY + [pending(f"p{k}", cpu=100, mem=5000) for k in range(3)]),
        action=Action.SCALE_UP,
        launches={B: 2, A: 1},
        codes=(R.UNSCHEDULABLE_PODS,),
    ),
    case(
        "a Pending pod the scheduler has not marked unschedulable triggers nothing",
        snapshot(WS, [*BUSY, pod("fresh", None)]),
        action=Action.NONE,
    ),
    case(
        "DaemonSet pods waiting for a node trigger nothing",
        snapshot(WS, [*BUSY, pending("ds", owner_kind="DaemonSet")]),
        action=Action.NONE,
    ),
    case(
        "pods only briefly unschedulable wait for new_pod_scale_up_delay_s",
        snapshot(WS, [*BUSY, pending("p", since=5)]),
        settings={"new_pod_scale_up_delay_s": 30},
        action=Action.NONE,
        codes=(R.PENDING_PODS,),
    ),
    case(
        "capacity already launching is counted: no second launch for the same pods",
        snapshot([*WS, worker(9, ready=None, launched_ago=60)], BUSY + [pending(f"p{k}") for k in range(3)]),
        action=Action.NONE,
        codes=(R.CAPACITY_IN_FLIGHT, R.PENDING_PODS),
    ),
    case(
        "a registered but NotReady node is still capacity on its way",
        snapshot([*WS, worker(9, ready=False, launched_ago=60)], BUSY + [pending(f"p{k}") for k in range(3)]),
        action=Action.NONE,
        codes=(R.CAPACITY_IN_FLIGHT,),
    ),
    case(
        "a launch not yet visible in EC2 counts too (eventual consistency)",
        snapshot(WS, BUSY + [pending(f"p{k}") for k in range(3)]),
        state=ScalingState(launches=(Launch("i-new", A, NOW - 20, NOW + 880),)),
        action=Action.NONE,
        codes=(R.CAPACITY_IN_FLIGHT,),
    ),
    case(
        "only the pods beyond capacity in flight get new workers",
        snapshot([*WS, worker(9, ready=None, launched_ago=60)], BUSY + [pending(f"p{k}") for k in range(6)]),
        action=Action.SCALE_UP,
        launches={A: 1},
        codes=(R.UNSCHEDULABLE_PODS,),
    ),
    case(
        "at max_nodes: no launch and no crash",
        snapshot(w(10), [pending(f"p{k}") for k in range(8)]),
        action=Action.NONE,
        codes=(R.AT_MAX,),
    ),
    case(
        "launches are clamped to the headroom under max_nodes",
        snapshot(w(8), [pending(f"p{k}", cpu=1500) for k in range(5)]),
        action=Action.SCALE_UP,
        launches={A: 1, B: 1},
        codes=(R.UNSCHEDULABLE_PODS, R.AT_MAX),
    ),
    case(
        "max_nodes counts real instances, not Ready nodes",
        snapshot(
            w(6) + [worker(i, ready=None, launched_ago=30) for i in range(6, 10)],
            [pending(f"p{k}", cpu=1500) for k in range(5)],
        ),
        action=Action.NONE,
        codes=(R.AT_MAX,),
    ),
    case(
        "max_nodes_per_scale_up limits one cycle",
        snapshot(WS, BUSY + [pending(f"p{k}", cpu=1500) for k in range(5)]),
        settings={"max_nodes_per_scale_up": 2},
        action=Action.SCALE_UP,
        launches={B: 1, A: 1},
    ),
    case(
        "a pod larger than a worker is reported, not launched for",
        snapshot(WS, [*BUSY, pending("huge", cpu=3000)]),
        action=Action.NONE,
        codes=(R.NO_WORKER_FITS,),
    ),
    case(
        "below min_nodes: launch up to the minimum",
        snapshot(w(1), []),
        action=Action.SCALE_UP,
        launches={B: 1},
        codes=(R.BELOW_MIN,),
    ),
    case(
        "launches into the zone with the fewest workers",
        snapshot([worker(i, az=A) for i in range(3)], [pending(f"p{k}", cpu=1500) for k in range(2)]),
        action=Action.SCALE_UP,
        launches={B: 2},
    ),
    case(
        "after a failed launch the pool backs off",
        snapshot(WS, [*BUSY, pending("p")]),
        state=ScalingState(backoff_until=NOW + 100),
        action=Action.NONE,
        codes=(R.BACKING_OFF,),
    ),
    case(
        "CPU above cpu_high for cpu_high_window_s adds workers",
        snapshot(WS, BUSY, cpu=0.9),
        state=ScalingState(pressure_since=NOW - 200),
        action=Action.SCALE_UP,
        launches={B: 1},
        codes=(R.CPU_HIGH,),
    ),
    case(
        "the operator's custom metric above its threshold adds workers the same way",
        snapshot(WS, BUSY, cpu=0.4, custom=150.0),
        state=ScalingState(pressure_since=NOW - 200),
        settings={"custom_metric_threshold": 100.0},
        action=Action.SCALE_UP,
        launches={B: 1, A: 1},
        codes=(R.CUSTOM_METRIC_HIGH,),
    ),
    case(
        "CPU high but not yet for the window: wait",
        snapshot(WS, BUSY, cpu=0.9),
        state=ScalingState(pressure_since=NOW - 60),
        action=Action.NONE,
    ),
    case(
        "CPU high while workers are launching: wait for them",
        snapshot([*WS, worker(9, ready=None, launched_ago=30)], BUSY, cpu=0.9),
        state=ScalingState(pressure_since=NOW - 600),
        action=Action.NONE,
        codes=(R.CAPACITY_IN_FLIGHT,),
    ),
    case(
        "a Prometheus outage is unknown, never zero: nothing happens (original brief launched every minute)",
        snapshot(WS, [], cpu=None),
        state=ScalingState(pressure_since=NOW - 600),
        action=Action.NONE,
        codes=(R.METRICS_UNKNOWN,),
    ),
    case(
        "unschedulable pods still scale up while metrics are unknown",
        snapshot(WS, [pending("p", cpu=1500)], cpu=None),
        action=Action.SCALE_UP,
        launches={B: 1},
    ),
    case(
        "an instance that never became a Ready node is terminated and the pool backs off",
        snapshot([*WS, worker(9, ready=None, launched_ago=1000)], [*BUSY, pending("p")]),
        action=Action.NONE,
        terminate=("i-0009",),
        codes=(R.UNJOINED_INSTANCE, R.BACKING_OFF),
    ),
    case(
        "pods pending again within ramp_window_s of the last scale-up: one worker more for the ramp",
        RISING,
        state=ScalingState(last_scale_up=NOW - 120),
        action=Action.SCALE_UP,
        launches={A: 1, B: 1},
        codes=(R.UNSCHEDULABLE_PODS, R.RAMP),
    ),
    case(
        "pods pending longer than ramp_window_s after the last scale-up: no more than they need",
        RISING,
        state=ScalingState(last_scale_up=NOW - Settings().ramp_window_s - 1),
        action=Action.SCALE_UP,
        launches={B: 1},
    ),
    case(
        "ramp_window_s 0 turns the ramp off",
        RISING,
        state=ScalingState(last_scale_up=NOW - 120),
        settings={"ramp_window_s": 0},
        action=Action.SCALE_UP,
        launches={B: 1},
    ),
    case(
        "no ramp without pending pods: a min_nodes launch soon after a scale-up adds only its own",
        snapshot(w(1)),
        state=ScalingState(last_scale_up=NOW - 60),
        action=Action.SCALE_UP,
        launches={B: 1},
        codes=(R.BELOW_MIN,),
    ),
    case(
        "paused: nothing but the report",
        snapshot(WS, [pending("p")]),
        state=ScalingState(paused=True),
        action=Action.NONE,
        codes=(R.PAUSED,),
    ),
    # -- scale-down ---------------------------------------------------------------------------
    case(
        "an empty worker unneeded for scale_down_unneeded_time_s is removed",
        snapshot(w(3), busy("n0", 1) + busy("n1", 1)),
        state=ScalingState(unneeded_since={"n2": NOW - 700}),
        action=Action.SCALE_DOWN,
        remove=("n2",),
        codes=(R.EMPTY_NODE,),
    ),
    case(
        "a worker whose pods fit elsewhere is drained after the unneeded time",
        snapshot(w(3), busy("n0", 2) + busy("n1", 2) + busy("n2", 1)),
        state=ScalingState(unneeded_since={"n2": NOW - 700}),
        action=Action.SCALE_DOWN,
        remove=("n2",),
        codes=(R.NODE_UNNEEDED,),
    ),
    case(
        "unneeded, but not for long enough yet",
        snapshot(w(3), busy("n0", 1) + busy("n1", 1)),
        state=ScalingState(unneeded_since={"n2": NOW - 300}),
        action=Action.NONE,
        codes=(R.NO_CANDIDATE,),
    ),
    case(
        "requested utilization at the threshold keeps a node",
        snapshot(w(3), busy("n0", 1) + busy("n1", 1) + busy("n2", 2)),
        state=ScalingState(unneeded_since={"n2": NOW - 700}),
        settings={"scale_down_utilization_threshold": 0.5},
        action=Action.NONE,
    ),
    case(
        "pods that do not fit on the other workers keep their node",
        snapshot(w(3), busy("n0", 3) + busy("n1", 3) + busy("n2", 3, cpu=300)),
        state=ScalingState(unneeded_since={"n2": NOW - 700}),
        settings={"scale_down_utilization_threshold": 0.6},
        action=Action.NONE,
    ),
    case(
        "two nodes whose pods fit only if the other stays: one is removed",
        snapshot(w(4), busy("n0", 3) + busy("n1", 3) + busy("n2", 1, cpu=600) + busy("n3", 1, cpu=600)),
        state=ScalingState(unneeded_since={"n2": NOW - 700, "n3": NOW - 700}),
        settings={"max_drains_in_parallel": 2},
        action=Action.SCALE_DOWN,
        remove=("n2",),
    ),
    case(
        "never below min_nodes",
        snapshot(w(2), []),
        state=ScalingState(unneeded_since={"n0": NOW - 700, "n1": NOW - 700}),
        action=Action.NONE,
        codes=(R.AT_MIN,),
    ),
    case(
        "empty workers go in bulk, down to min_nodes",
        snapshot(w(5), busy("n0", 1)),
        state=ScalingState(unneeded_since={f"n{i}": NOW - 700 for i in range(1, 5)}),
        action=Action.SCALE_DOWN,
        remove=("n2", "n4", "n1"),
    ),
    case(
        "max_empty_bulk_delete caps the bulk",
        snapshot(w(5), busy("n0", 1)),
        state=ScalingState(unneeded_since={f"n{i}": NOW - 700 for i in range(1, 5)}),
        settings={"max_empty_bulk_delete": 2, "min_nodes": 1},
        action=Action.SCALE_DOWN,
        remove=("n2", "n4"),
    ),
    case(
        "non-empty workers are drained one at a time",
        snapshot(w(4), busy("n0", 1) + busy("n1", 1) + busy("n2", 1) + busy("n3", 1)),
        state=ScalingState(unneeded_since={f"n{i}": NOW - 700 for i in range(4)}),
        settings={"min_nodes": 1},
        action=Action.SCALE_DOWN,
        remove=("n0",),
    ),
    case(
        "a drain in progress blocks the next non-empty one",
        snapshot(w(4), busy("n0", 1) + busy("n1", 1) + busy("n2", 1)),
        state=ScalingState(
            unneeded_since={f"n{i}": NOW - 700 for i in range(3)}, drains=(Drain("n3", "i-0003", NOW - 30, NOW + 270),)
        ),
        action=Action.NONE,
        codes=(R.DRAIN_IN_PROGRESS,),
    ),
    case(
        "removes from the zone with the most workers first",
        snapshot([worker(0, az=A), worker(1, az=B), worker(2, az=B)], busy("n0", 1)),
        state=ScalingState(unneeded_since={"n1": NOW - 700, "n2": NOW - 700}),
        settings={"max_empty_bulk_delete": 1},
        action=Action.SCALE_DOWN,
        remove=("n1",),
    ),
    case(
        "unschedulable pods a new worker could host block scale-down",
        snapshot([*w(3), worker(3, az=A)], [*busy("n0", 1), pending("p", cpu=1000)]),
        state=ScalingState(unneeded_since={"n3": NOW - 700}, launches=()),
        settings={"max_nodes": 4},
        action=Action.NONE,
        codes=(R.AT_MAX, R.PENDING_PODS),
    ),
    case(
        "a pending pod no new worker can host does not block scale-down (Cluster Autoscaler's rule)",
        snapshot([*w(3), worker(3, az=A)], [*busy("n0", 1), pending("p", cpu=3000)]),
        state=ScalingState(unneeded_since={"n3": NOW - 700}),
        action=Action.SCALE_DOWN,
        remove=("n3",),
        codes=(R.NO_WORKER_FITS, R.EMPTY_NODE),
    ),
    case(
        "a launch in flight blocks scale-down",
        snapshot([*w(3), worker(9, ready=None, launched_ago=30)], busy("n0", 1)),
        state=ScalingState(unneeded_since={"n2": NOW - 700}),
        action=Action.NONE,
        codes=(R.LAUNCH_IN_FLIGHT,),
    ),
    case(
        "scale_down_delay_after_add blocks scale-down",
        snapshot(w(3), busy("n0", 1)),
        state=ScalingState(unneeded_since={"n2": NOW - 700}, last_scale_up=NOW - 300),
        action=Action.NONE,
        codes=(R.COOLDOWN_AFTER_ADD,),
    ),
    case(
        "scale_down_delay_after_failure blocks scale-down",
        snapshot(w(3), busy("n0", 1)),
        state=ScalingState(unneeded_since={"n2": NOW - 700}, last_failure=NOW - 60),
        action=Action.NONE,
        codes=(R.COOLDOWN_AFTER_FAILURE,),
    ),
    case(
        "unknown metrics allow no scale-down",
        snapshot(w(3), busy("n0", 1), cpu=None),
        state=ScalingState(unneeded_since={"n2": NOW - 700}),
        action=Action.NONE,
        codes=(R.METRICS_UNKNOWN,),
    ),
    case(
        "a node using more CPU than its pods request is kept",
        snapshot(
            w(3), busy("n0", 2) + busy("n1", 1) + busy("n2", 1, cpu=300), node_cpu={"n0": 0.1, "n1": 0.1, "n2": 0.6}
        ),
        state=ScalingState(unneeded_since={"n1": NOW - 700, "n2": NOW - 700}),
        settings={"min_nodes": 1},
        action=Action.SCALE_DOWN,
        remove=("n1",),
    ),
    case(
        "a node with unknown usage is not drained",
        snapshot(w(3), busy("n0", 2) + busy("n1", 2) + busy("n2", 1), node_cpu={"n0": 0.1, "n1": 0.1}),
        state=ScalingState(unneeded_since={"n2": NOW - 700}),
        action=Action.NONE,
    ),
]


def _blocked_node_case(desc, blocking_pod, blocked=True):
    snap = snapshot(w(3), [*busy("n0", 1), *busy("n1", 1), blocking_pod])
    return case(
        desc,
        snap,
        state=ScalingState(unneeded_since={"n2": NOW - 700}),
        action=Action.NONE if blocked else Action.SCALE_DOWN,
        remove=() if blocked else ("n2",),
    )


BLOCKERS = [
    _blocked_node_case("kube-system pod without a PDB blocks", pod("dns", "n2", namespace="kube-system")),
    _blocked_node_case(
        "kube-system pod with a PDB moves", pod("dns", "n2", namespace="kube-system", has_pdb=True), blocked=False
    ),
    _blocked_node_case("bare pod without a controller blocks", pod("bare", "n2", owner_kind=None)),
    _blocked_node_case("pod with local storage blocks", pod("cache", "n2", local_storage=True)),
    _blocked_node_case(
        "local storage annotated safe-to-evict moves",
        pod("cache", "n2", local_storage=True, annotations={"cluster-autoscaler.kubernetes.io/safe-to-evict": "true"}),
        blocked=False,
    ),
    _blocked_node_case(
        "safe-to-evict=false blocks",
        pod("db", "n2", annotations={"cluster-autoscaler.kubernetes.io/safe-to-evict": "false"}),
    ),
    _blocked_node_case(
        "karpenter do-not-disrupt blocks", pod("job", "n2", annotations={"karpenter.sh/do-not-disrupt": "true"})
    ),
    _blocked_node_case("a DaemonSet pod does not block", pod("agent", "n2", owner_kind="DaemonSet"), blocked=False),
]


def _node_case(desc, **node_kw):
    ws = w(2)
    extra = worker(2, **node_kw)
    return case(
        desc,
        snapshot([*ws, extra], busy("n0", 1)),
        state=ScalingState(unneeded_since={"n2": NOW - 700}),
        action=Action.NONE,
    )


NODE_GUARDS = [
    _node_case(
        "node-fleet.io/scale-down-disabled keeps a node", annotations={"node-fleet.io/scale-down-disabled": "true"}
    ),
    _node_case(
        "cluster-autoscaler scale-down-disabled keeps a node",
        annotations={"cluster-autoscaler.kubernetes.io/scale-down-disabled": "true"},
    ),
    _node_case("the control-plane node is never removed", control_plane=True),
    _node_case("a cordoned node is left to whoever cordoned it", cordoned=True),
    case(
        "a node whose instance lacks this cluster's tags is never removed",
        snapshot(w(3), busy("n0", 1), extra_nodes=(Node("stranger", 2000, 7680, "i-other", A),)),
        state=ScalingState(unneeded_since={"stranger": NOW - 700}),
        action=Action.NONE,
    ),
]


@pytest.mark.parametrize(
    ("snap", "state", "overrides", "action", "launches", "remove", "codes", "terminate"),
    CASES + BLOCKERS + NODE_GUARDS,
)
def test_plan(snap, state, overrides, action, launches, remove, codes, terminate):
    # The rule tables are the terminate path's; the warm pool's shorter wait has its own tests.
    decision = plan(snap, state, Settings(warm_pool_size=0).replace(**overrides), NOW)
    assert decision.action is action, decision.reasons
    if launches is not None:
        assert dict(decision.launches) == launches
    elif action is not Action.SCALE_UP:
        assert not decision.launches
    assert decision.remove == remove
    assert decision.terminate_unjoined == terminate
    for code in codes:
        assert code in decision.codes, decision.reasons
    assert decision.reasons, "every decision says why"


def test_unneeded_clock_starts_now_and_is_kept():
    snap = snapshot(w(3), busy("n0", 3) + busy("n1", 3))
    first = plan(snap, ScalingState(), Settings(), NOW)
    assert first.state.unneeded_since == {"n2": NOW}
    later = plan(snap, first.state, Settings(), NOW + 300)
    assert later.state.unneeded_since == {"n2": NOW}


def test_unneeded_clock_resets_when_the_node_is_needed_again():
    state = ScalingState(unneeded_since={"n2": NOW - 500})
    decision = plan(snapshot(w(3), busy("n0", 3) + busy("n1", 3) + busy("n2", 3)), state, Settings(), NOW)
    assert "n2" not in decision.state.unneeded_since


def test_cpu_high_clock_starts_and_breaks_on_unknown():
    started = plan(snapshot(*full(), cpu=0.9), ScalingState(), Settings(), NOW)
    assert started.state.pressure_since == NOW
    broken = plan(snapshot(*full(), cpu=None), started.state, Settings(), NOW + 60)
    assert broken.state.pressure_since is None


def test_scale_up_records_time_for_the_cool_down():
    decision = plan(snapshot(*full()[:1], [pending("p")]), ScalingState(), Settings(), NOW)
    assert decision.state.last_scale_up == NOW


def test_unjoined_instance_sets_failure_and_backoff():
    snap = snapshot([*WS, worker(9, ready=None, launched_ago=1000)], BUSY)
    decision = plan(snap, ScalingState(), Settings(provision_backoff_s=300), NOW)
    assert decision.state.last_failure == NOW
    assert decision.state.backoff_until == NOW + 300


@settings(max_examples=300, deadline=None)
@given(
    ready=st.integers(0, 12),
    launching=st.integers(0, 4),
    pending_pods=st.lists(st.tuples(st.integers(1, 2500), st.integers(1, 9000)), max_size=40),
    max_nodes=st.integers(1, 12),
    cpu=st.one_of(st.none(), st.floats(0, 1)),
)
def test_never_launches_past_max_nodes(ready, launching, pending_pods, max_nodes, cpu):
    ws = [worker(i) for i in range(ready)] + [worker(100 + i, ready=None, launched_ago=30) for i in range(launching)]
    pods = [pending(f"p{k}", c, m) for k, (c, m) in enumerate(pending_pods)]
    s = Settings(min_nodes=min(2, max_nodes), max_nodes=max_nodes)
    decision = plan(snapshot(ws, pods, cpu=cpu), ScalingState(), s, NOW)
    assert len(ws) + decision.launch_count <= max(max_nodes, len(ws))
    assert decision.launch_count == 0 or len(ws) < max_nodes
    assert len(ws) - len(decision.remove) >= min(len(ws), s.min_nodes)


def test_metrics_view_unknown_is_not_zero():
    assert not MetricsView(unknown_reason="x").known
    assert MetricsView(cluster_cpu=0.0).known


def test_a_lone_straggler_among_joined_launches_is_replaced_without_backoff():
    launched_together = [
        worker(7, launched_ago=1000),
        worker(8, launched_ago=1000),
        worker(9, ready=None, launched_ago=1000),
    ]
    snap = snapshot([*WS, *launched_together], [*BUSY, pending("p", cpu=1500)])
    decision = plan(snap, ScalingState(), Settings(), NOW)
    assert decision.terminate_unjoined == ("i-0009",)
    assert decision.state.backoff_until is None and decision.state.last_failure == NOW
    assert decision.launch_count == 1


def late(i: int, ago: float = 200):
    """A launch with no Node yet, past the default launch_late_after_s (180 s)."""
    return worker(i, ready=None, launched_ago=ago)


def test_the_ramp_is_sized_to_the_pace_of_the_windows_additions():
    # 12 workers added in the last 100 s and 1 more needed now: 13 in a 300 s window, at that pace
    # for RAMP_LEAD_S (30 s) is 1.3 workers: 2 more.
    ws = w(12, launched_ago=100)
    pods = [*(p for i in range(12) for p in busy(f"n{i}", 2)), *(pending(f"p{k}") for k in range(3))]
    settings = Settings(warm_pool_size=0, max_nodes=30, ramp_window_s=300)
    decision = plan(snapshot(ws, pods), ScalingState(last_scale_up=NOW - 30), settings, NOW)
    assert decision.launch_count == 3 and R.RAMP in decision.codes, decision.reasons
    assert "2 more" in next(r.detail for r in decision.reasons if r.code is R.RAMP)


def test_the_ramp_stays_within_max_nodes():
    decision = plan(RISING, ScalingState(last_scale_up=NOW - 120), Settings(warm_pool_size=0, max_nodes=4), NOW)
    assert decision.launch_count == 1 and R.AT_MAX in decision.codes, decision.reasons


def test_a_late_launch_overtaken_by_a_sibling_is_terminated_and_replaced_at_once():
    # Launched together; two joined in time, the third still has no Node: it is stuck.
    snap = snapshot(
        [*WS, worker(7, launched_ago=200), worker(8, launched_ago=200), late(9)], [*BUSY, pending("p", cpu=1500)]
    )
    decision = plan(snap, ScalingState(), Settings(), NOW)
    assert decision.terminate_unjoined == ("i-0009",)
    assert decision.state.backoff_until is None
    assert decision.launch_count == 1, decision.reasons
    assert any("stuck, replaced" in r.detail for r in decision.reasons), decision.reasons


def test_the_only_late_launch_is_kept_but_no_longer_counted_as_room_on_its_way():
    snap = snapshot([*WS, late(9)], [*BUSY, pending("p", cpu=1500)])
    decision = plan(snap, ScalingState(), Settings(), NOW)
    assert decision.terminate_unjoined == ()
    assert decision.launch_count == 1 and R.LATE_LAUNCH in decision.codes, decision.reasons


def test_a_launch_not_yet_late_still_counts_as_room_on_its_way():
    snap = snapshot([*WS, late(9, ago=170)], [*BUSY, pending("p", cpu=1500)])
    decision = plan(snap, ScalingState(), Settings(), NOW)
    assert decision.launch_count == 0 and R.LATE_LAUNCH not in decision.codes, decision.reasons


def test_several_late_launches_none_overtaken_get_no_replacement():
    # Nothing launched since has joined: the launches may be failing, and more would fail too.
    snap = snapshot([*WS, late(8), late(9, ago=250)], [*BUSY, pending("p", cpu=1500), pending("q", cpu=1500)])
    decision = plan(snap, ScalingState(), Settings(), NOW)
    assert decision.launch_count == 0 and decision.terminate_unjoined == (), decision.reasons
    assert any("may be failing" in r.detail for r in decision.reasons), decision.reasons


def test_a_late_launch_that_registered_a_node_is_still_joining():
    snap = snapshot(
        [*WS, worker(8, launched_ago=200), worker(9, ready=False, launched_ago=200)], [*BUSY, pending("p", cpu=1500)]
    )
    decision = plan(snap, ScalingState(), Settings(), NOW)
    assert decision.terminate_unjoined == () and decision.launch_count == 0, decision.reasons


def test_a_late_launch_counts_as_a_replaced_worker_towards_min_nodes():
    snap = snapshot([worker(0), late(9)], [])
    decision = plan(snap, ScalingState(), Settings(min_nodes=2), NOW)
    assert decision.launch_count == 1 and R.BELOW_MIN in decision.codes, decision.reasons


def test_late_after_at_or_above_the_provision_time_changes_nothing():
    snap = snapshot([*WS, worker(8, launched_ago=200), late(9)], [*BUSY, pending("p", cpu=1500)])
    decision = plan(snap, ScalingState(), Settings(launch_late_after_s=900), NOW)
    assert decision.terminate_unjoined == () and decision.launch_count == 0, decision.reasons


def intent_case(desc, snap, intent, *, state=FRESH, action, launches=None, remove=(), codes=(), paused=None):
    return pytest.param(snap, state, intent, action, launches, remove, codes, paused, id=desc)


def ask(kind, count=0):
    return Intent(IntentKind(kind), count, "test")


QUIET = snapshot(w(4), busy("n0", 1) + busy("n1", 1) + busy("n2", 1))

INTENTS = [
    intent_case(
        "scale_up ignores the cool-down and the back-off",
        snapshot(*full()),
        ask("scale_up", 2),
        state=ScalingState(last_scale_up=NOW - 10, backoff_until=NOW + 100),
        action=Action.SCALE_UP,
        launches={B: 1, A: 1},
        codes=(R.REQUESTED,),
    ),
    intent_case(
        "scale_up stays within max_nodes",
        snapshot(w(9)),
        ask("scale_up", 5),
        action=Action.SCALE_UP,
        launches={B: 1},
        codes=(R.AT_MAX,),
    ),
    intent_case(
        "scale_up at max does nothing", snapshot(w(10)), ask("scale_up", 1), action=Action.NONE, codes=(R.AT_MAX,)
    ),
    intent_case(
        "scale_down skips the unneeded time but keeps the safety rules",
        QUIET,
        ask("scale_down", 2),
        state=ScalingState(last_scale_up=NOW - 10),
        action=Action.SCALE_DOWN,
        remove=("n3", "n0"),
    ),
    intent_case(
        "scale_down never goes below min_nodes",
        QUIET,
        ask("scale_down", 4),
        action=Action.SCALE_DOWN,
        remove=("n3", "n0"),
        codes=(R.AT_MIN,),
    ),
    intent_case(
        "scale_down never strands pods",
        snapshot(w(3), busy("n0", 3) + busy("n1", 3) + busy("n2", 3)),
        ask("scale_down", 1),
        action=Action.NONE,
        codes=(R.NO_CANDIDATE,),
    ),
    intent_case(
        "scale_down refuses while pods wait for capacity",
        snapshot(w(4), [pending("p", cpu=1000)]),
        ask("scale_down", 1),
        action=Action.NONE,
        codes=(R.PENDING_PODS,),
    ),
    intent_case(
        "scale_down keeps a node holding an unmovable pod",
        snapshot(w(3), [pod("bare", "n2", owner_kind=None), *busy("n0", 1)]),
        ask("scale_down", 1),
        action=Action.SCALE_DOWN,
        remove=("n1",),
    ),
    intent_case(
        "set above the count launches", snapshot(w(3)), ask("set", 5), action=Action.SCALE_UP, launches={B: 1, A: 1}
    ),
    intent_case("set below the count removes", QUIET, ask("set", 3), action=Action.SCALE_DOWN, remove=("n3",)),
    intent_case(
        "set is clamped to max_nodes",
        snapshot(w(9)),
        ask("set", 50),
        action=Action.SCALE_UP,
        launches={B: 1},
        codes=(R.AT_MAX,),
    ),
    intent_case(
        "set is clamped to min_nodes", snapshot(w(2)), ask("set", 0), action=Action.NONE, codes=(R.AT_MIN, R.STEADY)
    ),
    intent_case(
        "pause stops scaling", snapshot(*full()[:1], [pending("p")]), ask("pause"), action=Action.NONE, paused=True
    ),
    intent_case(
        "while paused, requests are refused",
        snapshot(w(3)),
        ask("scale_up", 1),
        state=ScalingState(paused=True),
        action=Action.NONE,
        codes=(R.PAUSED,),
        paused=True,
    ),
    intent_case(
        "resume scales at once",
        snapshot(*full()[:1], [pending("p", cpu=1500)]),
        ask("resume"),
        state=ScalingState(paused=True),
        action=Action.SCALE_UP,
        paused=False,
    ),
]


@pytest.mark.parametrize(("snap", "state", "intent", "action", "launches", "remove", "codes", "paused"), INTENTS)
def test_requested(snap, state, intent, action, launches, remove, codes, paused):
    decision = plan(snap, state, Settings(), NOW, intent)
    assert decision.action is action, decision.reasons
    if launches is not None:
        assert dict(decision.launches) == launches
    assert decision.remove == remove
    for code in codes:
        assert code in decision.codes, decision.reasons
    if paused is not None:
        assert decision.state.paused is paused


def test_a_provision_time_below_the_late_time_still_terminates_the_unjoined():
    snap = snapshot([*WS, late(9, ago=100)], BUSY)
    decision = plan(snap, ScalingState(), Settings(max_node_provision_time_s=60), NOW)
    assert decision.terminate_unjoined == ("i-0009",) and decision.state.backoff_until is not None
