"""Carries out a Decision through the ports, and moves every drain in progress one step on.

A drain spans several cycles and its progress lives in ScalingState.drains:

    CORDONED -> EVICTING -> TERMINATING -> DELETING -> (gone)

Each step is recorded before the step that depends on it (the drain is saved before the node is
cordoned; TERMINATING before the instance is terminated), and every step is safe to repeat, so a
cycle that dies anywhere leaves a state the next cycle resumes from. A drain past its deadline is
undone (uncordon) unless the operator set `drain_force`; under a GitOps hold drains wait.

The state is checked against what was observed before anything acts on it: a drain read back
must name a worker of this cluster (one the Fleet lists), matched to its node without ambiguity,
and one about to terminate must find its node cordoned with no pod that must not move. A drain
that does not match is dropped with a reason, its node given back, never acted on blindly.

While scaling is paused nothing changes: no launch, eviction, termination or clean-up; drains
hold, and their deadlines move on by the time paused.

An alarm's or manual event's plan is stored under its event id (the cycle's token) by the first
save; each zone launched into, and the drains started, are struck off it by the very save that
records them, so a redelivered event never does them twice.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

from autoscaler.config import Settings
from autoscaler.matching import Binding, bind
from autoscaler.model import ClusterSnapshot, Decision, Drain, DrainPhase, Instance, Launch, Node, Pod, ScalingState
from autoscaler.rules import pod_blocker
from autoscaler.ports import EvictionOutcome, NotOurInstance, Ports

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
    drains_dropped: list[str] = field(default_factory=list)
    """`node: why` for each drain dropped because it no longer matches what is observed."""


@dataclass(frozen=True, slots=True)
class _Observed:
    """The snapshot as the drains read it."""

    nodes: Mapping[str, Node]
    workers: Mapping[str, Instance]
    binding: Binding
    pods: Mapping[str, list[Pod]]
    """Node name -> the pods that would have to move off it (not DaemonSet or mirror pods)."""

    @classmethod
    def of(cls, snapshot: ClusterSnapshot) -> _Observed:
        pods: dict[str, list[Pod]] = defaultdict(list)
        for p in snapshot.pods:
            if p.node is not None and not p.stays:
                pods[p.node].append(p)
        return cls(
            {n.name: n for n in snapshot.nodes},
            {i.id: i for i in snapshot.instances},
            bind(snapshot.nodes, snapshot.instances),
            pods,
        )


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
    if decision.state.paused:
        return checkpoint(_held(decision.state, now)), outcome
    state = checkpoint(_released(decision.state, now))

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
        deadline = now + settings.max_node_provision_time_s
        new = tuple(Launch(i, az, now, deadline) for i in result.instance_ids)
        if new or token in state.intents:
            # Saved zone by zone: a later zone's failure must not lose what this one started, nor
            # may a retry of the intent launch into this zone again.
            state = checkpoint(_struck(replace(state, launches=(*state.launches, *new)), token, zone=az))
    if decision.launches and not outcome.launched:
        state = checkpoint(replace(state, last_failure=now, backoff_until=now + settings.provision_backoff_s))

    seen = _Observed.of(snapshot)
    for drain in state.drains:
        why = _mismatch(drain, seen)
        if why is not None:
            state = _drop(drain, why, state, seen, ports, checkpoint, outcome)

    draining = {d.node for d in state.drains}
    started = [
        Drain(name, instance_id, now, now + settings.drain_timeout_s)
        for name in decision.remove
        if name not in draining and (instance_id := _removable(name, decision, seen)) is not None
    ]
    if started or (decision.remove and token in state.intents):
        state = checkpoint(_struck(replace(state, drains=(*state.drains, *started)), token, removals=True))

    for drain in state.drains:
        fresh = any(d.node == drain.node for d in started)
        state = _advance(drain, fresh, seen, state, ports, settings, now, may_remove, checkpoint, outcome)
    return state, outcome


def _held(state: ScalingState, now: float) -> ScalingState:
    """Paused: every drain holds where it is, its clock stopped from now."""
    return replace(
        state, drains=tuple(d if d.held_since is not None else replace(d, held_since=now) for d in state.drains)
    )


def _released(state: ScalingState, now: float) -> ScalingState:
    """After a pause, drains go on with their deadlines moved on by the time they were held."""
    return replace(
        state,
        drains=tuple(
            d if d.held_since is None else replace(d, deadline=d.deadline + now - d.held_since, held_since=None)
            for d in state.drains
        ),
    )


def _struck(state: ScalingState, token: str, zone: str | None = None, removals: bool = False) -> ScalingState:
    """`state` with `zone`, or the removals, struck off the intent recorded under `token`, if any."""
    record = state.intents.get(token)
    if record is None:
        return state
    done = replace(
        record,
        launches={z: n for z, n in record.launches.items() if z != zone},
        remove={} if removals else record.remove,
    )
    return replace(state, intents={**state.intents, token: done})


def _removable(name: str, decision: Decision, seen: _Observed) -> str | None:
    """The instance of a node the decision removes, when it is a running worker of ours that the
    node is matched to without ambiguity; else None, and the node is left alone."""
    instance_id = decision.instances.get(name)
    instance = seen.workers.get(instance_id or "")
    if instance is None or not instance.alive or seen.binding.instance_of.get(name) != instance_id:
        return None
    return instance_id


def _mismatch(drain: Drain, seen: _Observed) -> str | None:
    """Why a drain read back from the state must not go on; None when it matches what is observed."""
    node = seen.nodes.get(drain.node)
    claimed = seen.binding.instance_of.get(drain.node) if node is not None else None
    instance = seen.workers.get(drain.instance_id or "")
    if drain.phase is DrainPhase.DELETING:
        # Only the Node object of the instance this drain terminated is left to delete.
        if instance is not None and instance.alive:
            return f"instance {drain.instance_id} is still running: this drain did not terminate it"
        if claimed not in (None, drain.instance_id):
            return f"node {drain.node} is matched to instance {claimed}, not {drain.instance_id}"
        return None
    if instance is None:
        return (
            f"instance {drain.instance_id} is not a worker of this cluster (its tags are gone, or it no longer exists)"
        )
    if node is None:
        return None
    if claimed != drain.instance_id:
        return f"node {drain.node} is not matched to instance {drain.instance_id} without ambiguity"
    if drain.phase is DrainPhase.CORDONED:
        return None
    if not node.cordoned:
        return f"node {drain.node} is not cordoned: given back by hand, or never drained"
    if drain.phase is DrainPhase.TERMINATING:
        return _blocker(seen.pods[drain.node])
    return None


def _blocker(pods: list[Pod]) -> str | None:
    return next((why for p in pods if (why := pod_blocker(p)) is not None), None)


def _drop(
    drain: Drain,
    why: str,
    state: ScalingState,
    seen: _Observed,
    ports: Ports,
    checkpoint: Checkpoint,
    outcome: Outcome,
) -> ScalingState:
    """Forget a drain that cannot go on, and give its node back if it was cordoned for it."""
    node = seen.nodes.get(drain.node)
    if node is not None and node.cordoned and seen.binding.instance_of.get(drain.node) in (None, drain.instance_id):
        ports.cluster.uncordon(drain.node)
    outcome.drains_dropped.append(f"{drain.node}: {why}")
    return checkpoint(_put(state, drain.node, None))


def _put(state: ScalingState, node: str, new: Drain | None, **changes: object) -> ScalingState:
    """`state` with the drain of `node` replaced by `new` (or forgotten when None)."""
    drains = tuple(new if d.node == node else d for d in state.drains if new is not None or d.node != node)
    return replace(state, drains=drains, **changes)


def _advance(
    drain: Drain,
    fresh: bool,
    seen: _Observed,
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
        return checkpoint(_put(state, drain.node, new, **changes))

    present, pods = drain.node in seen.nodes, seen.pods[drain.node]
    if drain.phase in (DrainPhase.CORDONED, DrainPhase.EVICTING) and present:
        if fresh or drain.phase is DrainPhase.CORDONED:
            ports.cluster.cordon(drain.node)
            outcome.cordoned.append(drain.node)
        overdue = now > drain.deadline
        # A pod that became unmovable since the plan stops the drain, forced or not; past the
        # deadline, pods left stop it unless the operator asked to force.
        if _blocker(pods) is not None or (pods and overdue and not settings.drain_force):
            ports.cluster.uncordon(drain.node)
            outcome.drains_timed_out.append(drain.node)
            return record(None, last_failure=now)
        if pods and not overdue:
            if may_remove:
                for pod in pods:
                    result = ports.cluster.evict(pod)
                    if result is EvictionOutcome.BLOCKED:
                        outcome.eviction_blocked += 1
                    elif result is EvictionOutcome.EVICTED:
                        outcome.evicted += 1
            return record(replace(drain, phase=DrainPhase.EVICTING)) if drain.phase is DrainPhase.CORDONED else state
    if drain.phase in (DrainPhase.CORDONED, DrainPhase.EVICTING):
        # Emptied (or forced past its deadline), or its Node object deleted by hand: the instance goes.
        if not may_remove:
            return state
        drain = replace(drain, phase=DrainPhase.TERMINATING)
        state = record(drain)
    if drain.phase is DrainPhase.TERMINATING:
        try:
            ports.fleet.terminate(drain.instance_id)
        except NotOurInstance as exc:
            if present:
                ports.cluster.uncordon(drain.node)
            outcome.drains_dropped.append(f"{drain.node}: {exc}")
            return record(None)
        outcome.terminated.append(drain.instance_id)
        drain = replace(drain, phase=DrainPhase.DELETING)
        state = record(drain)
    ports.cluster.delete_node(drain.node)
    outcome.nodes_deleted.append(drain.node)
    return record(None)
