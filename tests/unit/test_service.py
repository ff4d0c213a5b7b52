"""The cycle under the lease and the GitOps gate, as the Lambda runs it."""

from __future__ import annotations

import pytest
from builders import NOW, busy, pending, worker
from fakes import FakeCluster, FakeFleet, MemoryLease, ports

from autoscaler.config import Settings
from autoscaler.events import AlarmChange, Manual, Tick
from autoscaler.model import Action, Intent, IntentKind, ReasonCode, ScalingState
from autoscaler.service import LeaseBusy, Wiring, handle, run_cycle
from gitops_hooks.reader import GateAnswer

S = Settings()
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
    w, slept = wiring(p, MemoryLease(owner="other", expires=NOW + 3))
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
