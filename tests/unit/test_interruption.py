"""Spot interruption warnings and rebalance recommendations: what is planned, what is done, and
that a duplicate or foreign event changes nothing."""

from __future__ import annotations

import json
import sys
from dataclasses import replace

import pytest

from autoscaler import handler
from autoscaler.config import Settings
from autoscaler.events import RebalanceRecommendation, SpotInterruption
from autoscaler.interruption import NOTICE_S, plan_interruption
from autoscaler.model import Action, Drain, InstanceState, Node, ReasonCode, ScalingState
from autoscaler.ports import GateAnswer
from autoscaler.service import Wiring, handle
from builders import CPU, MEM, NOW, busy, snapshot, worker
from fakes import FakeCluster, FakeFleet, MemoryLease, Recorded, ports
from lambda_context import LambdaContext

SETTINGS = Settings(min_nodes=1, max_nodes=5)
SPOT_ID = "i-0000"
WARNED = NOW - 10
FRESH = ScalingState()
SERVER = Node("server", CPU, MEM, "i-server", "eu-west-1a", control_plane=True)


def spot(i: int, **kw) -> tuple:
    inst, node = worker(i, **kw)
    return replace(inst, lifecycle="spot"), node


def fleet_of(*, spot_worker=None, extra=()) -> list[tuple]:
    return [spot_worker or spot(0), worker(1), worker(2), *extra]


def decide(workers, state=FRESH, settings=SETTINGS, instance_id=SPOT_ID, pods=()):
    snap = snapshot(workers, pods, extra_nodes=(SERVER,))
    return plan_interruption(snap, state, settings, NOW, instance_id, WARNED)


def interrupting(desc: str, decision) -> str:
    return f"{desc}: {[(r.code.value, r.detail) for r in decision.reasons]}"


@pytest.mark.parametrize(
    ("desc", "workers", "state", "settings", "instance_id", "launches", "remove", "code"),
    [
        ("spot worker: replaced in its zone, drained", fleet_of(), ScalingState(), SETTINGS, SPOT_ID,
         {"eu-west-1a": 1}, ("n0",), ReasonCode.SPOT_INTERRUPTION),
        ("at max_nodes: drained, not replaced", fleet_of(), ScalingState(), SETTINGS.replace(max_nodes=3), SPOT_ID,
         {}, ("n0",), ReasonCode.AT_MAX),
        ("backing off: drained, not replaced", fleet_of(), ScalingState(backoff_until=NOW + 60), SETTINGS, SPOT_ID,
         {}, ("n0",), ReasonCode.BACKING_OFF),
        ("already draining as unneeded: no replacement, the drain becomes the interruption's", fleet_of(),
         ScalingState(drains=(Drain("n0", SPOT_ID, NOW - 30, NOW + 270),)), SETTINGS, SPOT_ID,
         {}, ("n0",), ReasonCode.DRAIN_IN_PROGRESS),
        ("launched, not joined yet: replaced, nothing to drain", fleet_of(spot_worker=spot(0, ready=None)),
         ScalingState(), SETTINGS, SPOT_ID, {"eu-west-1a": 1}, (), ReasonCode.SPOT_INTERRUPTION),
        ("on-demand worker: nothing", fleet_of(), ScalingState(), SETTINGS, "i-0001",
         {}, (), ReasonCode.SPOT_INTERRUPTION),
        ("not a worker of ours: nothing", fleet_of(), ScalingState(), SETTINGS, "i-0badc0ffee",
         {}, (), ReasonCode.SPOT_INTERRUPTION),
        ("already drained for an interruption: nothing", fleet_of(),
         ScalingState(drains=(Drain("n0", SPOT_ID, NOW - 30, WARNED + NOTICE_S, interrupted=True),)), SETTINGS,
         SPOT_ID, {}, (), ReasonCode.SPOT_INTERRUPTION),
        ("scaling paused: nothing", fleet_of(), ScalingState(paused=True), SETTINGS, SPOT_ID,
         {}, (), ReasonCode.SPOT_INTERRUPTION),
    ],
)  # fmt: skip
def test_plan(desc, workers, state, settings, instance_id, launches, remove, code):
    decision = decide(workers, state, settings, instance_id)
    assert dict(decision.launches) == launches, interrupting(desc, decision)
    assert decision.remove == remove, interrupting(desc, decision)
    assert decision.interrupted == {n: WARNED + NOTICE_S for n in remove}, desc
    assert code in decision.codes, interrupting(desc, decision)
    assert decision.action is (Action.SCALE_UP if launches else Action.NONE), desc


def test_a_worker_on_the_server_node_is_never_drained():
    server_on_spot = (replace(spot(0)[0]), replace(spot(0)[1], control_plane=True))
    decision = decide(fleet_of(spot_worker=server_on_spot))
    assert decision.remove == () and not decision.launches
    assert "server node" in decision.reasons[-1].detail


def test_the_replacement_is_a_stopped_worker_of_its_zone_when_the_warm_pool_has_one():
    stopped = (replace(worker(3, az="eu-west-1a")[0], state=InstanceState.STOPPED), None)
    decision = decide(fleet_of(extra=(stopped,)))
    assert decision.starts == ("i-0003",) and not decision.launches and decision.remove == ("n0",)


# -- acting, through service.handle with fakes -------------------------------------------------------------


def wiring(workers=None, pods=None, gate=None, state=FRESH):
    workers = workers or fleet_of()
    fleet = FakeFleet([w[0] for w in workers])
    cluster = FakeCluster([w[1] for w in workers if w[1] is not None] + [SERVER], pods or busy("n0", 2))
    p = ports(fleet, cluster)
    p.state.save(state)
    clock = {"now": NOW}
    w = Wiring(p, MemoryLease(), gate=gate, clock=lambda: clock["now"])
    w.clock_at = clock
    return w


def warning(event_id="e-1", instance_id=SPOT_ID):
    return SpotInterruption(event_id, instance_id, "terminate", WARNED)


def test_a_warning_launches_a_replacement_in_the_zone_and_drains_the_node_at_once():
    w = wiring()
    report = handle(warning(), w, SETTINGS, token="e-1")
    assert report.status == "acted"
    assert w.ports.fleet.calls == [("launch", "eu-west-1a", 1, "e-1:eu-west-1a")]
    # Cordoned and both pods evicted in the same cycle: no unneeded time, no cool-down.
    assert w.ports.cluster.calls[:3] == [("cordon", "n0"), ("evict", "b-n0-0"), ("evict", "b-n0-1")]
    (drain,) = w.ports.state.load().drains
    assert drain.interrupted and drain.node == "n0" and drain.deadline == WARNED + NOTICE_S
    assert report.cycle.outcome.launched == ["i-new3"]


@pytest.mark.parametrize("second_id", ["e-1", "e-2"], ids=["same event again", "another event, same instance"])
def test_a_second_delivery_launches_nothing_more_and_starts_no_second_drain(second_id):
    w = wiring(pods=busy("n0", 1))
    w.ports.cluster.blocked = {"b-n0-0"}  # a PDB keeps the pod on: the drain is still under way
    handle(warning(), w, SETTINGS, token="e-1")
    handle(warning(second_id), w, SETTINGS, token=second_id)
    assert [c for c in w.ports.fleet.calls if c[0] == "launch"] == [("launch", "eu-west-1a", 1, "e-1:eu-west-1a")]
    assert w.ports.cluster.calls.count(("cordon", "n0")) == 1
    assert len(w.ports.state.load().drains) == 1


def test_a_warning_for_an_instance_not_ours_or_on_demand_changes_nothing_and_takes_no_lease():
    for instance_id, what in (("i-0badc0ffee", "not a worker of this cluster"), ("i-0001", "a on-demand worker")):
        w = wiring()
        log: list[tuple] = []
        w.ports = replace(w.ports, cluster=Recorded("cluster", w.ports.cluster, log))
        before = w.ports.state.load()
        report = handle(warning(instance_id=instance_id), w, SETTINGS, token="e-1")
        assert report.status == "ignored" and what in report.detail
        assert w.ports.fleet.calls == [] and log == [] and w.lease.calls == []
        assert w.ports.state.load() == before


def test_a_pdb_holds_a_pod_until_the_notice_ends_then_the_instance_goes_with_it():
    w = wiring(pods=busy("n0", 2))
    w.ports.cluster.blocked = {"b-n0-1"}
    handle(warning(), w, SETTINGS, token="e-1")
    assert ("evict", "b-n0-1") in w.ports.cluster.calls and ("terminate", SPOT_ID) not in w.ports.fleet.calls
    w.clock_at["now"] = WARNED + NOTICE_S + 1  # the next tick, past the notice
    handle(warning("tick"), w, SETTINGS, token="tick")
    assert ("terminate", SPOT_ID) in w.ports.fleet.calls and ("delete_node", "n0") in w.ports.cluster.calls
    assert ("uncordon", "n0") not in w.ports.cluster.calls, "an interruption's drain is never undone"
    assert w.ports.state.load().drains == ()


def test_a_gitops_hold_does_not_hold_an_interruptions_drain():
    w = wiring(gate=lambda now: GateAnswer(blocked=True, unknown="flux down"))
    handle(warning(), w, SETTINGS, token="e-1")
    assert ("evict", "b-n0-0") in w.ports.cluster.calls


def test_an_unneeded_drain_of_the_node_becomes_the_interruptions():
    unneeded = Drain("n0", SPOT_ID, NOW - 30, NOW + 270, keep=False)
    w = wiring(state=ScalingState(drains=(unneeded,)))
    handle(warning(), w, SETTINGS, token="e-1")
    (drain,) = w.ports.state.load().drains
    assert drain.interrupted and drain.deadline == WARNED + NOTICE_S
    assert not [c for c in w.ports.fleet.calls if c[0] == "launch"]


def test_a_rebalance_recommendation_is_noted_and_changes_nothing():
    w = wiring()
    report = handle(RebalanceRecommendation("r-1", SPOT_ID), w, SETTINGS, token="r-1")
    assert report.status == "noted" and SPOT_ID in report.detail
    assert w.ports.fleet.calls == [] and w.ports.cluster.calls == [] and w.lease.calls == []
    foreign = handle(RebalanceRecommendation("r-2", "i-0badc0ffee"), w, SETTINGS, token="r-2")
    assert foreign.status == "ignored"


def test_the_handler_counts_the_interruption_logs_it_and_tells_the_operators(monkeypatch, capsys):
    w = wiring()
    notes: list[tuple[str, str]] = []
    w.notify = lambda subject, message: notes.append((subject, message))
    monkeypatch.setattr(handler, "_wiring", w)
    monkeypatch.setattr(handler.logger.registered_handler, "stream", sys.stdout)
    monkeypatch.setenv("MAX_NODES", "5")
    event = {
        "version": "0",
        "id": "3f1c2b7e-9d4a-4c55-8e21-6a0b9f7d2c41",
        "detail-type": "EC2 Spot Instance Interruption Warning",
        "source": "aws.ec2",
        "account": "123456789012",
        "time": "2027-01-15T07:59:50Z",
        "region": "eu-west-1",
        "resources": [],
        "detail": {"instance-id": "i-0000abcd", "instance-action": "terminate"},
    }
    w.ports.fleet.instances[0] = replace(w.ports.fleet.instances[0], id="i-0000abcd")
    w.ports.cluster.nodes[0] = replace(w.ports.cluster.nodes[0], instance_id="i-0000abcd")
    answer = handler.lambda_handler(event, LambdaContext())
    assert answer["status"] == "acted" and answer["launches"] == {"eu-west-1a": 1} and answer["remove"] == ["n0"]
    out = capsys.readouterr().out
    (blob,) = [json.loads(line) for line in out.splitlines() if '"_aws"' in line]
    assert blob["SpotInterruptions"] == [1.0]
    assert "spot interruption warning" in out
    (_, message) = notes[0]
    assert "spot interruption: i-0000abcd (node n0" in message and "draining n0" in message
