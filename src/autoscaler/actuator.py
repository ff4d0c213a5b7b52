"""Carries out a Decision through the ports, and moves every drain in progress one step on.

A drain spans several cycles and its progress lives in ScalingState.drains:

    CORDONED -> EVICTING -> TERMINATING -> DELETING -> (gone)

A drain that keeps its instance for the warm pool stops it at TERMINATING and ends there: its
Node stays, cordoned, until a start gives it back.

Each step is recorded before the step that depends on it (the drain is saved before the node is
cordoned; TERMINATING before the instance is terminated), and every step is safe to repeat, so a
cycle that dies anywhere leaves a state the next cycle resumes from. A drain past its deadline is
undone (uncordon) unless the operator set `drain_force`; under a GitOps hold drains wait. A spot
interruption's drain neither waits nor is undone: EC2 takes its instance back at its deadline.

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

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from autoscaler.config import Settings
from autoscaler.matching import Binding, bind
from autoscaler.model import ClusterSnapshot, Decision, Drain, DrainPhase, Instance, Launch, Node, Pod, ScalingState
from autoscaler.ports import EvictionOutcome, NotOurInstance, Ports
from autoscaler.rules import first_blocker, movers

Checkpoint = Callable[[ScalingState], ScalingState]
"""Persists a state and returns it as stored (with its new version)."""


@dataclass(slots=True)
class Outcome:
    """What acting did, for the cycle's log line and metrics."""

    launched: list[str] = field(default_factory=list)
    started: list[str] = field(default_factory=list)
    """Stopped workers of the warm pool started."""
    launch_failures: list[str] = field(default_factory=list)
    cordoned: list[str] = field(default_factory=list)
    evicted: int = 0
    eviction_blocked: int = 0
    terminated: list[str] = field(default_factory=list)
    stopped: list[str] = field(default_factory=list)
    """Workers stopped into the warm pool."""
    uncordoned: list[str] = field(default_factory=list)
    """Workers given back to the scheduler (back from the warm pool)."""
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
    pods: Mapping[str, Sequence[Pod]]
    """Node name -> the pods that would have to move off it (not DaemonSet or mirror pods)."""

    @classmethod
    def of(cls, snapshot: ClusterSnapshot) -> _Observed:
        return cls(
            {n.name: n for n in snapshot.nodes},
            {i.id: i for i in snapshot.instances},
            bind(snapshot.nodes, snapshot.instances),
            {name: movers(pods) for name, pods in snapshot.pods_by_node().items()},
        )

    def movers(self, node: str) -> Sequence[Pod]:
        return self.pods.get(node, ())


@dataclass(slots=True)
class _Run:
    """One cycle's acting: what was observed, the ports, and the state as last saved."""

    seen: _Observed
    ports: Ports
    settings: Settings
    now: float
    may_remove: bool
    checkpoint: Checkpoint
    outcome: Outcome
    state: ScalingState
    started: frozenset[str] = frozenset()
    """Nodes whose drain this cycle started."""

    def save(self, state: ScalingState) -> None:
        self.state = self.checkpoint(state)

    def record(self, drain: Drain, new: Drain | None, **changes: object) -> Drain | None:
        """Save `drain` replaced by `new` (forgotten when None); returns `new`."""
        self.save(_put(self.state, drain.node, new, **changes))
        return new


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
    run = _Run(
        _Observed.of(snapshot),
        ports,
        settings,
        now,
        may_remove,
        checkpoint,
        outcome,
        checkpoint(_released(decision.state, now)),
    )

    for instance_id in (*decision.terminate_unjoined, *decision.retire):
        ports.fleet.terminate(instance_id)
        outcome.terminated.append(instance_id)
    for name in decision.uncordon:
        ports.cluster.uncordon(name)
        outcome.uncordoned.append(name)
    for name in decision.delete_nodes:
        ports.cluster.delete_node(name)
        outcome.nodes_deleted.append(name)
    _launch(decision, token, run)

    for drain in run.state.drains:
        why = _mismatch(drain, run.seen)
        if why is not None:
            _drop(drain, why, run)
    _start(decision, token, run)
    for drain in run.state.drains:
        _advance(drain, run)
    return run.state, outcome


def _launch(decision: Decision, token: str, run: _Run) -> None:
    now, settings, outcome = run.now, run.settings, run.outcome
    launches = _warm_start(decision, run)
    for az, count in launches.items():
        result = run.ports.fleet.launch(az, count, token=f"{token}:{az}")
        outcome.launched.extend(result.instance_ids)
        outcome.launch_failures.extend(result.failures)
        deadline = now + settings.max_node_provision_time_s
        new = tuple(Launch(i, az, now, deadline) for i in result.instance_ids)
        if new or token in run.state.intents:
            # Saved zone by zone: a later zone's failure must not lose what this one started, nor
            # may a retry of the intent launch into this zone again.
            run.save(_struck(replace(run.state, launches=(*run.state.launches, *new)), token, zone=az))
    if launches and not outcome.launched:
        run.save(replace(run.state, last_failure=now, backoff_until=now + settings.provision_backoff_s))


def _warm_start(decision: Decision, run: _Run) -> dict[str, int]:
    """Start the decision's stopped workers and give their nodes back to the scheduler (its NotReady
    taints keep pods off until the kubelet is up). Returns the launches to make: the decision's,
    plus one in its zone for each worker that would not start."""
    launches = dict(decision.launches)
    if not decision.starts:
        return launches
    result = run.ports.fleet.start(decision.starts)
    run.outcome.started.extend(result.instance_ids)
    run.outcome.launch_failures.extend(result.failures)
    deadline = run.now + run.settings.max_node_provision_time_s
    started = []
    for instance_id in result.instance_ids:
        az = run.seen.workers[instance_id].az
        started.append(Launch(instance_id, az, run.now, deadline))
        node = run.seen.binding.node_of.get(instance_id)
        if node is not None and node.cordoned:
            run.ports.cluster.uncordon(node.name)
            run.outcome.uncordoned.append(node.name)
    if started:  # a save is a conditional write: none when nothing started
        run.save(replace(run.state, launches=(*run.state.launches, *started)))
    for instance_id in decision.starts:
        if instance_id not in result.instance_ids:
            az = run.seen.workers[instance_id].az
            launches[az] = launches.get(az, 0) + 1
    return launches


def _start(decision: Decision, token: str, run: _Run) -> None:
    """Record the drains the decision starts, before any of them acts. A node EC2 takes back gets an
    interruption drain that ends with the notice; one already draining as unneeded becomes one."""
    draining = {d.node for d in run.state.drains}
    now, timeout, ends = run.now, run.settings.drain_timeout_s, decision.interrupted
    started = [
        Drain(
            name, instance_id, now, ends.get(name, now + timeout), keep=name in decision.warm, interrupted=name in ends
        )
        for name in decision.remove
        if name not in draining and (instance_id := _removable(name, decision, run.seen)) is not None
    ]
    drains = tuple(
        replace(d, interrupted=True, keep=False, deadline=min(d.deadline, ends[d.node]))
        if d.node in ends and not d.interrupted
        else d
        for d in run.state.drains
    )
    if started or drains != run.state.drains or (decision.remove and token in run.state.intents):
        run.save(_struck(replace(run.state, drains=(*drains, *started)), token, removals=True))
    run.started = frozenset(d.node for d in started)


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
    if drain.phase is DrainPhase.TERMINATING and not drain.interrupted:
        return first_blocker(seen.movers(drain.node))
    return None


def _drop(drain: Drain, why: str, run: _Run) -> None:
    """Forget a drain that cannot go on, and give its node back if it was cordoned for it."""
    node, seen = run.seen.nodes.get(drain.node), run.seen
    if node is not None and node.cordoned and seen.binding.instance_of.get(drain.node) in (None, drain.instance_id):
        run.ports.cluster.uncordon(drain.node)
    run.outcome.drains_dropped.append(f"{drain.node}: {why}")
    run.record(drain, None)


def _put(state: ScalingState, node: str, new: Drain | None, **changes: object) -> ScalingState:
    """`state` with the drain of `node` replaced by `new` (or forgotten when None)."""
    drains = tuple(new if d.node == node else d for d in state.drains if new is not None or d.node != node)
    return replace(state, drains=drains, **changes)


def _advance(drain: Drain, run: _Run) -> None:
    """One drain as far as it can go this cycle: each phase's step returns the drain in its next
    phase, recorded, or None when the drain stops here for this cycle (or for good)."""
    current: Drain | None = drain
    while current is not None:
        current = _STEPS[current.phase](current, run)


def _evict(drain: Drain, run: _Run) -> Drain | None:
    """CORDONED, EVICTING: cordon, then evict the pods until the node is empty."""
    cluster, outcome = run.ports.cluster, run.outcome
    if drain.node in run.seen.nodes:
        if drain.node in run.started or drain.phase is DrainPhase.CORDONED:
            cluster.cordon(drain.node)
            outcome.cordoned.append(drain.node)
        pods = run.seen.movers(drain.node)
        overdue = run.now > drain.deadline
        # A pod that became unmovable since the plan stops the drain, forced or not; past the
        # deadline, pods left stop it unless the operator asked to force. An interruption's drain
        # goes on regardless: the instance goes at its deadline.
        stuck = first_blocker(pods) is not None or (pods and overdue and not run.settings.drain_force)
        if stuck and not drain.interrupted:
            cluster.uncordon(drain.node)
            outcome.drains_timed_out.append(drain.node)
            return run.record(drain, None, last_failure=run.now)
        if pods and not overdue:
            if run.may_remove or drain.interrupted:
                for pod in pods:
                    result = cluster.evict(pod)
                    if result is EvictionOutcome.BLOCKED:
                        outcome.eviction_blocked += 1
                    elif result is EvictionOutcome.EVICTED:
                        outcome.evicted += 1
            if drain.phase is DrainPhase.CORDONED:
                run.record(drain, replace(drain, phase=DrainPhase.EVICTING))
            return None
    # Emptied (or forced past its deadline), or its Node object deleted by hand: the instance goes.
    if not run.may_remove and not drain.interrupted:
        return None
    return run.record(drain, replace(drain, phase=DrainPhase.TERMINATING))


def _terminate(drain: Drain, run: _Run) -> Drain | None:
    """TERMINATING: the instance goes (stopped into the warm pool, its Node kept, when the drain
    keeps it); one that turns out not to be ours is given back."""
    fleet = run.ports.fleet
    try:
        if drain.keep:
            fleet.stop(drain.instance_id)
        else:
            fleet.terminate(drain.instance_id)
    except NotOurInstance as exc:
        if drain.node in run.seen.nodes:
            run.ports.cluster.uncordon(drain.node)
        run.outcome.drains_dropped.append(f"{drain.node}: {exc}")
        return run.record(drain, None)
    if drain.keep:
        run.outcome.stopped.append(drain.instance_id)
        return run.record(drain, None)
    run.outcome.terminated.append(drain.instance_id)
    return run.record(drain, replace(drain, phase=DrainPhase.DELETING))


def _delete(drain: Drain, run: _Run) -> None:
    """DELETING: the Node object goes, and the drain with it."""
    run.ports.cluster.delete_node(drain.node)
    run.outcome.nodes_deleted.append(drain.node)
    run.record(drain, None)


_STEPS: Mapping[DrainPhase, Callable[[Drain, _Run], Drain | None]] = {
    DrainPhase.CORDONED: _evict,
    DrainPhase.EVICTING: _evict,
    DrainPhase.TERMINATING: _terminate,
    DrainPhase.DELETING: _delete,
}
