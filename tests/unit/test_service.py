"""The cycle under the lease and the GitOps gate, as the Lambda runs it."""

from __future__ import annotations

from dataclasses import replace

import pytest

from autoscaler.config import Settings
from autoscaler.events import AlarmChange, Manual, Tick
from autoscaler.model import Action, Drain, Intent, IntentKind, IntentRecord, ReasonCode, ScalingState
from autoscaler.ports import GateAnswer
from autoscaler.service import INTENT_MEMORY_S, LeaseBusy, Wiring, handle, run_cycle
from builders import NOW, busy, pending, worker
from fakes import FakeCluster, FakeFleet, MemoryLease, ports

S = Settings(warm_pool_size=0)
"""Removed workers are terminated: the warm pool's stops have their own tests (test_warm_pool)."""
HELD = GateAnswer(
    True, ({"kind": "Kustomization", "namespace": "flux-system", "name": "apps", "state": "in_progress"},)
)
OPEN = GateAnswer(False)


def quiet_world():
    """Four workers, one of them empty and unneeded for long enough to go."""
    ws = [worker(i) for i in range(4)]
    fleet, cluster = FakeFleet([w[0] for w in ws]), FakeCluster([w[1] for w in ws], busy("n0", 1) + busy("n1", 1))
    p = ports(fleet, cluster)
    p.state.save(ScalingState(unneeded_since={"n2": NOW - 700, "n3": NOW - 700}))
    return p


def wiring(p, lease=None, gate=None, clock=NOW):
    slept = []
    w = Wiring(p, lease or MemoryLease(), gate, sleep=slept.append, clock=lambda: clock + len(slept))
    return w, slept


def test_a_tick_runs_one_cycle_under_the_lease_and_releases_it():
    lease = MemoryLease()
    w, _ = wiring(quiet_world(), lease)
    report = handle(Tick("e1"), w, S, "tok")
    assert report.status == "acted" and report.cycle.decision.action is Action.SCALE_DOWN
    assert lease.calls == [("acquire", "tok"), ("release", "tok")] and lease.owner is None


def test_a_tick_that_finds_the_lease_taken_does_nothing_and_says_so():
    p = quiet_world()
    w, slept = wiring(p, MemoryLease(owner="other", expires=NOW + 100))
    report = handle(Tick("e1"), w, S, "tok")
    assert report.status == "lease_taken" and slept == []
    assert p.fleet.calls == [] and p.cluster.calls == []


def test_a_manual_event_waits_for_the_lease_then_asks_to_be_retried():
    p = quiet_world()
    lease = MemoryLease(owner="other", expires=NOW + 100)
    w, slept = wiring(p, lease)
    with pytest.raises(LeaseBusy):
        handle(Manual("e1", Intent(IntentKind.SCALE_UP, 1, "test")), w, S, "tok")
    assert len(slept) == 10 and p.fleet.calls == []
    assert lease.owner == "other", "a lease is never released by someone else"


def test_a_manual_event_gets_the_lease_once_it_expires():
    p = quiet_world()
    # Held through its expiry second NOW + 2 (the lease contract): free at the third one-second wait.
    w, slept = wiring(p, MemoryLease(owner="other", expires=NOW + 2))
    report = handle(Manual("e1", Intent(IntentKind.SCALE_UP, 1, "test")), w, S, "tok")
    assert report.status == "acted" and len(slept) == 3
    assert [c[0] for c in p.fleet.calls] == ["launch"]


def test_the_lease_is_released_when_the_cycle_fails():
    class Broken(FakeCluster):
        def list_nodes(self):
            raise ConnectionError("API server down")

    lease = MemoryLease()
    w, _ = wiring(ports(FakeFleet(), Broken()), lease)
    with pytest.raises(ConnectionError):
        handle(Tick("e1"), w, S, "tok")
    assert lease.owner is None


@pytest.mark.parametrize("state", ["OK", "INSUFFICIENT_DATA"])
def test_only_the_alarm_state_acts(state):
    p = quiet_world()
    report = handle(AlarmChange("e1", "high-cpu", state, None), wiring(p)[0], S, "tok")
    assert report.status == "ignored" and p.fleet.calls == []


def test_a_mapped_alarm_scales_up_ignoring_the_cool_down():
    p = quiet_world()
    p.state.save(p.state.load().__class__(version=1, last_scale_up=NOW - 10))
    alarm = AlarmChange("e1", "high-cpu", "ALARM", Intent(IntentKind.SCALE_UP, 2, "alarm high-cpu"))
    report = handle(alarm, wiring(p)[0], S, "tok")
    assert report.cycle.decision.launch_count == 2


def test_the_gate_holds_scale_down_and_says_why():
    p = quiet_world()
    result = run_cycle(p, S, NOW, "tok", gate=lambda now: HELD)
    assert result.decision.action is Action.NONE and result.decision.remove == ()
    assert ReasonCode.GITOPS_HOLD in result.decision.codes
    assert "Kustomization flux-system/apps in_progress" in result.decision.reasons[-1].detail
    assert p.fleet.calls == [] and p.cluster.calls == []
    assert p.state.load().gate_held_since == NOW


def test_an_unreadable_gate_holds_until_the_cap_then_scale_down_resumes():
    p = quiet_world()
    unknown = GateAnswer(True, unknown="gate unreadable: ConnectionError")
    first = run_cycle(p, S, NOW, "tok", gate=lambda now: unknown)
    assert first.decision.action is Action.NONE
    later = run_cycle(p, S, NOW + S.gate_max_hold_s, "tok2", gate=lambda now: unknown)
    assert later.decision.action is Action.SCALE_DOWN
    assert ReasonCode.GITOPS_HOLD_CAPPED in later.decision.codes


def test_an_open_gate_lets_scale_down_through_and_resets_the_hold_clock():
    p = quiet_world()
    run_cycle(p, S, NOW, "tok", gate=lambda now: HELD)
    result = run_cycle(p, S, NOW + 60, "tok2", gate=lambda now: OPEN)
    assert result.decision.action is Action.SCALE_DOWN
    assert result.state.gate_held_since is None


def test_the_gate_is_not_asked_when_nothing_would_be_removed():
    asked = []
    ws = [worker(i) for i in range(3)]
    p = ports(FakeFleet([w[0] for w in ws]), FakeCluster([w[1] for w in ws], [pending("p", cpu=1500)]))
    run_cycle(p, S, NOW, "tok", gate=lambda now: asked.append(now) or OPEN)
    assert asked == []


def test_dry_run_under_the_lease_changes_nothing():
    p = quiet_world()
    report = handle(Tick("e1"), wiring(p)[0], S.replace(dry_run=True), "tok")
    assert report.cycle.decision.action is Action.SCALE_DOWN
    assert p.fleet.calls == [] and p.cluster.calls == []


# -- intents are applied once, however often their event is delivered --------------------------------


class Crash(Exception):
    """The invocation dies here (a DynamoDB or Kubernetes error, or the Lambda's timeout)."""


def crash_once(obj, name, *, after):
    """Make `obj.name` raise Crash on its first call: after doing its work, or instead of it."""
    real = getattr(obj, name)

    def once(*args, **kwargs):
        setattr(obj, name, real)
        if after:
            real(*args, **kwargs)
        raise Crash(name)

    setattr(obj, name, once)


def crash_on_the_save_after_the_launch(p, lease):
    """DynamoDB refuses the save that records the launch (the instance is running)."""
    real = p.state.save

    def save(state):
        if state.launches and not p.state.load().launches:
            p.state.save = real
            raise Crash("save")
        return real(state)

    p.state.save = save


def crash_in_a_drain(p, lease):
    """A drain under way meets a Kubernetes error after the launch."""
    p.state.save(replace(p.state.load(), drains=(Drain("n1", "i-0001", NOW - 30, NOW + 270),)))
    crash_once(p.cluster, "cordon", after=False)


def time_out_after_the_launch(p, lease):
    """The Lambda times out as the launch returns: no finally runs, the lease stays taken."""
    real_release = lease.release
    crash_once(p.fleet, "launch", after=True)

    def release(owner):
        lease.release = real_release

    lease.release = release


INTENTS = [
    pytest.param(Manual("e1", Intent(IntentKind.SCALE_UP, 1, "manual")), id="manual"),
    pytest.param(AlarmChange("e1", "high-cpu", "ALARM", Intent(IntentKind.SCALE_UP, 1, "alarm high-cpu")), id="alarm"),
]


@pytest.mark.parametrize("request_", INTENTS)
@pytest.mark.parametrize(
    "fault", [crash_on_the_save_after_the_launch, crash_in_a_drain, time_out_after_the_launch], ids=lambda f: f.__name__
)
def test_an_intent_delivered_again_after_its_cycle_failed_launches_once(request_, fault):
    p = quiet_world()
    lease = MemoryLease()
    before = {i.id for i in p.fleet.instances}
    fault(p, lease)
    with pytest.raises(Crash):
        handle(request_, wiring(p, lease)[0], S, "e1")
    # Delivered again once the lease (left behind by a timeout) has expired.
    report = handle(request_, wiring(p, lease, clock=NOW + S.lease_duration_s + 1)[0], S, "e1")
    added = [i.id for i in p.fleet.instances if i.id not in before]
    assert len(added) == 1
    assert {(c[1], c[3]) for c in p.fleet.calls if c[0] == "launch"} == {("eu-west-1a", "e1:eu-west-1a")}
    assert [x.instance_id for x in report.cycle.state.launches] == added
    assert report.cycle.state.intents["e1"] == IntentRecord(NOW, {}, {})


def test_an_intent_delivered_again_after_it_was_applied_does_nothing_again():
    p = quiet_world()
    scale_up = Manual("e1", Intent(IntentKind.SCALE_UP, 2, "manual"))
    handle(scale_up, wiring(p)[0], S, "e1")
    report = handle(scale_up, wiring(p, clock=NOW + 60)[0], S, "e1")
    assert [c[0] for c in p.fleet.calls] == ["launch", "launch"], "two zones, launched into once"
    assert report.cycle.decision.launches == {}
    assert report.cycle.decision.reasons[-1].detail == "event e1 delivered again: nothing left to do"


def test_a_pause_delivered_again_after_the_resume_does_not_pause_again():
    p = quiet_world()
    pause = Manual("e1", Intent(IntentKind.PAUSE, 0, "manual"))
    handle(pause, wiring(p)[0], S, "e1")
    handle(Manual("e2", Intent(IntentKind.RESUME, 0, "manual")), wiring(p, clock=NOW + 60)[0], S, "e2")
    handle(pause, wiring(p, clock=NOW + 120)[0], S, "e1")
    assert p.state.load().paused is False


def test_a_scale_down_delivered_again_drains_the_nodes_it_chose_and_no_others():
    p = quiet_world()
    crash_once(p.cluster, "cordon", after=False)
    scale_down = Manual("e1", Intent(IntentKind.SCALE_DOWN, 1, "manual"))
    with pytest.raises(Crash):
        handle(scale_down, wiring(p)[0], S, "e1")
    chosen = [d.node for d in p.state.load().drains]
    handle(scale_down, wiring(p, clock=NOW + 60)[0], S, "e1")
    assert len(chosen) == 1 and [c for c in p.cluster.calls if c[0] == "delete_node"] == [("delete_node", chosen[0])]
    assert len([i for i in p.fleet.instances if i.alive]) == 3


def test_an_intent_is_remembered_for_a_day():
    p = quiet_world()
    p.state.save(
        replace(p.state.load(), intents={"old": IntentRecord(NOW - INTENT_MEMORY_S), "new": IntentRecord(NOW)})
    )
    result = run_cycle(p, S, NOW, "tick")
    assert set(result.state.intents) == {"new"}


def test_an_intent_delivered_again_carries_on_no_further_than_max_nodes_allows_now():
    p = quiet_world()
    at_five = S.replace(max_nodes=5)
    crash_once(p.fleet, "launch", after=False)
    with pytest.raises(Crash):
        handle(Manual("e1", Intent(IntentKind.SCALE_UP, 1, "manual")), wiring(p)[0], at_five, "e1")
    handle(Manual("e2", Intent(IntentKind.SCALE_UP, 1, "manual")), wiring(p, clock=NOW + 60)[0], at_five, "e2")
    report = handle(
        Manual("e1", Intent(IntentKind.SCALE_UP, 1, "manual")), wiring(p, clock=NOW + 120)[0], at_five, "e1"
    )
    assert report.cycle.decision.launches == {} and len([i for i in p.fleet.instances if i.alive]) == 5
