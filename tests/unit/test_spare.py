"""The spare room: soon after a scale-up, room for one more pod of the median size is kept on the
Ready nodes while the warm pool is on (autoscaler/spare.py)."""

from __future__ import annotations

from test_warm_pool import stopped

from autoscaler.config import Settings
from autoscaler.model import Action, Intent, IntentKind, ReasonCode, ScalingState
from autoscaler.planner import plan
from autoscaler.spare import SPARE_NAMESPACE
from builders import NOW, busy, pending, snapshot, worker

SPARE = Settings(min_nodes=1, warm_pool_size=2, ramp_window_s=1800, spare_room_pods=1)
RISING = ScalingState(last_scale_up=NOW - 600)
"""Within ramp_window_s of the last scale-up."""


def full(*names: str) -> list:
    """Four 500m pods on each node: its 2000m taken."""
    return [p for name in names for p in busy(name, 4)]


def test_a_stopped_worker_is_started_when_no_ready_node_has_the_room():
    workers = [worker(0), worker(1), stopped(5, started_ago=9000), stopped(6, started_ago=7000)]
    d = plan(snapshot(workers, full("n0", "n1")), RISING, SPARE, NOW)
    assert d.action is Action.SCALE_UP and d.starts == ("i-0006",) and not d.launches, d.reasons
    assert ReasonCode.SPARE_ROOM in d.codes
    assert any("one more pod of the median size (500m CPU, 512Mi)" in r.detail for r in d.reasons), d.reasons
    assert d.state.last_scale_up == RISING.last_scale_up, "the spare room must not keep its own window open"


def test_no_start_while_a_node_has_the_room_or_one_is_on_its_way():
    workers = [worker(0), worker(1), stopped(5)]
    pods = full("n0") + busy("n1", 3)
    assert plan(snapshot(workers, pods), RISING, SPARE, NOW).starts == ()
    starting = [worker(0), worker(1), worker(2, ready=None, launched_ago=10), stopped(5)]
    assert plan(snapshot(starting, full("n0", "n1")), RISING, SPARE, NOW).starts == ()


def test_the_room_is_for_a_pod_of_the_median_size():
    # Requests 250m, 250m, 1500m on n0 and 1500m on n1: the median is 1500m, and the 500m left on
    # n0 or on n1 is not the room; with a median of 250m it would be.
    workers = [worker(0), worker(1), stopped(5)]
    pods = busy("n0", 2, cpu=250) + busy("n0", 1, cpu=1500, prefix="big") + busy("n1", 1, cpu=1500)
    d = plan(snapshot(workers, pods), RISING, SPARE, NOW)
    assert d.starts == ("i-0005",) and any("1500m CPU" in r.detail for r in d.reasons), d.reasons
    smaller = busy("n0", 2, cpu=250) + busy("n0", 1, cpu=1500, prefix="big") + busy("n1", 2, cpu=250, prefix="s")
    assert plan(snapshot(workers, smaller), RISING, SPARE, NOW).starts == ()


def test_outside_the_window_with_an_empty_pool_or_turned_off_nothing_is_started():
    workers = [worker(0), worker(1), stopped(5)]
    pods = full("n0", "n1")
    assert plan(snapshot(workers, pods), ScalingState(last_scale_up=NOW - 1801), SPARE, NOW).starts == ()
    assert plan(snapshot(workers, pods), ScalingState(), SPARE, NOW).starts == ()
    assert plan(snapshot(workers[:2], pods), RISING, SPARE, NOW).action is Action.NONE
    assert plan(snapshot(workers, pods), RISING, SPARE.replace(spare_room_pods=0), NOW).starts == ()
    assert plan(snapshot(workers, pods), RISING, SPARE.replace(ramp_window_s=0), NOW).starts == ()


def test_pending_pods_are_served_by_the_scale_up_not_the_spare_room():
    workers = [worker(0), worker(1), stopped(5), stopped(6)]
    d = plan(snapshot(workers, [*full("n0", "n1"), pending("p0")]), RISING, SPARE, NOW)
    assert d.action is Action.SCALE_UP and ReasonCode.SPARE_ROOM not in d.codes
    assert d.state.last_scale_up == NOW


def test_no_start_at_max_nodes():
    workers = [worker(0), worker(1), stopped(5)]
    assert plan(snapshot(workers, full("n0", "n1")), RISING, SPARE.replace(max_nodes=2), NOW).starts == ()


# -- scale-down keeps the room ----------------------------------------------------------------------

EARLY = SPARE.replace(scale_down_unneeded_time_s=0, scale_down_delay_after_add_s=0, warm_pool_unneeded_time_s=0)


def test_an_unneeded_worker_whose_removal_would_take_the_room_stays():
    # n0 full, n1 one pod, n2 three: n1's pod would fill n2, so the room goes with n1.
    workers = [worker(0), worker(1), worker(2), stopped(5)]
    pods = full("n0") + busy("n1", 1) + busy("n2", 3)
    d = plan(snapshot(workers, pods), RISING, EARLY, NOW)
    assert d.remove == () and d.nodes["n1"].reason == "spare_room", d.nodes
    assert "500m CPU, 512Mi" in d.nodes["n1"].detail
    assert any(r.code is ReasonCode.SPARE_ROOM and r.detail.startswith("n1 kept") for r in d.reasons), d.reasons
    later = plan(snapshot(workers, pods), ScalingState(last_scale_up=NOW - 1801), EARLY, NOW)
    assert later.remove == ("n1",), later.reasons


def test_a_worker_whose_removal_leaves_the_room_goes():
    workers = [worker(0), worker(1), worker(2), stopped(5)]
    d = plan(snapshot(workers, full("n0") + busy("n1", 1)), RISING, EARLY, NOW)
    assert d.remove == ("n2",), d.reasons


def test_when_the_room_is_already_missing_no_worker_goes_and_each_says_why():
    workers = [worker(0), worker(1), worker(2, ready=None, launched_ago=10), stopped(5)]
    pods = full("n0") + busy("n1", 4)
    d = plan(snapshot(workers, pods), RISING, EARLY.replace(min_nodes=0), NOW)
    assert d.remove == () and ReasonCode.SPARE_ROOM in d.codes, d.reasons
    assert {v.reason for v in d.nodes.values()} == {"spare_room"}, d.nodes


def test_an_operators_scale_down_is_not_held_by_the_spare_room():
    workers = [worker(0), worker(1), stopped(5)]
    pods = busy("n0", 1) + busy("n1", 1)
    d = plan(snapshot(workers, pods), RISING, EARLY, NOW, Intent(IntentKind.SCALE_DOWN, 1, "operator"))
    assert len(d.remove) == 1, d.reasons


def test_the_spare_pods_never_leave_the_plan():
    workers = [worker(0), worker(1), stopped(5)]
    d = plan(snapshot(workers, full("n0", "n1")), RISING, SPARE, NOW)
    assert SPARE_NAMESPACE not in repr(d.unhelpable) and not d.remove


def test_the_room_is_held_while_the_pool_is_on_even_with_no_stopped_worker_left():
    # The worker started for the room must not be stopped two minutes later, and started again.
    workers = [worker(0), worker(1), worker(2)]
    pods = full("n0") + busy("n1", 1) + busy("n2", 3)
    d = plan(snapshot(workers, pods), RISING, EARLY, NOW)
    assert d.remove == () and d.nodes["n1"].reason == "spare_room", d.nodes
    off = plan(snapshot(workers, pods), RISING, EARLY.replace(warm_pool_size=0), NOW)
    assert off.remove == ("n1",), off.reasons
