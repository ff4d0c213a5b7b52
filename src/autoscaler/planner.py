"""The decision core: `plan(snapshot, state, settings, now) -> Decision`.

Pure: it reads only its arguments (no clock, no I/O, no boto3/requests/kubernetes), so the
Lambda, the simulator and the tests all run the same rules. Requests drive capacity (pods the
scheduler could not place); CPU usage is a secondary signal that counts only when it is known.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from autoscaler.binpack import Bin, estimate_new_nodes, place_all
from autoscaler.config import Settings
from autoscaler.model import (
    DO_NOT_DISRUPT,
    SAFE_TO_EVICT,
    Action,
    ClusterSnapshot,
    Decision,
    Instance,
    InstanceState,
    Intent,
    IntentKind,
    Node,
    Pod,
    Reason,
    ReasonCode,
    ScalingState,
)

# A launch EC2 accepted may take a few seconds to show in DescribeInstances; until then the
# state's record of it counts, so a retry does not launch the same capacity twice.
LAUNCH_VISIBILITY_GRACE_S = 120.0


@dataclass(frozen=True, slots=True)
class _Fleet:
    """The worker fleet as the rules see it, derived once per plan."""

    alive: tuple[Instance, ...]
    unseen_launches: int
    ready_by_instance: Mapping[str, Node]
    in_flight: tuple[Instance, ...]
    unjoined: tuple[Instance, ...]
    draining: frozenset[str]

    @property
    def count(self) -> int:
        """Workers that bill or soon will: what max_nodes is counted against."""
        return len(self.alive) + self.unseen_launches


def plan(
    snapshot: ClusterSnapshot, state: ScalingState, settings: Settings, now: float, intent: Intent | None = None
) -> Decision:
    decision = _plan(snapshot, state, settings, now, intent)
    orphans = _orphan_nodes(snapshot, decision.state)
    if not orphans:
        return decision
    reason = Reason(ReasonCode.ORPHAN_NODE, f"{', '.join(orphans)}: instance terminated, Node object left")
    return replace(decision, delete_nodes=orphans, reasons=(*decision.reasons, reason))


def _orphan_nodes(snapshot: ClusterSnapshot, state: ScalingState) -> tuple[str, ...]:
    """Nodes whose worker instance is shutting down or gone; a drain deletes its own node."""
    gone = {i.id for i in snapshot.instances if i.state in (InstanceState.SHUTTING_DOWN, InstanceState.TERMINATED)}
    draining = {d.node for d in state.drains}
    return tuple(
        n.name for n in snapshot.nodes if n.instance_id in gone and n.name not in draining and not n.control_plane
    )


def _plan(
    snapshot: ClusterSnapshot, state: ScalingState, settings: Settings, now: float, intent: Intent | None
) -> Decision:
    fleet = _fleet(snapshot, state, settings, now)
    reasons: list[Reason] = []
    new_state = _prune(state, snapshot, fleet, now)

    terminate = tuple(i.id for i in fleet.unjoined)
    if terminate:
        reasons.append(
            Reason(
                ReasonCode.UNJOINED_INSTANCE,
                f"{', '.join(terminate)} not a Ready node {settings.max_node_provision_time_s}s after launch",
            )
        )
        # Back off only when the pool looks broken: no worker launched since then has joined either.
        # A lone straggler among healthy launches is replaced at once.
        since = min(i.launched_at for i in fleet.unjoined)
        healthy = any(i.launched_at >= since and i.id in fleet.ready_by_instance for i in fleet.alive)
        new_state = replace(
            new_state,
            last_failure=now,
            backoff_until=new_state.backoff_until if healthy else now + settings.provision_backoff_s,
            launches=tuple(x for x in new_state.launches if x.instance_id not in terminate),
        )

    kind = intent.kind if intent else None
    if kind in (IntentKind.PAUSE, IntentKind.RESUME):
        new_state = replace(new_state, paused=kind is IntentKind.PAUSE)
        reasons.append(Reason(ReasonCode.REQUESTED, f"{kind} by {intent.source}"))
    if new_state.paused:
        detail = f"{kind} ignored: scaling is paused" if kind and kind is not IntentKind.PAUSE else "scaling is paused"
        reasons.append(Reason(ReasonCode.PAUSED, detail))
        return Decision(Action.NONE, terminate_unjoined=terminate, reasons=tuple(reasons), state=new_state)

    unschedulable = [p for p in snapshot.pods if p.node is None and p.unschedulable_since is not None]
    if kind in (IntentKind.SCALE_UP, IntentKind.SCALE_DOWN, IntentKind.SET):
        return _requested(intent, snapshot, fleet, unschedulable, new_state, settings, now, terminate, reasons)
    pressure_since = _pressure_since(snapshot, state, settings, now)
    new_state = replace(new_state, pressure_since=pressure_since)

    launches = _scale_up(snapshot, fleet, unschedulable, pressure_since, new_state, settings, now, reasons)
    if launches:
        return Decision(
            Action.SCALE_UP,
            launches=launches,
            terminate_unjoined=terminate,
            reasons=tuple(reasons),
            state=replace(new_state, last_scale_up=now, pressure_since=None, unneeded_since={}),
        )

    remove, unneeded = _scale_down(snapshot, fleet, unschedulable, new_state, settings, now, reasons)
    new_state = replace(new_state, unneeded_since=unneeded)
    if remove:
        return Decision(
            Action.SCALE_DOWN,
            remove=remove,
            terminate_unjoined=terminate,
            reasons=tuple(reasons),
            state=replace(new_state, last_scale_down=now),
        )
    if not reasons:
        reasons.append(Reason(ReasonCode.STEADY, f"{fleet.count} workers, nothing to change"))
    return Decision(Action.NONE, terminate_unjoined=terminate, reasons=tuple(reasons), state=new_state)


def _requested(
    intent: Intent,
    snapshot: ClusterSnapshot,
    fleet: _Fleet,
    unschedulable: Sequence[Pod],
    state: ScalingState,
    settings: Settings,
    now: float,
    terminate: tuple[str, ...],
    reasons: list[Reason],
) -> Decision:
    reasons.append(Reason(ReasonCode.REQUESTED, f"{intent.kind} {intent.count} by {intent.source}"))
    if intent.kind is IntentKind.SET:
        desired = min(max(intent.count, settings.min_nodes), settings.max_nodes)
        if desired != intent.count:
            reasons.append(
                Reason(
                    ReasonCode.AT_MAX if desired < intent.count else ReasonCode.AT_MIN,
                    f"{intent.count} clamped to {desired}",
                )
            )
        delta = desired - fleet.count
    else:
        delta = intent.count if intent.kind is IntentKind.SCALE_UP else -intent.count
    if delta > 0:
        count = min(delta, settings.max_nodes - fleet.count)
        if count < delta:
            reasons.append(Reason(ReasonCode.AT_MAX, f"{delta} asked, room for {max(count, 0)} under max_nodes"))
        if count > 0:
            launches = spread(count, fleet.alive, snapshot.zones)
            return Decision(
                Action.SCALE_UP,
                launches=launches,
                terminate_unjoined=terminate,
                reasons=tuple(reasons),
                state=replace(state, last_scale_up=now, unneeded_since={}),
            )
    elif delta < 0:
        remove = _requested_scale_down(snapshot, fleet, unschedulable, -delta, settings, reasons)
        if remove:
            return Decision(
                Action.SCALE_DOWN,
                remove=remove,
                terminate_unjoined=terminate,
                reasons=tuple(reasons),
                state=replace(state, last_scale_down=now),
            )
    else:
        reasons.append(Reason(ReasonCode.STEADY, f"already {fleet.count} workers"))
    return Decision(Action.NONE, terminate_unjoined=terminate, reasons=tuple(reasons), state=state)


def _fleet(snapshot: ClusterSnapshot, state: ScalingState, settings: Settings, now: float) -> _Fleet:
    alive = tuple(i for i in snapshot.instances if i.alive)
    seen = {i.id for i in snapshot.instances}
    unseen = sum(
        1
        for launch in state.launches
        if launch.instance_id not in seen and now - launch.launched_at < LAUNCH_VISIBILITY_GRACE_S
    )
    ours = {i.id for i in alive}
    # Only nodes backed by this cluster's tagged workers: anything else is never counted or removed.
    ready = {n.instance_id: n for n in snapshot.nodes if n.ready and n.instance_id in ours and not n.control_plane}
    registered = {n.instance_id for n in snapshot.nodes}
    waiting = [i for i in alive if i.id not in ready]
    deadline = settings.max_node_provision_time_s
    return _Fleet(
        alive=alive,
        unseen_launches=unseen,
        ready_by_instance=ready,
        in_flight=tuple(i for i in waiting if now - i.launched_at <= deadline),
        # Only an instance with no Node object at all never joined; a registered node that is not
        # Ready (or is the control plane) is never terminated from here.
        unjoined=tuple(i for i in waiting if now - i.launched_at > deadline and i.id not in registered),
        draining=frozenset(d.node for d in state.drains),
    )


def _prune(state: ScalingState, snapshot: ClusterSnapshot, fleet: _Fleet, now: float) -> ScalingState:
    """Forget launches that became nodes, vanished, or are long past visibility."""
    alive = {i.id for i in fleet.alive}
    launches = tuple(
        x
        for x in state.launches
        if x.instance_id not in fleet.ready_by_instance
        and (x.instance_id in alive or now - x.launched_at < LAUNCH_VISIBILITY_GRACE_S)
    )
    return replace(state, launches=launches)


def _pressures(snapshot: ClusterSnapshot, settings: Settings) -> list[tuple[ReasonCode, str, float, float]]:
    """The usage signals at or above their threshold: (code, name, value, threshold)."""
    m = snapshot.metrics
    found = []
    if m.cluster_cpu is not None and m.cluster_cpu >= settings.cpu_high:
        found.append((ReasonCode.CPU_HIGH, "CPU", m.cluster_cpu, settings.cpu_high))
    if m.custom is not None and m.custom >= settings.custom_metric_threshold:
        found.append((ReasonCode.CUSTOM_METRIC_HIGH, "custom metric", m.custom, settings.custom_metric_threshold))
    return found


def _pressure_since(snapshot: ClusterSnapshot, state: ScalingState, settings: Settings, now: float) -> float | None:
    """When usage went above a threshold and stayed there; an unknown reading breaks the run."""
    if not _pressures(snapshot, settings):
        return None
    return state.pressure_since if state.pressure_since is not None else now


def _scale_up(
    snapshot: ClusterSnapshot,
    fleet: _Fleet,
    unschedulable: Sequence[Pod],
    pressure_since: float | None,
    state: ScalingState,
    settings: Settings,
    now: float,
    reasons: list[Reason],
) -> dict[str, int]:
    wanted = 0
    if fleet.count < settings.min_nodes:
        wanted = settings.min_nodes - fleet.count
        reasons.append(Reason(ReasonCode.BELOW_MIN, f"{fleet.count} workers < min_nodes {settings.min_nodes}"))

    waited = [
        p
        for p in unschedulable
        if not p.is_daemonset and now - (p.unschedulable_since or now) >= settings.new_pod_scale_up_delay_s
    ]
    if waited:
        upcoming = [Bin(settings.node_cpu_m, settings.node_mem_mib)] * (len(fleet.in_flight) + fleet.unseen_launches)
        estimate = estimate_new_nodes(
            ((p.cpu_m, p.mem_mib) for p in waited), settings.node_cpu_m, settings.node_mem_mib, upcoming
        )
        if estimate.too_large:
            reasons.append(
                Reason(
                    ReasonCode.POD_TOO_LARGE,
                    f"{estimate.too_large} pods request more than one worker "
                    f"({settings.node_cpu_m}m/{settings.node_mem_mib}Mi)",
                )
            )
        if estimate.new_nodes:
            reasons.append(
                Reason(
                    ReasonCode.UNSCHEDULABLE_PODS,
                    f"{len(waited)} unschedulable pods need {estimate.new_nodes} more workers",
                )
            )
        elif len(waited) > estimate.too_large:
            reasons.append(
                Reason(
                    ReasonCode.CAPACITY_IN_FLIGHT,
                    f"{len(waited)} unschedulable pods fit on {len(fleet.in_flight) + fleet.unseen_launches} "
                    "workers already launching",
                )
            )
        wanted = max(wanted, estimate.new_nodes)

    if pressure_since is not None and now - pressure_since >= settings.cpu_high_window_s:
        ready = len(fleet.ready_by_instance)
        for code, name, value, threshold in _pressures(snapshot, settings):
            if fleet.in_flight or fleet.unseen_launches:
                reasons.append(Reason(ReasonCode.CAPACITY_IN_FLIGHT, f"{name} {value:.3g} high; workers launching"))
            elif ready:
                # Enough workers to bring the signal back under its threshold, if load spreads evenly.
                extra = max(1, math.ceil(ready * value / threshold) - ready) if threshold > 0 else 1
                detail = f"{name} {value:.3g} >= {threshold:.3g} for {now - pressure_since:.0f}s: {extra} more"
                reasons.append(Reason(code, detail))
                wanted = max(wanted, extra)

    if not wanted:
        return {}
    if state.backoff_until is not None and now < state.backoff_until and fleet.count >= settings.min_nodes:
        reasons.append(
            Reason(ReasonCode.BACKING_OFF, f"launches back off for {state.backoff_until - now:.0f}s after a failure")
        )
        return {}
    headroom = settings.max_nodes - fleet.count
    if headroom <= 0:
        reasons.append(Reason(ReasonCode.AT_MAX, f"{fleet.count} workers = max_nodes {settings.max_nodes}"))
        return {}
    count = min(wanted, headroom, settings.max_nodes_per_scale_up)
    if count < wanted:
        reasons.append(
            Reason(
                ReasonCode.AT_MAX if headroom < wanted else ReasonCode.CAPACITY_IN_FLIGHT,
                f"{wanted} wanted, {count} launched this cycle "
                f"(max_nodes {settings.max_nodes}, max_nodes_per_scale_up {settings.max_nodes_per_scale_up})",
            )
        )
    return spread(count, fleet.alive, snapshot.zones)


def spread(count: int, alive: Iterable[Instance], zones: Sequence[str]) -> dict[str, int]:
    """Each launch goes to the zone with the fewest workers (ties: the order zones are given)."""
    if not zones:
        return {"": count}
    per_zone = Counter({z: 0 for z in zones})
    per_zone.update(i.az for i in alive if i.az in per_zone)
    plan: dict[str, int] = defaultdict(int)
    for _ in range(count):
        zone = min(zones, key=lambda z: per_zone[z])
        per_zone[zone] += 1
        plan[zone] += 1
    return dict(plan)


def pod_blocker(pod: Pod) -> str | None:
    """Why this pod cannot be moved off its node, or None if it can."""
    ann = pod.annotations
    if ann.get(SAFE_TO_EVICT) == "false":
        return f"{pod.key} is annotated {SAFE_TO_EVICT}=false"
    if ann.get(DO_NOT_DISRUPT) == "true":
        return f"{pod.key} is annotated {DO_NOT_DISRUPT}=true"
    if ann.get(SAFE_TO_EVICT) == "true":
        return None
    if pod.owner_kind is None:
        return f"{pod.key} has no controller"
    if pod.namespace == "kube-system" and not pod.has_pdb:
        return f"{pod.key} is a kube-system pod without a PodDisruptionBudget"
    if pod.local_storage:
        return f"{pod.key} uses local storage"
    return None


@dataclass(slots=True)
class _Candidates:
    """The workers scale-down may look at, their pods and free room, in removal order."""

    workers: list[Node]
    pods_by_node: dict[str, list[Pod]]
    free: dict[str, Bin]
    movable: list[Node]
    """Workers that are not protected and whose pods may all move, best to remove first."""
    utilization: dict[str, float]


def _candidates(snapshot: ClusterSnapshot, fleet: _Fleet) -> _Candidates:
    pods_by_node: dict[str, list[Pod]] = defaultdict(list)
    for p in snapshot.pods:
        if p.node is not None and not p.is_daemonset:
            pods_by_node[p.node].append(p)
    workers = [n for n in fleet.ready_by_instance.values() if not n.cordoned and n.name not in fleet.draining]
    free = {n.name: _free(n, pods_by_node[n.name]) for n in workers}
    utilization = {n.name: _requested_utilization(n, pods_by_node[n.name]) for n in workers}
    movable = [
        n for n in workers if not n.scale_down_disabled and not any(pod_blocker(p) for p in pods_by_node[n.name])
    ]
    per_zone = Counter(n.az for n in workers)
    # Empty first, then from the zone with most workers, then the least used.
    movable.sort(key=lambda n: (bool(pods_by_node[n.name]), -per_zone[n.az], utilization[n.name], n.name))
    return _Candidates(workers, pods_by_node, free, movable, utilization)


def _select(
    c: _Candidates, ripe: Sequence[Node], limit: int, empty_budget: int, drain_budget: int, settings: Settings
) -> list[str]:
    """Up to `limit` of `ripe`, within the budgets, each only if its pods fit on the workers kept."""
    remove: list[str] = []
    kept = {n.name: c.free[n.name] for n in c.workers}
    for node in ripe:
        if len(remove) >= limit:
            break
        pods = c.pods_by_node[node.name]
        if (drain_budget if pods else empty_budget) <= 0:
            continue
        room = kept.pop(node.name)
        # Capacity is consumed here, so two removals never count on the same free room.
        if not place_all([(p.cpu_m, p.mem_mib) for p in pods], list(kept.values()), *_shape(settings)):
            kept[node.name] = room
            continue
        remove.append(node.name)
        if pods:
            drain_budget -= 1
        else:
            empty_budget -= 1
    return remove


def _scale_down(
    snapshot: ClusterSnapshot,
    fleet: _Fleet,
    unschedulable: Sequence[Pod],
    state: ScalingState,
    settings: Settings,
    now: float,
    reasons: list[Reason],
) -> tuple[tuple[str, ...], dict[str, float]]:
    """Nodes to remove now, and the unneeded-since clock of every node that qualifies."""
    if unschedulable:
        reasons.append(Reason(ReasonCode.PENDING_PODS, f"{len(unschedulable)} pods wait for capacity"))
        return (), {}
    if not snapshot.metrics.known:
        reasons.append(
            Reason(ReasonCode.METRICS_UNKNOWN, f"no scale-down on unknown metrics: {snapshot.metrics.unknown_reason}")
        )
        return (), {}

    c = _candidates(snapshot, fleet)
    unneeded: dict[str, float] = {}
    for node in c.movable:
        if c.utilization[node.name] >= settings.scale_down_utilization_threshold:
            continue
        others = [c.free[n.name] for n in c.workers if n.name != node.name]
        requests = [(p.cpu_m, p.mem_mib) for p in c.pods_by_node[node.name]]
        if _fits_without_consuming(requests, others, settings):
            unneeded[node.name] = state.unneeded_since.get(node.name, now)

    timed_out = [
        n for n in c.movable if n.name in unneeded and now - unneeded[n.name] >= settings.scale_down_unneeded_time_s
    ]
    ripe = [
        n for n in timed_out if _usage_low(n, c.pods_by_node[n.name], snapshot.metrics.node_cpu.get(n.name), settings)
    ]
    blocked = _global_blocker(fleet, state, settings, now)
    if blocked:
        reasons.append(blocked)
        return (), unneeded
    if not ripe:
        hot = sorted(n.name for n in timed_out)
        detail = (
            f"{', '.join(hot)} unneeded, but CPU usage is unknown or above what its pods request"
            if hot
            else f"{len(unneeded)} nodes unneeded, none for {settings.scale_down_unneeded_time_s}s yet"
        )
        reasons.append(Reason(ReasonCode.NO_CANDIDATE, detail))
        return (), unneeded

    limit = _room_above_min(fleet, settings, reasons)
    drain_budget = settings.max_drains_in_parallel - len(fleet.draining)
    remove = _select(c, ripe, limit, settings.max_empty_bulk_delete, drain_budget, settings) if limit > 0 else []
    for name in remove:
        reasons.append(
            Reason(
                ReasonCode.NODE_UNNEEDED if c.pods_by_node[name] else ReasonCode.EMPTY_NODE,
                f"{name} unneeded for {now - unneeded[name]:.0f}s, {len(c.pods_by_node[name])} pods to move",
            )
        )
    if not remove and limit > 0:
        reasons.append(Reason(ReasonCode.NO_CANDIDATE, "no unneeded node can be removed within the budgets"))
    return tuple(remove), unneeded


def _requested_scale_down(
    snapshot: ClusterSnapshot,
    fleet: _Fleet,
    unschedulable: Sequence[Pod],
    count: int,
    settings: Settings,
    reasons: list[Reason],
) -> tuple[str, ...]:
    """An explicit request to remove `count` workers: no cool-down, unneeded time or utilization
    threshold, but every safety rule (movable pods, room elsewhere, protected nodes, min_nodes)."""
    if unschedulable:
        reasons.append(Reason(ReasonCode.PENDING_PODS, f"{len(unschedulable)} pods wait for capacity"))
        return ()
    c = _candidates(snapshot, fleet)
    room = _room_above_min(fleet, settings, reasons)
    if 0 < room < count:
        reasons.append(Reason(ReasonCode.AT_MIN, f"{count} asked, {room} above min_nodes {settings.min_nodes}"))
    limit = min(count, room)
    remove = _select(c, c.movable, limit, count, count, settings) if limit > 0 else []
    if len(remove) < limit:
        reasons.append(Reason(ReasonCode.NO_CANDIDATE, f"{count} asked, {len(remove)} can go without stranding pods"))
    return tuple(remove)


def _room_above_min(fleet: _Fleet, settings: Settings, reasons: list[Reason]) -> int:
    room = len(fleet.alive) - len(fleet.draining) - settings.min_nodes
    if room <= 0:
        reasons.append(Reason(ReasonCode.AT_MIN, f"{len(fleet.alive)} workers, min_nodes {settings.min_nodes}"))
    return room


def _global_blocker(fleet: _Fleet, state: ScalingState, settings: Settings, now: float) -> Reason | None:
    if fleet.in_flight or fleet.unseen_launches:
        return Reason(ReasonCode.LAUNCH_IN_FLIGHT, f"{len(fleet.in_flight) + fleet.unseen_launches} workers launching")
    if state.last_scale_up is not None and now - state.last_scale_up < settings.scale_down_delay_after_add_s:
        return Reason(
            ReasonCode.COOLDOWN_AFTER_ADD,
            f"{now - state.last_scale_up:.0f}s since the last scale-up < {settings.scale_down_delay_after_add_s}s",
        )
    if state.last_failure is not None and now - state.last_failure < settings.scale_down_delay_after_failure_s:
        return Reason(
            ReasonCode.COOLDOWN_AFTER_FAILURE,
            f"{now - state.last_failure:.0f}s since the last failure < {settings.scale_down_delay_after_failure_s}s",
        )
    if len(fleet.draining) >= settings.max_drains_in_parallel:
        return Reason(ReasonCode.DRAIN_IN_PROGRESS, f"draining {', '.join(sorted(fleet.draining))}")
    return None


def _usage_low(node: Node, pods: Sequence[Pod], usage: float | None, settings: Settings) -> bool:
    """Under cpu_low, or no more than the pods request: pods that use more than they request
    would overload the nodes they are packed onto. An empty node moves nothing. Checked when
    removing rather than on the unneeded clock, so a lagging reading delays, never resets it."""
    if not pods:
        return True
    requested_cpu = sum(p.cpu_m for p in pods) / node.alloc_cpu_m if node.alloc_cpu_m else 1.0
    return usage is not None and usage < max(settings.cpu_low, requested_cpu)


def _free(node: Node, pods: Sequence[Pod]) -> Bin:
    return Bin(node.alloc_cpu_m - sum(p.cpu_m for p in pods), node.alloc_mem_mib - sum(p.mem_mib for p in pods))


def _requested_utilization(node: Node, pods: Sequence[Pod]) -> float:
    cpu = sum(p.cpu_m for p in pods) / node.alloc_cpu_m if node.alloc_cpu_m else 1.0
    mem = sum(p.mem_mib for p in pods) / node.alloc_mem_mib if node.alloc_mem_mib else 1.0
    return max(cpu, mem)


def _fits_without_consuming(requests: list[tuple[int, int]], bins: Sequence[Bin], settings: Settings) -> bool:
    return place_all(requests, [Bin(b.cpu_m, b.mem_mib) for b in bins], *_shape(settings))


def _shape(settings: Settings) -> tuple[int, int]:
    return settings.node_cpu_m, settings.node_mem_mib
