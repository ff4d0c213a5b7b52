"""The simulator: the same core over a virtual cluster, deterministic, honest about its policies."""

from __future__ import annotations

import json

import pytest

from autoscaler.cli import main
from autoscaler.config import Settings
from autoscaler.model import InstanceState
from autoscaler.sim.cluster import Clock, ClusterModel, SimFleet, VirtualCluster
from autoscaler.sim.engine import peak_lower_bound, replay
from autoscaler.sim.policies import POLICY_NAMES
from autoscaler.sim.record import RunRecord
from autoscaler.sim.report import score
from autoscaler.sim.scenarios import scenario
from autoscaler.sim.workload import PodSpec, Workload

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


@pytest.mark.parametrize("policy", POLICY_NAMES)
def test_every_policy_runs_and_serves_the_workload(policy):
    s = score(replay(SPIKE, policy, Settings()))
    assert s.node_hours >= s.lower_bound_node_hours * 0.95
    # Target tracking watches CPU usage only, so pods it never makes room for are its known failure.
    assert s.unbound_pods == 0 or policy == "target-tracking"


def test_static_peak_boots_the_peak_and_never_acts():
    record = replay(SPIKE, "static-peak", Settings())
    assert record.samples[0].ready_nodes == peak_lower_bound(SPIKE, Settings(), 10) == 6
    assert record.actions == []


def test_ca_policies_keep_their_own_tick():
    assert replay(SPIKE, "ca-10s", Settings(), tick_s=60).tick_s == 10
    assert replay(SPIKE, "node-fleet", Settings(), tick_s=30).tick_s == 30


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


def test_simulate_json_names_every_policy(capsys):
    assert main(["simulate", "--scenario", "flash-sale", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out["policies"]) == set(POLICY_NAMES)
    for fields in out["policies"].values():
        for key in (
            "node_hours",
            "lower_bound_node_hours",
            "cost_ratio",
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
    assert main(["gate", "--objects", str(objects)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["blocked"] is True and out["reasons"][0]["name"] == "apps"


@pytest.mark.parametrize("content", ["{not json", '{"kind": "Pod"}', "42"])
def test_gate_command_fails_on_unreadable_input(tmp_path, capsys, content):
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    assert main(["gate", "--objects", str(bad)]) == 1
    assert "node-fleet:" in capsys.readouterr().err
