"""One scaling cycle over whatever ports it is given: lease -> observe -> plan -> gate -> act.

The Lambda handler and the simulator both come here; neither knows how the other gets its ports.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from autoscaler.actuator import Outcome, act
from autoscaler.ahead import forecast_read
from autoscaler.config import Settings
from autoscaler.events import AlarmChange, Manual, RebalanceRecommendation, Request, SpotInterruption, Tick
from autoscaler.gitops.gate import hold_capped
from autoscaler.interruption import plan_interruption
from autoscaler.model import (
    Action,
    ClusterSnapshot,
    Decision,
    Intent,
    IntentKind,
    IntentRecord,
    Reason,
    ReasonCode,
    ScalingState,
)
from autoscaler.planner import plan
from autoscaler.ports import Gate, GateAnswer, Lease, Ports

INTENT_MEMORY_S = 24 * 3600
"""How long an intent's record is kept: as long as EventBridge goes on redelivering an event."""


class LeaseBusy(RuntimeError):
    """Another invocation holds the lease; an alarm or manual event must be delivered again."""


@dataclass(frozen=True, slots=True)
class CycleResult:
    snapshot: ClusterSnapshot
    decision: Decision
    outcome: Outcome
    state: ScalingState
    gate: GateAnswer | None = None


@dataclass(frozen=True, slots=True)
class Report:
    status: str
    """'acted' (a cycle ran; dry run included), 'lease_taken', 'ignored', or 'noted' (a rebalance
    recommendation for a spot worker of ours)."""
    detail: str = ""
    cycle: CycleResult | None = None


def observe(ports: Ports, now: float, settings: Settings | None = None) -> ClusterSnapshot:
    """Everything a plan reads; the demand history only when `settings` use the forecast."""
    # Kubernetes and EC2 first: scale-up for pending pods never waits on Prometheus.
    nodes, pods = tuple(ports.cluster.list_nodes()), tuple(ports.cluster.list_pods())
    budgets, daemonsets = dict(ports.cluster.disruption_budgets()), tuple(ports.cluster.daemonset_pods())
    instances, zones = tuple(ports.fleet.list_workers()), tuple(ports.fleet.zones())
    read = forecast_read(settings) if settings is not None else None
    return ClusterSnapshot(
        nodes=nodes,
        pods=pods,
        instances=instances,
        metrics=ports.metrics.sample(now),
        zones=zones,
        pdbs=budgets,
        daemonsets=daemonsets,
        demand=ports.metrics.demand(now, read) if read is not None else None,
    )


def run_cycle(
    ports: Ports,
    settings: Settings,
    now: float,
    token: str,
    intent: Intent | None = None,
    gate: Gate | None = None,
    interruption: SpotInterruption | None = None,
) -> CycleResult:
    """`token` names this cycle (the event id); a retried cycle with the same token launches nothing
    twice, and an intent (or a spot interruption) is applied once per token: its plan is recorded
    under the token before acting, and a retry carries on what is left of that plan (within what a
    plan made now allows) rather than starting it afresh."""
    state = _forget_old_intents(ports.state.load(), now)
    snapshot = observe(ports, now, settings)
    once = intent is not None or interruption is not None
    record = state.intents.get(token) if once else None
    if record is not None and intent is not None and intent.kind in (IntentKind.PAUSE, IntentKind.RESUME):
        intent = None  # applied already, and maybe undone since by another event
    if interruption is not None:
        i = interruption
        decision = plan_interruption(snapshot, state, settings, now, i.instance_id, i.warned_at)
    else:
        decision = plan(snapshot, state, settings, now, intent)
    if record is not None:
        decision = _carry_on(decision, token, record)
    answer, may_remove = None, True
    # The gate is asked only when a removal or a drain is on the table.
    if gate is not None and (decision.remove or decision.state.drains):
        answer = gate(now)
        decision, may_remove = _apply_gate(decision, answer, settings, now)
    elif decision.state.gate_held_since is not None:
        decision = replace(decision, state=replace(decision.state, gate_held_since=None))
    if settings.dry_run:
        return CycleResult(snapshot, decision, Outcome(), ports.state.save(decision.state), answer)
    if once:
        decision = _record(decision, token, now if record is None else record.recorded_at)
    new_state, outcome = act(decision, snapshot, ports, settings, now, token, ports.state.save, may_remove)
    return CycleResult(snapshot, decision, outcome, new_state, answer)


def _forget_old_intents(state: ScalingState, now: float) -> ScalingState:
    kept = {event_id: r for event_id, r in state.intents.items() if now - r.recorded_at < INTENT_MEMORY_S}
    return state if len(kept) == len(state.intents) else replace(state, intents=kept)


def _carry_on(decision: Decision, token: str, record: IntentRecord) -> Decision:
    """A redelivered intent does what its record still holds (same zones, same nodes), and no more
    of it than the plan made now allows (max_nodes, min_nodes, the safety rules)."""
    allowed, launches = decision.launch_count, {}
    for zone, count in record.launches.items():
        launches[zone] = min(count, allowed)
        allowed -= launches[zone]
    launches = {zone: count for zone, count in launches.items() if count}
    remove = {node: instance for node, instance in record.remove.items() if node in decision.remove}
    left = [f"launch {launches}" if launches else "", ", ".join(remove)]
    detail = f"event {token} delivered again: " + ("; ".join(x for x in left if x) or "nothing left to do")
    return replace(
        decision,
        action=Action.SCALE_UP if launches else Action.SCALE_DOWN if remove else Action.NONE,
        launches=launches,
        remove=tuple(remove),
        instances=remove,
        reasons=(*decision.reasons, Reason(ReasonCode.REQUESTED, detail)),
    )


def _record(decision: Decision, token: str, recorded_at: float) -> Decision:
    """The decision whose state records what it will do for the intent under `token`."""
    remove = {n: decision.instances[n] for n in decision.remove if n in decision.instances}
    record = IntentRecord(recorded_at, dict(decision.launches), remove)
    state = decision.state
    return replace(decision, state=replace(state, intents={**state.intents, token: record}))


def _apply_gate(decision: Decision, answer: GateAnswer, settings: Settings, now: float) -> tuple[Decision, bool]:
    """Hold removals while the gate is blocked, for at most gate_max_hold_s without a break. The same cap as
    the gate's, over what the gate's memory cannot see: an unreadable gate, a notification's hold."""
    state = decision.state
    if not answer.blocked:
        return replace(decision, state=replace(state, gate_held_since=None)), True
    since = state.gate_held_since if state.gate_held_since is not None else now
    why = answer.why
    if hold_capped(since, now, settings.gate_max_hold_s):
        capped = Reason(ReasonCode.GITOPS_HOLD_CAPPED, f"held {now - since:.0f}s, past gate_max_hold_s: {why}")
        return replace(decision, reasons=(*decision.reasons, capped), state=replace(state, gate_held_since=since)), True
    hold = Reason(ReasonCode.GITOPS_HOLD, why)
    held = replace(
        decision,
        action=Action.NONE if decision.action is Action.SCALE_DOWN else decision.action,
        remove=tuple(n for n in decision.remove if n in decision.interrupted),  # EC2 holds for nobody
        reasons=(*decision.reasons, hold),
        state=replace(state, gate_held_since=since),
    )
    return held, False


@dataclass
class Wiring:
    """What one Lambda container builds once and reuses across invocations."""

    ports: Ports
    lease: Lease
    gate: Gate | None = None
    idempotency: Any = None
    """Powertools' persistence layer for manual events (on the state table)."""
    notify: Callable[[str, str], None] | None = None
    """Publishes (subject, message) to the operators' topic: scale actions, drains, failures."""
    queue_ticks: Callable[[str, int], None] | None = None
    """Queues the later ticks of a scheduled tick's minute (event id, TICK_S), when TICK_S < 60."""
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.time


LEASE_WAIT_S = 10.0


def handle(request: Request, wiring: Wiring, settings: Settings, token: str) -> Report:
    """Serve one request under the lease. A tick that finds the lease taken does nothing and
    says so; an alarm, manual or spot interruption event waits briefly, then raises LeaseBusy to be
    retried. EC2's events are for every instance of the account: one for an instance that is not a
    spot worker of this cluster is answered before the lease, and changes nothing."""
    if isinstance(request, AlarmChange) and request.state != "ALARM":
        return Report("ignored", f"alarm {request.alarm_name} is {request.state}: only ALARM acts")
    if isinstance(request, (SpotInterruption, RebalanceRecommendation)):
        why_not = _not_our_spot_worker(wiring.ports, request.instance_id)
        if why_not is not None:
            return Report("ignored", f"{type(request).__name__} for {why_not}: nothing done")
        if isinstance(request, RebalanceRecommendation):
            # Noted only, as Karpenter does: EC2 may send it hours before an interruption that never
            # comes, or with the warning itself. A replacement would be launched from the same
            # INSTANCE_TYPES, often into the same at-risk pool, and bill twice meanwhile; a cordon
            # alone takes capacity from the scheduler for nothing. The interruption warning, if it
            # comes, replaces and drains the worker within its two minutes.
            return Report("noted", f"rebalance recommendation for spot worker {request.instance_id}: noted, no action")
    intent = request.intent if isinstance(request, (AlarmChange, Manual)) else None
    now = wiring.clock()
    acquired = wiring.lease.acquire(token, now, settings.lease_duration_s)
    if not acquired and isinstance(request, Tick):
        return Report("lease_taken", "another invocation holds the lease; this tick does nothing")
    waited = 0.0
    while not acquired and waited < LEASE_WAIT_S:
        wiring.sleep(1.0)
        waited += 1.0
        now = wiring.clock()
        acquired = wiring.lease.acquire(token, now, settings.lease_duration_s)
    if not acquired:
        raise LeaseBusy(f"lease still taken after {waited:.0f}s")
    try:
        interruption = request if isinstance(request, SpotInterruption) else None
        cycle = run_cycle(wiring.ports, settings, now, token, intent, wiring.gate, interruption)
    finally:
        wiring.lease.release(token)
    return Report("acted", cycle.decision.action.value, cycle)


def _not_our_spot_worker(ports: Ports, instance_id: str) -> str | None:
    """None for a pending or running spot worker of this cluster; else what the instance is. The
    Fleet lists only instances with this cluster's worker tags in its VPC, the checks `terminate` makes."""
    worker = next((i for i in ports.fleet.list_workers() if i.id == instance_id), None)
    if worker is None:
        return f"{instance_id}, not a worker of this cluster (its tags or VPC), or gone"
    if not worker.alive:
        return f"{instance_id}, a worker that is {worker.state}"
    if worker.lifecycle != "spot":
        return f"{instance_id}, a {worker.lifecycle} worker"
    return None
