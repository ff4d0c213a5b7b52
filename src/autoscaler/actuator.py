"""Carries out a Decision through the ports, and moves drains in progress one step further.

A drain spans several cycles: cordoned -> evicting -> drained -> terminated -> Node deleted.
Its progress lives in ScalingState.drains, so a cycle that dies part-way leaves a state the
next cycle resumes from. A drain past its deadline is undone (uncordon) unless `drain_force`.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field, replace

from autoscaler.config import Settings
from autoscaler.model import Decision, Drain, DrainPhase, Launch, Node, Pod, ScalingState
from autoscaler.planner import pod_blocker
from autoscaler.ports import EvictionOutcome, Ports


@dataclass(slots=True)
class Outcome:
    """What acting did, for the cycle's log line and metrics."""

    launched: list[str] = field(default_factory=list)
    launch_failures: list[str] = field(default_factory=list)
    cordoned: list[str] = field(default_factory=list)
    evicted: int = 0
    eviction_blocked: int = 0
    terminated: list[str] = field(default_factory=list)
    drains_timed_out: list[str] = field(default_factory=list)


def act(decision: Decision, ports: Ports, settings: Settings, now: float, token: str) -> tuple[ScalingState, Outcome]:
    """Execute `decision` and advance every drain; returns the state to persist and what was done."""
    state = decision.state
    outcome = Outcome()

    for instance_id in decision.terminate_unjoined:
        ports.fleet.terminate(instance_id)
        outcome.terminated.append(instance_id)

    launches = list(state.launches)
    for az, count in decision.launches.items():
        result = ports.fleet.launch(az, count, token=f"{token}:{az}")
        outcome.launched.extend(result.instance_ids)
        outcome.launch_failures.extend(result.failures)
        deadline = now + settings.max_node_provision_time_s
        launches.extend(Launch(i, az, now, deadline) for i in result.instance_ids)
    if decision.launches and not outcome.launched:
        state = replace(state, last_failure=now, backoff_until=now + settings.provision_backoff_s)
    state = replace(state, launches=tuple(launches))

    nodes = {n.name: n for n in ports.cluster.list_nodes()}
    drains = list(state.drains)
    for name in decision.remove:
        node = nodes.get(name)
        if node is None:
            continue
        ports.cluster.cordon(name)
        outcome.cordoned.append(name)
        drains.append(Drain(name, node.instance_id, now, now + settings.drain_timeout_s))

    if drains:
        pods_by_node: dict[str, list[Pod]] = defaultdict(list)
        for p in ports.cluster.list_pods():
            if p.node is not None and not p.is_daemonset:
                pods_by_node[p.node].append(p)
        drains = [
            d
            for d in (
                _advance(d, nodes.get(d.node), pods_by_node[d.node], ports, settings, now, outcome) for d in drains
            )
            if d is not None
        ]
    if outcome.drains_timed_out:
        state = replace(state, last_failure=now)
    return replace(state, drains=tuple(drains)), outcome


def _advance(
    drain: Drain, node: Node | None, pods: list[Pod], ports: Ports, settings: Settings, now: float, outcome: Outcome
) -> Drain | None:
    """One step of one drain; None when the drain is finished or undone."""
    overdue = now > drain.deadline
    if pods and not (overdue and settings.drain_force):
        # Past the deadline, or a pod that became unmovable since the plan: give the node back.
        if overdue or any(pod_blocker(p) for p in pods):
            ports.cluster.uncordon(drain.node)
            outcome.drains_timed_out.append(drain.node)
            return None
        for pod in pods:
            result = ports.cluster.evict(pod)
            if result is EvictionOutcome.BLOCKED:
                outcome.eviction_blocked += 1
            elif result is EvictionOutcome.EVICTED:
                outcome.evicted += 1
        return replace(drain, phase=DrainPhase.EVICTING)
    if drain.instance_id:
        ports.fleet.terminate(drain.instance_id)
        outcome.terminated.append(drain.instance_id)
    if node is not None:
        ports.cluster.delete_node(drain.node)
    return None
