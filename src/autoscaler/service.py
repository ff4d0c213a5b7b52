"""One scaling cycle: observe -> plan -> act -> record, over whatever ports it is given."""

from __future__ import annotations

from dataclasses import dataclass

from autoscaler.actuator import Outcome, act
from autoscaler.config import Settings
from autoscaler.model import ClusterSnapshot, Decision, ScalingState
from autoscaler.planner import plan
from autoscaler.ports import Ports


@dataclass(frozen=True, slots=True)
class CycleResult:
    snapshot: ClusterSnapshot
    decision: Decision
    outcome: Outcome
    state: ScalingState


def observe(ports: Ports, now: float) -> ClusterSnapshot:
    return ClusterSnapshot(
        nodes=tuple(ports.cluster.list_nodes()),
        pods=tuple(ports.cluster.list_pods()),
        instances=tuple(ports.fleet.list_workers()),
        metrics=ports.metrics.sample(now),
        zones=tuple(ports.fleet.zones()),
    )


def run_cycle(ports: Ports, settings: Settings, now: float, token: str) -> CycleResult:
    """`token` names this cycle; a retried cycle with the same token launches nothing twice."""
    state = ports.state.load()
    snapshot = observe(ports, now)
    decision = plan(snapshot, state, settings, now)
    if settings.dry_run:
        return CycleResult(snapshot, decision, Outcome(), ports.state.save(decision.state))
    new_state, outcome = act(decision, snapshot, ports, settings, now, token, ports.state.save)
    return CycleResult(snapshot, decision, outcome, new_state)
