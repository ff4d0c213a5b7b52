"""Acting on decisions, drains that span cycles, and cycles that die part-way."""

from __future__ import annotations

from dataclasses import replace

import pytest

from autoscaler.actuator import act
from autoscaler.config import Settings
from autoscaler.model import Action, Decision, Drain, DrainPhase, InstanceState, ScalingState
from autoscaler.service import observe, run_cycle
from builders import NOW, busy, pending, pod, worker
from fakes import FakeCluster, FakeFleet, FakeMetrics, ports
from node_fleet.sim.ports import MemoryStateStore

S = Settings()


def world(n=3, pods=(), cordoned=()):
    ws = [worker(i, cordoned=f"n{i}" in cordoned) for i in range(n)]
    return FakeFleet([w[0] for w in ws]), FakeCluster([w[1] for w in ws], list(pods))


def step(p, decision, now=NOW, settings=S, may_remove=True, checkpoint=None):
    """One act() on a fresh snapshot, saving through the port like the service does."""
    snap = observe(p, now)
    return act(decision, snap, p, settings, now, "tok", checkpoint or p.state.save, may_remove)


def removing(*names, **kw):
    """A scale-down of the `world` nodes `names`, each matched to its instance as the planner does."""
    return Decision(Action.SCALE_DOWN, remove=names, instances={n: f"i-{int(n[1:]):04d}" for n in names}, **kw)


def carry(p, **kw):
    """A no-op decision carrying the stored state, as the planner hands it on."""
    return Decision(Action.NONE, state=p.state.load(), **kw)


def test_launches_are_recorded_with_their_deadline_and_the_cycle_token():
    fleet, cluster = world()
    p = ports(fleet, cluster)
    state, outcome = step(p, Decision(Action.SCALE_UP, launches={"eu-west-1b": 2}))
    assert fleet.calls == [("launch", "eu-west-1b", 2, "tok:eu-west-1b")]
    assert [(x.instance_id, x.deadline) for x in state.launches] == [
        ("i-new3", NOW + S.max_node_provision_time_s),
        ("i-new4", NOW + S.max_node_provision_time_s),
    ]
    assert outcome.launched == ["i-new3", "i-new4"]
    assert p.state.load() == state


def test_a_retried_cycle_launches_nothing_twice():
    fleet, cluster = world()
    decision = Decision(Action.SCALE_UP, launches={"eu-west-1a": 1})
    step(ports(fleet, cluster), decision)
    step(ports(fleet, cluster), decision)
    assert len([i for i in fleet.list_workers() if i.alive]) == 4


def test_a_launch_that_starts_nothing_backs_off():
    fleet, cluster = world()
    fleet.fail_launches = True
    state, outcome = step(ports(fleet, cluster), Decision(Action.SCALE_UP, launches={"eu-west-1a": 1}))
    assert state.backoff_until == NOW + S.provision_backoff_s
    assert state.last_failure == NOW
    assert outcome.launch_failures == ["t3.large/eu-west-1a: InsufficientInstanceCapacity"]


def test_unjoined_instances_are_terminated_and_orphan_nodes_deleted():
    fleet, cluster = world()
    step(ports(fleet, cluster), Decision(Action.NONE, terminate_unjoined=("i-0001",), delete_nodes=("n1",)))
    assert ("terminate", "i-0001") in fleet.calls
    assert ("delete_node", "n1") in cluster.calls


def test_drain_is_recorded_before_the_cordon():
    fleet, cluster = world(pods=busy("n2", 1))
    p = ports(fleet, cluster)
    seen = []

    def checkpoint(state):
        seen.append((tuple((d.node, d.phase) for d in state.drains), list(cluster.calls)))
        return p.state.save(state)

    step(p, removing("n2"), checkpoint=checkpoint)
    recorded_first = next(calls for drains, calls in seen if drains)
    assert recorded_first == [], "the drain is saved before anything touches the node"


def test_drain_cordons_then_evicts_then_terminates_and_deletes_across_cycles():
    fleet, cluster = world(pods=busy("n2", 2))
    p = ports(fleet, cluster)
    state, _ = step(p, removing("n2"))
    assert cluster.calls[0] == ("cordon", "n2")
    assert [c[0] for c in cluster.calls[1:]] == ["evict", "evict"]
    assert state.drains[0].phase is DrainPhase.EVICTING
    assert not [c for c in fleet.calls if c[0] == "terminate"]
    # Next cycle: the pods are gone, so the instance goes and then the Node object.
    state, outcome = step(p, carry(p), now=NOW + 60)
    assert ("terminate", "i-0002") in fleet.calls
    assert cluster.calls[-1] == ("delete_node", "n2")
    assert state.drains == () and p.state.load().drains == ()
    assert outcome.terminated == ["i-0002"]


def test_an_empty_node_goes_in_one_cycle():
    fleet, cluster = world()
    p = ports(fleet, cluster)
    state, outcome = step(p, removing("n2"))
    assert outcome.terminated == ["i-0002"] and outcome.nodes_deleted == ["n2"]
    assert state.drains == ()


class Died(Exception):
    pass


@pytest.mark.parametrize(
    ("deaths_after", "removed"),
    [
        pytest.param(1, False, id="dies before the drain is recorded: nothing was touched"),
        pytest.param(2, True, id="dies after recording the drain, before the cordon"),
        pytest.param(3, True, id="dies after recording terminating"),
        pytest.param(4, True, id="dies after terminating, before deleting the node"),
    ],
)
def test_a_cycle_that_dies_between_any_two_steps_is_resumed_by_the_next(deaths_after, removed):
    fleet, cluster = world()
    p = ports(fleet, cluster)
    saves = 0

    def dying(state):
        nonlocal saves
        saves += 1
        stored = p.state.save(state)
        if saves == deaths_after:
            raise Died
        return stored

    with pytest.raises(Died):
        step(p, removing("n2"), checkpoint=dying)
    # The next cycle starts from what was stored and finishes (or never started) the job.
    step(p, carry(p), now=NOW + 60)
    assert p.state.load().drains == ()
    alive = [i.id for i in fleet.list_workers() if i.alive]
    assert alive == (["i-0000", "i-0001"] if removed else ["i-0000", "i-0001", "i-0002"])
    assert ("n2" in [n.name for n in cluster.list_nodes()]) is not removed
    assert not [n for n in cluster.list_nodes() if n.cordoned], "nothing is left cordoned"


def test_a_drain_whose_node_was_deleted_meanwhile_terminates_the_instance():
    fleet, cluster = world(pods=busy("n2", 1))
    p = ports(fleet, cluster)
    p.state.save(ScalingState(drains=(Drain("n2", "i-0002", NOW - 30, NOW + 270, DrainPhase.CORDONED),)))
    cluster.nodes = [n for n in cluster.nodes if n.name != "n2"]
    state, _ = step(p, carry(p))
    assert ("cordon", "n2") not in cluster.calls and ("terminate", "i-0002") in fleet.calls
    assert state.drains == ()


def test_a_pdb_that_refuses_eviction_is_retried_then_the_drain_is_undone_at_the_deadline():
    fleet, cluster = world(pods=busy("n2", 1))
    cluster.blocked = {"b-n2-0"}
    p = ports(fleet, cluster)
    _, outcome = step(p, removing("n2"))
    assert outcome.eviction_blocked == 1
    _, outcome = step(p, carry(p), now=NOW + 120)
    assert outcome.eviction_blocked == 1 and p.state.load().drains
    later = NOW + S.drain_timeout_s + 1
    state, outcome = step(p, carry(p), now=later)
    assert outcome.drains_timed_out == ["n2"]
    assert cluster.calls[-1] == ("uncordon", "n2")
    assert state.drains == () and state.last_failure == later
    assert not [c for c in fleet.calls if c[0] == "terminate"]


def test_force_terminates_after_the_deadline_when_the_operator_asked_for_it():
    fleet, cluster = world(pods=busy("n2", 1), cordoned=("n2",))
    cluster.blocked = {"b-n2-0"}
    p = ports(fleet, cluster)
    drain = Drain("n2", "i-0002", NOW - 400, NOW - 100, DrainPhase.EVICTING)
    step(p, Decision(Action.NONE, state=ScalingState(drains=(drain,))), settings=S.replace(drain_force=True))
    assert ("terminate", "i-0002") in fleet.calls


def test_a_pod_that_became_unmovable_stops_the_drain():
    fleet, cluster = world(pods=[*busy("n2", 1), pod("bare", "n2", owner_kind=None)], cordoned=("n2",))
    drain = Drain("n2", "i-0002", NOW - 30, NOW + 270, DrainPhase.EVICTING)
    _, outcome = step(ports(fleet, cluster), Decision(Action.NONE, state=ScalingState(drains=(drain,))))
    assert outcome.drains_timed_out == ["n2"] and ("uncordon", "n2") in cluster.calls
    assert not [c for c in cluster.calls if c[0] == "evict"]


def test_under_a_gitops_hold_drains_wait_but_still_time_out():
    fleet, cluster = world(pods=busy("n2", 1), cordoned=("n2",))
    p = ports(fleet, cluster)
    drain = Drain("n2", "i-0002", NOW - 30, NOW + 270, DrainPhase.EVICTING)
    p.state.save(ScalingState(drains=(drain,)))
    step(p, carry(p), may_remove=False)
    assert not [c for c in cluster.calls if c[0] == "evict"] and not fleet.calls
    step(p, carry(p), now=NOW + 300, may_remove=False)
    assert ("uncordon", "n2") in cluster.calls and p.state.load().drains == ()


def test_run_cycle_scales_up_and_saves_the_state():
    fleet, cluster = world(pods=[pending("p", cpu=1500)])
    p = ports(fleet, cluster)
    result = run_cycle(p, S, NOW, "cycle-1")
    assert result.decision.action is Action.SCALE_UP
    assert result.state.last_scale_up == NOW
    assert p.state.load().launches[0].instance_id == "i-new3"


def test_run_cycle_deletes_the_node_of_a_terminated_worker():
    fleet, cluster = world()
    fleet.terminate("i-0001")
    assert fleet.instances[1].state is InstanceState.TERMINATED
    result = run_cycle(ports(fleet, cluster), S, NOW, "cycle-1")
    assert result.decision.delete_nodes == ("n1",)
    assert ("delete_node", "n1") in cluster.calls


def test_dry_run_decides_but_changes_nothing():
    fleet, cluster = world(pods=[pending("p", cpu=1500)])
    store = MemoryStateStore()
    result = run_cycle(ports(fleet, cluster, FakeMetrics(), store), S.replace(dry_run=True), NOW, "cycle-1")
    assert result.decision.action is Action.SCALE_UP
    assert fleet.calls == [] and cluster.calls == []


# -- pause: node-fleet changes nothing ----------------------------------------------------------------


def test_while_paused_nothing_is_launched_evicted_terminated_or_cleaned_up():
    fleet, cluster = world(pods=busy("n2", 1), cordoned=("n2",))
    p = ports(fleet, cluster)
    drain = Drain("n2", "i-0002", NOW - 30, NOW + 270, DrainPhase.EVICTING)
    paused = ScalingState(paused=True, drains=(drain,))
    decision = removing(
        "n1", launches={"eu-west-1a": 1}, terminate_unjoined=("i-0000",), delete_nodes=("n0",), state=paused
    )
    state, _ = step(p, decision)
    assert fleet.calls == [] and cluster.calls == []
    assert state.drains == (replace(drain, held_since=NOW),)


def test_a_drain_held_by_a_pause_goes_on_after_it_with_its_deadline_moved_by_the_time_held():
    fleet, cluster = world(pods=busy("n2", 1), cordoned=("n2",))
    cluster.blocked = {"b-n2-0"}
    p = ports(fleet, cluster)
    drain = Drain("n2", "i-0002", NOW - 30, NOW + 60, DrainPhase.EVICTING)
    p.state.save(ScalingState(paused=True, drains=(drain,)))
    step(p, carry(p))
    step(p, carry(p), now=NOW + 3600)
    assert cluster.calls == [], "held for an hour, well past the deadline, untouched"
    resumed = replace(p.state.load(), paused=False)
    state, outcome = step(p, Decision(Action.NONE, state=resumed), now=NOW + 3630)
    assert outcome.drains_timed_out == [] and outcome.eviction_blocked == 1
    assert state.drains == (replace(drain, deadline=NOW + 60 + 3630),)
    _, outcome = step(p, carry(p), now=NOW + 3630 + 61)
    assert outcome.drains_timed_out == ["n2"], "the time left when paused runs out after the pause"


def test_while_paused_a_cycle_leaves_an_instance_that_never_joined_alone():
    fleet, cluster = world()
    stray = replace(fleet.instances[0], id="i-stray", launched_at=NOW - 3600)
    fleet.instances.append(stray)
    p = ports(fleet, cluster)
    p.state.save(ScalingState(paused=True))
    run_cycle(p, S, NOW, "cycle-1")
    assert fleet.calls == [] and cluster.calls == []


# -- the state is checked against what is observed ----------------------------------------------------


@pytest.mark.parametrize(
    ("desc", "drain", "cordoned", "pods", "dropped"),
    [
        (
            "an injected terminating record for a busy worker nobody cordoned",
            Drain("n2", "i-0002", NOW - 30, NOW + 270, DrainPhase.TERMINATING),
            (),
            busy("n2", 2),
            "n2: node n2 is not cordoned: given back by hand, or never drained",
        ),
        (
            "a terminating record for a node holding a pod that must not move",
            Drain("n2", "i-0002", NOW - 30, NOW + 270, DrainPhase.TERMINATING),
            ("n2",),
            [pod("bare", "n2", owner_kind=None)],
            "n2: default/bare has no controller",
        ),
        (
            "an evicting record for a node given back by hand",
            Drain("n2", "i-0002", NOW - 30, NOW + 270, DrainPhase.EVICTING),
            (),
            busy("n2", 1),
            "n2: node n2 is not cordoned: given back by hand, or never drained",
        ),
        (
            "a record naming an instance that is not ours",
            Drain("n2", "i-foreign", NOW - 30, NOW + 270, DrainPhase.TERMINATING),
            ("n2",),
            [],
            "n2: instance i-foreign is not a worker of this cluster (its tags are gone, or it no longer exists)",
        ),
        (
            "a record pairing a node with another worker's instance",
            Drain("n2", "i-0001", NOW - 30, NOW + 270, DrainPhase.TERMINATING),
            ("n2",),
            [],
            "n2: node n2 is not matched to instance i-0001 without ambiguity",
        ),
        (
            "a deleting record for an instance still running",
            Drain("n2", "i-0002", NOW - 30, NOW + 270, DrainPhase.DELETING),
            ("n2",),
            [],
            "n2: instance i-0002 is still running: this drain did not terminate it",
        ),
    ],
)
def test_a_drain_that_does_not_match_what_is_observed_is_dropped_not_acted_on(desc, drain, cordoned, pods, dropped):
    fleet, cluster = world(pods=pods, cordoned=cordoned)
    fleet.foreign = [replace(fleet.instances[0], id="i-foreign")]
    p = ports(fleet, cluster)
    p.state.save(ScalingState(drains=(drain,)))
    state, outcome = step(p, carry(p))
    assert outcome.drains_dropped == [dropped], desc
    assert state.drains == () and p.state.load().drains == ()
    assert fleet.calls == [], desc
    assert {c[0] for c in cluster.calls} <= {"uncordon"}, desc
    assert not [n for n in cluster.nodes if n.cordoned and n.name != "n2"]


def test_a_dropped_drain_gives_its_cordoned_node_back_unless_it_is_another_instances():
    fleet, cluster = world(cordoned=("n2",))
    p = ports(fleet, cluster)
    p.state.save(ScalingState(drains=(Drain("n2", "i-0001", NOW - 30, NOW + 270, DrainPhase.EVICTING),)))
    step(p, carry(p))
    assert cluster.calls == [], "n2 is i-0002's: this drain has no business with it"
    p.state.save(replace(p.state.load(), drains=(Drain("n2", "i-0002", NOW, NOW + 270, DrainPhase.TERMINATING),)))
    cluster.pods = [pod("pinned", "n2", annotations={"karpenter.sh/do-not-disrupt": "true"})]
    step(p, carry(p))
    assert cluster.calls == [("uncordon", "n2")] and fleet.calls == []


def test_pods_that_stay_with_their_node_do_not_hold_its_termination():
    stays = [
        pod("ds", "n2", namespace="kube-system", owner_kind="DaemonSet"),
        pod("static", "n2", namespace="kube-system", owner_kind="Node", mirror=True),
    ]
    fleet, cluster = world(pods=stays, cordoned=("n2",))
    p = ports(fleet, cluster)
    p.state.save(ScalingState(drains=(Drain("n2", "i-0002", NOW - 30, NOW + 270, DrainPhase.TERMINATING),)))
    _, outcome = step(p, carry(p))
    assert outcome.terminated == ["i-0002"] and not [c for c in cluster.calls if c[0] == "evict"]


def test_force_never_terminates_a_node_holding_a_pod_that_must_not_move():
    fleet, cluster = world(pods=[pod("bare", "n2", owner_kind=None)], cordoned=("n2",))
    p = ports(fleet, cluster)
    drain = Drain("n2", "i-0002", NOW - 400, NOW - 100, DrainPhase.EVICTING)
    _, outcome = step(
        p, Decision(Action.NONE, state=ScalingState(drains=(drain,))), settings=S.replace(drain_force=True)
    )
    assert fleet.calls == [] and outcome.drains_timed_out == ["n2"]


def test_a_scale_down_starts_no_drain_for_a_node_not_matched_to_a_running_worker_of_ours():
    fleet, cluster = world()
    p = ports(fleet, cluster)
    decision = Decision(Action.SCALE_DOWN, remove=("n1", "n2"), instances={"n1": "i-0002", "n2": "i-other"})
    state, _ = step(p, decision)
    assert state.drains == () and fleet.calls == [] and cluster.calls == []


# -- a worker whose tags vanish mid-drain -------------------------------------------------------------


def test_a_worker_whose_tags_vanish_as_it_is_terminated_is_given_back_and_its_drain_dropped():
    fleet, cluster = world(cordoned=("n2",))
    fleet.foreign = [fleet.instances[2]]  # still listed by the snapshot, refused by terminate
    p = ports(fleet, cluster)
    p.state.save(ScalingState(drains=(Drain("n2", "i-0002", NOW - 30, NOW + 270, DrainPhase.EVICTING),)))
    state, outcome = step(p, carry(p))
    assert fleet.calls == [("terminate", "i-0002")]
    assert cluster.calls == [("uncordon", "n2")] and state.drains == ()
    assert outcome.drains_dropped == ["n2: refusing to terminate i-0002: not a worker of this cluster"]
    _, outcome = step(p, carry(p), now=NOW + 60)
    assert outcome.drains_dropped == [] and fleet.calls == [("terminate", "i-0002")], "not again, every cycle"


def test_a_worker_that_leaves_the_fleets_list_mid_drain_is_given_back_and_its_drain_dropped():
    fleet, cluster = world(pods=busy("n2", 1), cordoned=("n2",))
    fleet.foreign, fleet.instances = [fleet.instances[2]], fleet.instances[:2]
    p = ports(fleet, cluster)
    p.state.save(ScalingState(drains=(Drain("n2", "i-0002", NOW - 30, NOW + 270, DrainPhase.EVICTING),)))
    state, outcome = step(p, carry(p))
    assert cluster.calls == [("uncordon", "n2")] and fleet.calls == [] and state.drains == ()
    assert outcome.drains_dropped == [
        "n2: instance i-0002 is not a worker of this cluster (its tags are gone, or it no longer exists)"
    ]
