"""Carries out a Decision through the ports, and moves every drain in progress one step on.

A drain spans several cycles and its progress lives in ScalingState.drains:

    CORDONED -> EVICTING -> TERMINATING -> DELETING -> (gone)

Each step is recorded before the step that depends on it (the drain is saved before the node is
cordoned; TERMINATING before the instance is terminated), and every step is safe to repeat, so a
cycle that dies anywhere leaves a state the next cycle resumes from. A drain past its deadline is
undone (uncordon) unless the operator set `drain_force`; under a GitOps hold drains wait.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from autoscaler.config import Settings
from autoscaler.model import ClusterSnapshot, Decision, Drain, DrainPhase, Launch, Pod, ScalingState
from autoscaler.planner import pod_blocker
from autoscaler.ports import EvictionOutcome, Ports

Checkpoint = Callable[[ScalingState], ScalingState]
"""Persists a state and returns it as stored (with its new version)."""


@dataclass(slots=True)
class Outcome:
    """What acting did, for the cycle's log line and metrics."""

    launched: list[str] = field(default_factory=list)
    launch_failures: list[str] = field(default_factory=list)
    cordoned: list[str] = field(default_factory=list)
    evicted: int = 0
    eviction_blocked: int = 0
    terminated: list[str] = field(default_factory=list)
    nodes_deleted: list[str] = field(default_factory=list)
    drains_timed_out: list[str] = field(default_factory=list)


def act(
    decision: Decision,
    snapshot: ClusterSnapshot,
    ports: Ports,
    settings: Settings,
    now: float,
    token: str,
    checkpoint: Checkpoint,
    may_remove: bool = True,
) -> tuple[ScalingState, Outcome]:
    """Execute `decision` and advance every drain. `snapshot` is what the decision was made on."""
    outcome = Outcome()
    state = checkpoint(decision.state)

    for instance_id in decision.terminate_unjoined:
        ports.fleet.terminate(instance_id)
        outcome.terminated.append(instance_id)
    for name in decision.delete_nodes:
        ports.cluster.delete_node(name)
        outcome.nodes_deleted.append(name)

    for az, count in decision.launches.items():
        result = ports.fleet.launch(az, count, token=f"{token}:{az}")
        outcome.launched.extend(result.instance_ids)
        outcome.launch_failures.extend(result.failures)
        if result.instance_ids:
            # Saved zone by zone: a later zone's failure must not lose what this one started.
            deadline = now + settings.max_node_provision_time_s
            new = tuple(Launch(i, az, now, deadline) for i in result.instance_ids)
            state = checkpoint(replace(state, launches=(*state.launches, *new)))
    if decision.launches and not outcome.launched:
        state = checkpoint(replace(state, last_failure=now, backoff_until=now + settings.provision_backoff_s))

    nodes = {n.name: n for n in snapshot.nodes}
    started = [
        Drain(name, decision.instances.get(name), now, now + settings.drain_timeout_s)
        for name in decision.remove
        if name in nodes
    ]
    if started:
        state = checkpoint(replace(state, drains=(*state.drains, *started)))

    pods_by_node: dict[str, list[Pod]] = defaultdict(list)
    for p in snapshot.pods:
        if p.node is not None and not p.stays:
            pods_by_node[p.node].append(p)
    for drain in state.drains:
        fresh, present = drain in started, drain.node in nodes
        state = _advance(
            drain,
            fresh,
            present,
            pods_by_node[drain.node],
            state,
            ports,
            settings,
            now,
            may_remove,
            checkpoint,
            outcome,
        )
    return state, outcome


def _advance(
    drain: Drain,
    fresh: bool,
    present: bool,
    pods: list[Pod],
    state: ScalingState,
    ports: Ports,
    settings: Settings,
    now: float,
    may_remove: bool,
    checkpoint: Checkpoint,
    outcome: Outcome,
) -> ScalingState:
    """One drain as far as it can go this cycle; returns the state with its new progress."""

    def record(new: Drain | None, **changes: object) -> ScalingState:
        drains = tuple(new if d is drain else d for d in state.drains if new is not None or d is not drain)
        return checkpoint(replace(state, drains=drains, **changes))

    overdue = now > drain.deadline
    if drain.phase in (DrainPhase.CORDONED, DrainPhase.EVICTING) and not present:
        # The Node object is gone (deleted by hand): nothing is left to drain, only the instance.
        if not may_remove:
            return state
        state = record(replace(drain, phase=DrainPhase.TERMINATING))
        drain = next(d for d in state.drains if d.node == drain.node)
    elif drain.phase in (DrainPhase.CORDONED, DrainPhase.EVICTING):
        if fresh or drain.phase is DrainPhase.CORDONED:
            ports.cluster.cordon(drain.node)
            outcome.cordoned.append(drain.node)
        if pods and not (overdue and settings.drain_force):
            # Past the deadline, or a pod became unmovable since the plan: give the node back.
            if overdue or any(pod_blocker(p) for p in pods):
                ports.cluster.uncordon(drain.node)
                outcome.drains_timed_out.append(drain.node)
                return record(None, last_failure=now)
            if may_remove:
                for pod in pods:
                    result = ports.cluster.evict(pod)
                    if result is EvictionOutcome.BLOCKED:
                        outcome.eviction_blocked += 1
                    elif result is EvictionOutcome.EVICTED:
                        outcome.evicted += 1
            return record(replace(drain, phase=DrainPhase.EVICTING)) if drain.phase is DrainPhase.CORDONED else state
        if not may_remove:
            return state
        state = record(replace(drain, phase=DrainPhase.TERMINATING))
        drain = next(d for d in state.drains if d.node == drain.node)
    if drain.phase is DrainPhase.TERMINATING:
        if drain.instance_id:
            ports.fleet.terminate(drain.instance_id)
            outcome.terminated.append(drain.instance_id)
        state = record(replace(drain, phase=DrainPhase.DELETING))
        drain = next(d for d in state.drains if d.node == drain.node)
    ports.cluster.delete_node(drain.node)
    outcome.nodes_deleted.append(drain.node)
    return record(None)
