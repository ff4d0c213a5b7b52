"""Spot in the simulator: spot launches at a share, interruptions at a seeded rate, the warning
delivered to node-fleet only, the instance gone after the notice, and the pending pod-seconds the
interruptions cost, on a line of their own."""

from __future__ import annotations

import pytest

from autoscaler.config import Settings
from node_fleet.cli import main
from node_fleet.sim.cluster import ClusterModel, VirtualCluster
from node_fleet.sim.engine import replay
from node_fleet.sim.ports import Clock, SimFleet
from node_fleet.sim.record import RunRecord
from node_fleet.sim.report import score, spot_lines
from node_fleet.sim.spot import SpotModel
from node_fleet.sim.workload import PodSpec, Workload

# Four base pods on the two booted workers, then ten that need new (spot) workers for an hour and a half.
BUSY = Workload(
    "busy",
    tuple(PodSpec(f"base{i}", 0, None, 500, 512) for i in range(4))
    + tuple(PodSpec(f"sale{i}", 300, 6000, 1000, 1024) for i in range(10)),
    horizon_s=7200,
)
STORMY = SpotModel(share=1.0, interruptions_per_hour=2.0, seed=3)


def record() -> RunRecord:
    return RunRecord("p", "w", 3600, 10, 60, 2000, 7680, 1)


def test_a_launch_asks_its_share_as_spot_and_the_fleet_lists_it_so():
    vc = VirtualCluster(Workload("w", (), 3600), ClusterModel(spot=SpotModel(share=0.5)), record())
    clock = Clock()
    ids = SimFleet(vc, clock).launch("sim-a", 3, "t-1").instance_ids
    assert [vc.lifecycle(i) for i in ids] == ["spot", "spot", "on-demand"]  # 1.5 rounds half up
    assert sorted(i.lifecycle for i in SimFleet(vc, clock).list_workers()) == ["on-demand", "spot", "spot"]


def test_a_warned_spot_worker_runs_out_its_two_minute_notice_then_is_gone():
    vc = VirtualCluster(Workload("w", (), 3600), ClusterModel(spot=SpotModel(1.0, 1e9)), record())
    (instance_id,) = SimFleet(vc, Clock()).launch("sim-a", 1, "t-1").instance_ids
    vc.step(0.0)
    vc.step(30.0)  # running by now (5 to 17 s), and warned: at 1e9 an hour, surely
    assert vc.spot.new_warnings == [instance_id] and vc.record.spot_interruptions == 1
    vc.step(149.0)
    assert vc.instances[instance_id].terminated_at is None
    vc.step(150.0)
    assert vc.instances[instance_id].terminated_at == 150.0 and vc.record.actions[-1].kind == "launch"


def test_without_a_rate_no_spot_worker_is_ever_taken_back():
    run = replay(BUSY, "ca-60s", Settings(), spot=SpotModel(share=1.0))
    assert run.spot_interruptions == 0 and run.interruption_pending_pod_s == 0
    assert any(i.lifecycle == "spot" for i in run.instances)
    assert spot_lines([score(run)]) and all("interruptions" not in line for line in spot_lines([score(run)]))


def test_a_warned_spot_worker_is_gone_when_its_notice_ends_and_the_same_seed_replays_the_same():
    runs = [replay(BUSY, "ca-60s", Settings(), spot=STORMY) for _ in range(2)]
    assert runs[0].spot_interruptions > 0
    assert [(i.instance_id, i.terminated_at) for i in runs[0].instances] == [
        (i.instance_id, i.terminated_at) for i in runs[1].instances
    ]
    # ca-60s hears no warning: a spot worker it never removed ends when EC2 takes it back, which no
    # scale action of its own records; the pods it held waited for capacity again.
    terminations = sum(a.count for a in runs[0].actions if a.kind == "terminate")
    ended = sum(1 for i in runs[0].instances if i.terminated_at is not None)
    assert ended > terminations
    assert runs[0].interruption_pending_pod_s > 0


def test_node_fleet_hears_each_warning_and_drains_before_the_notice_ends():
    quiet = replay(BUSY, "node-fleet", Settings(), spot=SpotModel(share=1.0))
    stormy = replay(BUSY, "node-fleet", Settings(), spot=STORMY)
    assert stormy.spot_interruptions > 0
    # One invocation per warning on top of the ticks (the ticks are the same in number).
    assert stormy.lambda_invocations == quiet.lambda_invocations + stormy.spot_interruptions
    # It terminates warned workers itself once drained, within the notice, so its terminations
    # outnumber ca-60s's, which only sees the instances go.
    ca = replay(BUSY, "ca-60s", Settings(), spot=STORMY)
    own = sum(a.count for a in stormy.actions if a.kind == "terminate")
    assert own > sum(a.count for a in ca.actions if a.kind == "terminate")
    line = next(line for line in spot_lines([score(stormy)]) if line.startswith("spot interruptions:"))
    assert f"node-fleet {stormy.spot_interruptions} warned" in line


@pytest.mark.parametrize(
    ("share", "rate", "message"),
    [(1.5, 0.0, "spot share must be 0..1"), (0.5, -1.0, "per instance-hour must be >= 0")],
)
def test_bad_spot_options_name_what_is_wrong(share, rate, message):
    with pytest.raises(ValueError, match=message):
        SpotModel(share, rate)


def test_simulate_reports_the_interruptions_on_their_own_line(capsys):
    code = main(
        [
            "simulate",
            "--scenario",
            "flash-sale",
            "--policy",
            "node-fleet",
            "--spot-share",
            "1",
            "--spot-interruptions",
            "3",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "spot: node-fleet billed $" in out
    assert "spot interruptions: node-fleet " in out and "pending pod-s" in out
