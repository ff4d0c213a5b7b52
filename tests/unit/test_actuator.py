"""Acting on decisions, and drains that span cycles."""

from __future__ import annotations

from builders import NOW, busy, pending, pod, worker
from fakes import FakeCluster, FakeFleet, FakeMetrics, ports

from autoscaler.actuator import act
from autoscaler.config import Settings
from autoscaler.model import Action, Decision, Drain, DrainPhase, ScalingState
from autoscaler.service import run_cycle

S = Settings()


def world(n=3, pods=()):
    ws = [worker(i) for i in range(n)]
    return FakeFleet([w[0] for w in ws]), FakeCluster([w[1] for w in ws], list(pods))


def test_launches_are_recorded_with_their_deadline_and_the_cycle_token():
    fleet, cluster = world()
    decision = Decision(Action.SCALE_UP, launches={"eu-west-1b": 2})
    state, outcome = act(decision, ports(fleet, cluster), S, NOW, token="cycle-1")
    assert fleet.calls == [("launch", "eu-west-1b", 2, "cycle-1:eu-west-1b")]
    assert [(x.instance_id, x.deadline) for x in state.launches] == [
        ("i-new3", NOW + S.max_node_provision_time_s),
        ("i-new4", NOW + S.max_node_provision_time_s),
    ]
    assert outcome.launched == ["i-new3", "i-new4"]


def test_a_retried_cycle_launches_nothing_twice():
    fleet, cluster = world()
    decision = Decision(Action.SCALE_UP, launches={"eu-west-1a": 1})
    act(decision, ports(fleet, cluster), S, NOW, token="cycle-1")
    act(decision, ports(fleet, cluster), S, NOW, token="cycle-1")
    assert len(fleet.list_workers()) == 4


def test_a_launch_that_starts_nothing_backs_off():
    fleet, cluster = world()
    fleet.fail_launches = True
    state, outcome = act(Decision(Action.SCALE_UP, launches={"eu-west-1a": 1}), ports(fleet, cluster), S, NOW, "t")
    assert state.backoff_until == NOW + S.provision_backoff_s
    assert state.last_failure == NOW
    assert outcome.launch_failures == ["t3.large/eu-west-1a: InsufficientInstanceCapacity"]


def test_unjoined_instances_are_terminated():
    fleet, cluster = world()
    act(Decision(Action.NONE, terminate_unjoined=("i-0001",)), ports(fleet, cluster), S, NOW, "t")
    assert ("terminate", "i-0001") in fleet.calls


def test_drain_cordons_then_evicts_then_terminates_and_deletes_across_cycles():
    fleet, cluster = world(pods=busy("n2", 2))
    p = ports(fleet, cluster)
    state, _ = act(Decision(Action.SCALE_DOWN, remove=("n2",)), p, S, NOW, "t1")
    assert cluster.calls[:1] == [("cordon", "n2")]
    assert [c[0] for c in cluster.calls[1:]] == ["evict", "evict"]
    assert state.drains[0].phase is DrainPhase.EVICTING
    assert not [c for c in fleet.calls if c[0] == "terminate"]
    # Next cycle: the pods are gone, so the instance goes and then the Node object.
    state, outcome = act(Decision(Action.NONE, state=state), p, S, NOW + 60, "t2")
    assert ("terminate", "i-0002") in fleet.calls
    assert cluster.calls[-1] == ("delete_node", "n2")
    assert state.drains == ()
    assert outcome.terminated == ["i-0002"]


def test_a_pdb_that_refuses_eviction_is_retried_then_the_drain_is_undone_at_the_deadline():
    fleet, cluster = world(pods=busy("n2", 1))
    cluster.blocked = {"b-n2-0"}
    p = ports(fleet, cluster)
    state, outcome = act(Decision(Action.SCALE_DOWN, remove=("n2",)), p, S, NOW, "t1")
    assert outcome.eviction_blocked == 1
    state, outcome = act(Decision(Action.NONE, state=state), p, S, NOW + 120, "t2")
    assert outcome.eviction_blocked == 1 and state.drains
    state, outcome = act(Decision(Action.NONE, state=state), p, S, NOW + S.drain_timeout_s + 1, "t3")
    assert outcome.drains_timed_out == ["n2"]
    assert cluster.calls[-1] == ("uncordon", "n2")
    assert state.drains == () and state.last_failure == NOW + S.drain_timeout_s + 1
    assert not [c for c in fleet.calls if c[0] == "terminate"]


def test_force_terminates_after_the_deadline_when_the_operator_asked_for_it():
    fleet, cluster = world(pods=busy("n2", 1))
    cluster.blocked = {"b-n2-0"}
    drain = Drain("n2", "i-0002", NOW - 400, NOW - 100, DrainPhase.EVICTING)
    act(
        Decision(Action.NONE, state=ScalingState(drains=(drain,))),
        ports(fleet, cluster),
        S.replace(drain_force=True),
        NOW,
        "t",
    )
    assert ("terminate", "i-0002") in fleet.calls


def test_a_pod_that_became_unmovable_stops_the_drain():
    fleet, cluster = world(pods=[*busy("n2", 1), pod("bare", "n2", owner_kind=None)])
    drain = Drain("n2", "i-0002", NOW - 30, NOW + 270, DrainPhase.EVICTING)
    _, outcome = act(Decision(Action.NONE, state=ScalingState(drains=(drain,))), ports(fleet, cluster), S, NOW, "t")
    assert outcome.drains_timed_out == ["n2"] and ("uncordon", "n2") in cluster.calls
    assert not [c for c in cluster.calls if c[0] == "evict"]


def test_run_cycle_scales_up_and_saves_the_state():
    fleet, cluster = world(pods=[pending("p", cpu=1500)])
    p = ports(fleet, cluster)
    result = run_cycle(p, S, NOW, "cycle-1")
    assert result.decision.action is Action.SCALE_UP
    assert result.state.version == 1 and result.state.last_scale_up == NOW
    assert p.state.load().launches[0].instance_id == "i-new3"


def test_dry_run_decides_but_changes_nothing():
    fleet, cluster = world(pods=[pending("p", cpu=1500)])
    result = run_cycle(ports(fleet, cluster, FakeMetrics()), S.replace(dry_run=True), NOW, "cycle-1")
    assert result.decision.action is Action.SCALE_UP
    assert fleet.calls == [] and cluster.calls == []
