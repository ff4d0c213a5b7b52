"""The decision core: `plan(snapshot, state, settings, now) -> Decision`.

Pure: it reads only its arguments (no clock, no I/O, no boto3/requests/kubernetes), so the
Lambda, the simulator and the tests all run the same rules. Requests drive capacity (pods the
scheduler could not place); CPU usage is a secondary signal that counts only when it is known.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from autoscaler.config import Settings
from autoscaler.gc_pause import gc_paused
from autoscaler.matching import Binding, bind
from autoscaler.model import (
    DO_NOT_DISRUPT,
    HOSTNAME_LABEL,
    SAFE_TO_EVICT,
    SAFE_TO_EVICT_LOCAL_VOLUMES,
    ZONE_LABEL,
    Action,
    ClusterSnapshot,
    Decision,
    Instance,
    InstanceState,
    Intent,
    IntentKind,
    Node,
    NodeVerdict,
    Pod,
    Reason,
    ReasonCode,
    ScalingState,
    Unhelpable,
)
from autoscaler.placement import EXPLAIN, Move, Room, Slot, landing_daemonsets

# A launch EC2 accepted may take a few seconds to show in DescribeInstances; until then the
# state's record of it counts, so a retry does not launch the same capacity twice.
LAUNCH_VISIBILITY_GRACE_S = 120.0
# A Ready condition whose last change came this soon after the Node was created has never been True.
NEVER_READY_SLACK_S = 60.0


@dataclass(frozen=True, slots=True)
class _Fleet:
    """The worker fleet as the rules see it, derived once per plan."""

    alive: tuple[Instance, ...]
    unseen_launches: int
    ready_by_instance: Mapping[str, Node]
    in_flight: tuple[Instance, ...]
    unjoined: tuple[Instance, ...]
    """Launched past max_node_provision_time and matched by no Node at all."""
    dead: tuple[Node, ...]
    """Registered workers that never became Ready in time, or NotReady past scale_down_unready_time."""
    draining: frozenset[str]
    binding: Binding

    @property
    def count(self) -> int:
        """Workers that bill or soon will: what max_nodes is counted against."""
        return len(self.alive) + self.unseen_launches

    @property
    def capacity(self) -> int:
        """Workers that are or will be of use (Ready, launching, or NotReady for less than the
        unready time): what min_nodes is counted against. Dead and unjoined ones are not."""
        return self.count - len(self.dead) - len(self.unjoined)


def plan(
    snapshot: ClusterSnapshot, state: ScalingState, settings: Settings, now: float, intent: Intent | None = None
) -> Decision:
    with gc_paused():
        decision = _plan(snapshot, state, settings, now, intent)
    orphans = _orphan_nodes(snapshot, decision.state)
    if not orphans or decision.state.paused:
        return decision
    reason = Reason(ReasonCode.ORPHAN_NODE, f"{', '.join(orphans)}: instance terminated, Node object left")
    return replace(decision, delete_nodes=orphans, reasons=(*decision.reasons, reason))


def _orphan_nodes(snapshot: ClusterSnapshot, state: ScalingState) -> tuple[str, ...]:
    """Nodes whose worker instance is shutting down or gone; a drain deletes its own node."""
    gone = [i for i in snapshot.instances if i.state in (InstanceState.SHUTTING_DOWN, InstanceState.TERMINATED)]
    binding = bind(snapshot.nodes, gone)
    draining = {d.node for d in state.drains}
    return tuple(
        n.name
        for n in snapshot.nodes
        if n.name in binding.instance_of and n.name not in draining and not n.control_plane
    )


def _plan(
    snapshot: ClusterSnapshot, state: ScalingState, settings: Settings, now: float, intent: Intent | None
) -> Decision:
    fleet = _fleet(snapshot, state, settings, now)
    reasons: list[Reason] = []
    new_state = _prune(state, snapshot, fleet, now)
    for instance_id, names in sorted(fleet.binding.ambiguous.items()):
        reasons.append(
            Reason(
                ReasonCode.AMBIGUOUS_INSTANCE, f"{instance_id} is claimed by {', '.join(names)}: neither is acted on"
            )
        )

    kind = intent.kind if intent else None
    if kind in (IntentKind.PAUSE, IntentKind.RESUME):
        new_state = replace(new_state, paused=kind is IntentKind.PAUSE)
        reasons.append(Reason(ReasonCode.REQUESTED, f"{kind} by {intent.source}"))
    if new_state.paused:
        detail = f"{kind} ignored: scaling is paused" if kind and kind is not IntentKind.PAUSE else "scaling is paused"
        reasons.append(Reason(ReasonCode.PAUSED, detail))
        return Decision(Action.NONE, reasons=tuple(reasons), state=new_state)

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

    base = _Base(snapshot, fleet, settings, now, terminate)
    unschedulable = [p for p in snapshot.pods if p.node is None and p.unschedulable_since is not None and not p.stays]
    if kind in (IntentKind.SCALE_UP, IntentKind.SCALE_DOWN, IntentKind.SET):
        return _requested(intent, base, unschedulable, new_state, reasons)
    pressure_since = _pressure_since(snapshot, state, settings, now)
    new_state = replace(new_state, pressure_since=pressure_since)

    estimate = _estimate(base, unschedulable, new_state)
    launches = _scale_up(base, estimate, pressure_since, new_state, reasons)
    if launches:
        return base.decision(
            Action.SCALE_UP,
            reasons,
            replace(new_state, last_scale_up=now, pressure_since=None, unneeded_since={}),
            launches=launches,
            unhelpable=estimate.unhelpable,
        )

    removal = _scale_down(base, estimate, new_state, reasons)
    new_state = replace(new_state, unneeded_since=removal.unneeded)
    if removal.remove:
        return base.decision(
            Action.SCALE_DOWN,
            reasons,
            replace(new_state, last_scale_down=now),
            removal=removal,
            unhelpable=estimate.unhelpable,
        )
    if not reasons:
        reasons.append(Reason(ReasonCode.STEADY, f"{fleet.count} workers, nothing to change"))
    return base.decision(Action.NONE, reasons, new_state, removal=removal, unhelpable=estimate.unhelpable)


@dataclass(frozen=True, slots=True)
class _Base:
    """What every part of one plan reads."""

    snapshot: ClusterSnapshot
    fleet: _Fleet
    settings: Settings
    now: float
    terminate: tuple[str, ...]

    def decision(
        self,
        action: Action,
        reasons: Sequence[Reason],
        state: ScalingState,
        *,
        launches: Mapping[str, int] | None = None,
        removal: _Removal | None = None,
        unhelpable: Sequence[Unhelpable] = (),
    ) -> Decision:
        remove = tuple(removal.remove) if removal else ()
        return Decision(
            action,
            launches=dict(launches or {}),
            remove=remove,
            terminate_unjoined=self.terminate,
            reasons=tuple(reasons),
            state=state,
            instances={n: self.fleet.binding.instance_of[n] for n in remove},
            nodes=dict(removal.verdicts) if removal else {},
            unhelpable=tuple(unhelpable),
        )


def _requested(
    intent: Intent, base: _Base, unschedulable: Sequence[Pod], state: ScalingState, reasons: list[Reason]
) -> Decision:
    fleet, settings, now = base.fleet, base.settings, base.now
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
            launches = spread(count, fleet.alive, base.snapshot.zones)
            return base.decision(
                Action.SCALE_UP, reasons, replace(state, last_scale_up=now, unneeded_since={}), launches=launches
            )
    elif delta < 0:
        estimate = _estimate(base, unschedulable, state)
        removal = _Removal(base, state)
        if estimate.helpable:
            reasons.append(Reason(ReasonCode.PENDING_PODS, f"{estimate.helpable} pods wait for capacity"))
        else:
            # Skips the timers and the utilization threshold, never a safety rule or a budget.
            limit = min(-delta, _room_above_min(fleet, settings, reasons))
            if 0 < limit < -delta:
                reasons.append(
                    Reason(ReasonCode.AT_MIN, f"{-delta} asked, {limit} above min_nodes {settings.min_nodes}")
                )
            removal.select(removal.movable(), limit, reasons)
            if limit > 0 and len(removal.remove) < -delta:
                reasons.append(
                    Reason(
                        ReasonCode.NO_CANDIDATE, f"{-delta} asked, {len(removal.remove)} can go without stranding pods"
                    )
                )
        if removal.remove:
            return base.decision(
                Action.SCALE_DOWN,
                reasons,
                replace(state, last_scale_down=now),
                removal=removal,
                unhelpable=estimate.unhelpable,
            )
        return base.decision(Action.NONE, reasons, state, removal=removal, unhelpable=estimate.unhelpable)
    else:
        reasons.append(Reason(ReasonCode.STEADY, f"already {fleet.count} workers"))
    return base.decision(Action.NONE, reasons, state)


def _fleet(snapshot: ClusterSnapshot, state: ScalingState, settings: Settings, now: float) -> _Fleet:
    alive = tuple(i for i in snapshot.instances if i.alive)
    seen = {i.id for i in snapshot.instances}
    unseen = sum(
        1
        for launch in state.launches
        if launch.instance_id not in seen and now - launch.launched_at < LAUNCH_VISIBILITY_GRACE_S
    )
    binding = bind(snapshot.nodes, alive)
    # A control-plane node is never a worker, even on a worker-tagged instance; but it has joined.
    workers = {i: n for i, n in binding.node_of.items() if not n.control_plane}
    ready = {i: n for i, n in workers.items() if n.ready}
    waiting = [i for i in alive if i.id not in ready]
    deadline = settings.max_node_provision_time_s
    dead = []
    for inst in alive:
        node = workers.get(inst.id)
        if node is None or node.ready:
            continue
        since = node.ready_since if node.ready_since is not None else node.created_at or inst.launched_at
        # The Ready condition last moved at registration: this node has never been Ready.
        never_ready = node.ready_since is None or node.ready_since <= node.created_at + NEVER_READY_SLACK_S
        if (never_ready and now - inst.launched_at > deadline) or now - since > settings.scale_down_unready_time_s:
            dead.append(node)
    dead_ids = {binding.instance_of[n.name] for n in dead}
    return _Fleet(
        alive=alive,
        unseen_launches=unseen,
        ready_by_instance=ready,
        in_flight=tuple(i for i in waiting if now - i.launched_at <= deadline and i.id not in dead_ids),
        unjoined=tuple(i for i in waiting if now - i.launched_at > deadline and not binding.joined(i.id)),
        dead=tuple(dead),
        draining=frozenset(d.node for d in state.drains),
        binding=binding,
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


@dataclass(slots=True)
class _Estimate:
    """Where the pending pods would go: launching workers, new ones, or nowhere."""

    launches: Counter[str] = field(default_factory=Counter)
    """Zone -> new workers the pending pods need."""
    unhelpable: list[Unhelpable] = field(default_factory=list)
    helpable: int = 0
    """Pending pods some worker (running, launching or new) could host: they hold scale-down."""
    on_launching: int = 0
    """Of the packed pods, those that fit on workers already launching."""


def _estimate(base: _Base, unschedulable: Sequence[Pod], state: ScalingState) -> _Estimate:
    """First-fit decreasing of the pending pods onto the workers already launching, then onto new
    workers of the template, each opened in the zone with the fewest workers that can host the pod.
    A pod no new worker could host is reported, never launched for.

    Running nodes are in the room for what runs on them (spread, anti-affinity) but take no
    pending pod: the scheduler has already said those pods do not fit there, and it sees more
    than this model does."""
    estimate = _Estimate()
    if not unschedulable:
        return estimate
    settings, now, fleet = base.settings, base.now, base.fleet
    waited = [p for p in unschedulable if now - (p.unschedulable_since or now) >= settings.new_pod_scale_up_delay_s]
    estimate.helpable = len(unschedulable) - len(waited)
    room = _destinations(base.snapshot, fleet.draining)
    seen = {i.id for i in base.snapshot.instances}
    launching = [(i.az, i.id) for i in fleet.in_flight] + [
        (x.az, x.instance_id)
        for x in state.launches
        if x.instance_id not in seen and now - x.launched_at < LAUNCH_VISIBILITY_GRACE_S
    ]
    for az, instance_id in launching:
        _add_template(room, base, f"launching-{instance_id}", az)
    zones = tuple(base.snapshot.zones) or ("",)
    per_zone = Counter(i.az for i in fleet.alive)
    cpu, mem = settings.node_cpu_m, settings.node_mem_mib
    for pod in sorted(waited, key=lambda p: max(p.cpu_m / cpu, p.mem_mib / mem), reverse=True):
        slot = room.first_fit(pod, [s for s in room.slots.values() if s.new])
        if slot is not None:
            room.place(pod, slot)
            estimate.helpable += 1
            estimate.on_launching += not slot.name.startswith("new-")
            continue
        failures = []
        for zone in sorted(zones, key=lambda z: per_zone[z]):
            fresh = _add_template(room, base, f"new-{zone or 'any'}-{sum(estimate.launches.values())}", zone)
            why = room.failure(pod, fresh)
            if why is None:
                room.place(pod, fresh)
                per_zone[zone] += 1
                estimate.launches[zone] += 1
                estimate.helpable += 1
                break
            room.withdraw(fresh.name)
            failures.append((why, zone))
        else:
            why, _ = Counter(failures).most_common(1)[0][0]
            where = "in any zone" if len(zones) > 1 else "on a new worker"
            estimate.unhelpable.append(Unhelpable(pod.key, why, f"{EXPLAIN[why]} {where}"))
    return estimate


def _add_template(room: Room, base: _Base, name: str, zone: str) -> Slot:
    """A worker of the template (WORKER_LABELS, WORKER_TAINTS, the zone) with the DaemonSet pods
    that would land on it."""
    settings = base.settings
    labels = {**settings.labels, HOSTNAME_LABEL: name}
    if zone:
        labels[ZONE_LABEL] = zone
    slot = Slot(
        name,
        labels,
        settings.taints,
        settings.node_cpu_m,
        settings.node_mem_mib,
        settings.node_max_pods,
        new=True,
        zone=zone or None,
    )
    return room.add(slot, landing_daemonsets(slot, base.snapshot.daemonsets))


def _destinations(snapshot: ClusterSnapshot, draining: frozenset[str]) -> Room:
    """Every node kube-scheduler could place a pod on now, with what runs there."""
    pods_by_node = _pods_by_node(snapshot.pods)
    room = Room()
    for node in snapshot.nodes:
        if node.ready and not node.cordoned and node.name not in draining:
            room.add(_slot(node), pods_by_node.get(node.name, ()))
    return room


def _slot(node: Node) -> Slot:
    slot = Slot.of(node)
    if HOSTNAME_LABEL not in slot.labels:  # the kubelet always sets it; snapshots built by hand may not
        slot.labels = {**slot.labels, HOSTNAME_LABEL: node.name}
    return slot


def _pods_by_node(pods: Iterable[Pod]) -> dict[str, list[Pod]]:
    by_node: dict[str, list[Pod]] = defaultdict(list)
    for p in pods:
        if p.node is not None:
            by_node[p.node].append(p)
    return by_node


def _scale_up(
    base: _Base,
    estimate: _Estimate,
    pressure_since: float | None,
    state: ScalingState,
    reasons: list[Reason],
) -> dict[str, int]:
    fleet, settings, now, snapshot = base.fleet, base.settings, base.now, base.snapshot
    extra = 0
    if fleet.dead:
        names = ", ".join(sorted(n.name for n in fleet.dead))
        reasons.append(Reason(ReasonCode.UNREADY_NODE, f"{names} not Ready in time: replaced, then removed"))
    if fleet.capacity < settings.min_nodes:
        extra = settings.min_nodes - fleet.capacity
        reasons.append(
            Reason(ReasonCode.BELOW_MIN, f"{fleet.capacity} usable workers < min_nodes {settings.min_nodes}")
        )
    if estimate.unhelpable:
        shown = "; ".join(f"{u.pod}: {u.detail}" for u in estimate.unhelpable[:5])
        more = f" (+{len(estimate.unhelpable) - 5} more)" if len(estimate.unhelpable) > 5 else ""
        reasons.append(
            Reason(
                ReasonCode.NO_WORKER_FITS, f"{len(estimate.unhelpable)} pending pods fit no new worker: {shown}{more}"
            )
        )
    needed = sum(estimate.launches.values())
    if needed:
        reasons.append(
            Reason(ReasonCode.UNSCHEDULABLE_PODS, f"{estimate.helpable} unschedulable pods need {needed} more workers")
        )
    elif estimate.on_launching:
        reasons.append(
            Reason(
                ReasonCode.CAPACITY_IN_FLIGHT,
                f"{estimate.on_launching} unschedulable pods fit on "
                f"{len(fleet.in_flight) + fleet.unseen_launches} workers already launching",
            )
        )

    if pressure_since is not None and now - pressure_since >= settings.cpu_high_window_s:
        ready = len(fleet.ready_by_instance)
        for code, name, value, threshold in _pressures(snapshot, settings):
            if fleet.in_flight or fleet.unseen_launches:
                reasons.append(Reason(ReasonCode.CAPACITY_IN_FLIGHT, f"{name} {value:.3g} high; workers launching"))
            elif ready:
                # Enough workers to bring the signal back under its threshold, if load spreads evenly.
                more = max(1, math.ceil(ready * value / threshold) - ready) if threshold > 0 else 1
                detail = f"{name} {value:.3g} >= {threshold:.3g} for {now - pressure_since:.0f}s: {more} more"
                reasons.append(Reason(code, detail))
                extra = max(extra, more)

    launches = Counter(estimate.launches)
    if extra > needed:
        launches.update(spread(extra - needed, fleet.alive, snapshot.zones, planned=launches))
    wanted = sum(launches.values())
    if not wanted:
        return {}
    if state.backoff_until is not None and now < state.backoff_until and fleet.capacity >= settings.min_nodes:
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
        while sum(launches.values()) > count:
            launches[launches.most_common(1)[0][0]] -= 1
    return {z: n for z, n in launches.items() if n > 0}


def spread(
    count: int, alive: Iterable[Instance], zones: Sequence[str], planned: Mapping[str, int] | None = None
) -> dict[str, int]:
    """Each launch goes to the zone with the fewest workers (ties: the order zones are given)."""
    if not zones:
        return {"": count}
    per_zone = Counter({z: 0 for z in zones})
    per_zone.update(i.az for i in alive if i.az in per_zone)
    per_zone.update({z: n for z, n in (planned or {}).items() if z in per_zone})
    plan: dict[str, int] = defaultdict(int)
    for _ in range(count):
        zone = min(zones, key=lambda z: per_zone[z])
        per_zone[zone] += 1
        plan[zone] += 1
    return dict(plan)


def pod_blocker(pod: Pod) -> str | None:
    """Why this pod cannot be moved off its node, or None if it can (DaemonSet and mirror pods
    stay with the node and are not asked)."""
    ann = pod.annotations
    if ann.get(SAFE_TO_EVICT) == "false":
        return f"{pod.key} is annotated {SAFE_TO_EVICT}=false"
    if ann.get(DO_NOT_DISRUPT) == "true":
        return f"{pod.key} is annotated {DO_NOT_DISRUPT}=true"
    if ann.get(SAFE_TO_EVICT) == "true":
        return None
    if pod.owner_kind is None:
        return f"{pod.key} has no controller"
    if pod.namespace == "kube-system" and not (pod.has_pdb or pod.pdbs):
        return f"{pod.key} is a kube-system pod without a PodDisruptionBudget"
    if pod.local_storage and not _local_volumes_safe(pod):
        return f"{pod.key} uses local storage"
    if pod.placement.volume_problem is not None:
        return f"{pod.key}: {pod.placement.volume_problem}"
    return None


def _local_volumes_safe(pod: Pod) -> bool:
    """Every local volume is listed in safe-to-evict-local-volumes (Cluster Autoscaler's rule)."""
    # Split on "," and nothing trimmed, as Cluster Autoscaler reads it: " scratch" is not "scratch".
    listed = {v for v in pod.annotations.get(SAFE_TO_EVICT_LOCAL_VOLUMES, "").split(",") if v}
    return bool(pod.local_volumes) and set(pod.local_volumes) <= listed


class _Removal:
    """Scale-down's view: every worker's verdict, and the removals chosen so far.

    Destinations are the nodes the scheduler could use now (any Ready, schedulable node, not
    only ours), with their DaemonSet pods, and with room already taken by the pods still on
    draining nodes. Each removal consumes the room its pods move into and the PDB budgets they
    use, so two removals never count on the same room or the same disruption.
    """

    def __init__(self, base: _Base, state: ScalingState) -> None:
        self.base = base
        snapshot, fleet = base.snapshot, base.fleet
        self.pods_by_node = _pods_by_node(snapshot.pods)
        self.room = _destinations(snapshot, fleet.draining)
        for name in sorted(fleet.draining):
            for pod in self.movers(name):
                slot = self.room.first_fit(pod)
                if slot is not None:
                    self.room.place(pod, slot)
        self.budgets = dict(snapshot.pdbs)
        self.workers = sorted(fleet.ready_by_instance.values(), key=lambda n: n.name)
        self.remove: list[str] = []
        self._moved: list[Pod] = []
        """The pods of the nodes chosen so far, and where they were placed together."""
        self._moves: list[Move] = []
        self.unneeded: dict[str, float] = {}
        self.verdicts: dict[str, NodeVerdict] = {}
        for node in fleet.binding.node_of.values():
            if not node.control_plane:
                self.verdicts[node.name] = self._standing(node)
        for names in fleet.binding.ambiguous.values():
            for name in names:
                self.verdicts[name] = NodeVerdict(False, "ambiguous_instance", "two nodes claim one instance")

    def _standing(self, node: Node) -> NodeVerdict:
        """The verdict before any room is looked at."""
        fleet = self.base.fleet
        if node.name in fleet.draining:
            return NodeVerdict(False, "draining", "a drain is under way")
        if any(node is d for d in fleet.dead):
            return NodeVerdict(False, "not_ready", "not Ready in time: replaced, then removed")
        if not node.ready:
            return NodeVerdict(False, "not_ready", "NotReady, within scale_down_unready_time")
        if node.cordoned:
            return NodeVerdict(False, "cordoned", "cordoned by someone else")
        return NodeVerdict(False, "not_assessed", "scale-down was not looked at")

    def movers(self, name: str) -> list[Pod]:
        return [p for p in self.pods_by_node.get(name, ()) if not p.stays]

    def mark(self, reason: str, detail: str) -> None:
        """Scale-down is off for the whole cluster: say so on every worker not already judged."""
        for name, v in self.verdicts.items():
            if v.reason == "not_assessed":
                self.verdicts[name] = NodeVerdict(False, reason, detail)

    def movable(self) -> list[Node]:
        """Ready workers whose pods may all move, best to remove first: empty ones, then from the
        zone with most workers, then the least used."""
        nodes = [n for n in self.workers if self.verdicts[n.name].reason == "not_assessed"]
        found = []
        for node in nodes:
            verdict = self.protected(node)
            if verdict is not None:
                self.verdicts[node.name] = verdict
            else:
                found.append(node)
        per_zone = Counter(n.az for n in self.workers)
        found.sort(
            key=lambda n: (
                bool(self.movers(n.name)),
                -per_zone[n.az],
                _requested_utilization(n, self.pods_by_node.get(n.name, ())),
                n.name,
            )
        )
        return found

    def protected(self, node: Node) -> NodeVerdict | None:
        if node.scale_down_disabled:
            return NodeVerdict(False, "scale_down_disabled", "annotated scale-down-disabled=true")
        movers = self.movers(node.name)
        for pod in movers:
            why = pod_blocker(pod)
            if why is not None:
                return NodeVerdict(False, "pod_cannot_move", why)
        short = self._pdb_short(movers)
        if short is not None:
            return NodeVerdict(False, "pdb_exhausted", short)
        return None

    def _pdb_short(self, pods: Sequence[Pod]) -> str | None:
        need = Counter(key for p in pods for key in p.pdbs if key in self.budgets)
        for key, n in sorted(need.items()):
            if self.budgets[key] < n:
                return f"PodDisruptionBudget {key} allows {self.budgets[key]} disruptions, {n} pods would go"
        return None

    def fits(self, node: Node) -> NodeVerdict:
        """Would every pod of `node` find a place on the other nodes, in the room the removals
        chosen so far leave? The room is left exactly as it was."""
        return self._try(node, keep=False)

    def _try(self, node: Node, *, keep: bool) -> NodeVerdict:
        # Every removal of this cycle drains at once: their pods are placed together, afresh, so
        # none counts on a pod that is itself about to move (for spread or affinity) or lands on a
        # node that goes too.
        own = self.movers(node.name)
        short = self._pdb_short(own)
        if short is not None:
            return NodeVerdict(False, "pdb_exhausted", short)
        self.room.undo(self._moves)
        slot = self.room.withdraw(node.name)
        moves, stuck = self.room.place_all([*self._moved, *own])
        verdict = None
        unsettled = self._unsettled(moves) if stuck is None else None
        if unsettled is not None:
            verdict = NodeVerdict(
                False, "no_room", f"{unsettled.key}: its spread or affinity breaks once every drained pod has moved"
            )
        elif stuck is not None:
            others = list(self.room.slots.values())
            pinned = bool(others) and all(self.room.static_failure(stuck, s) for s in others)
            code = "pod_cannot_move" if pinned else "no_room"
            verdict = NodeVerdict(False, code, f"{stuck.key}: {self.room.why_not(stuck)}")
        if verdict is None and keep:
            self._moves, self._moved = moves, [*self._moved, *own]
            for key in (k for p in own for k in p.pdbs if k in self.budgets):
                self.budgets[key] -= 1
            return NodeVerdict(True, "unneeded" if own else "empty", f"{len(own)} pods to move")
        self.room.undo(moves)
        if slot is not None:
            self.room.restore(slot)
        self._moves, _ = self.room.place_all(self._moved)  # first-fit on the same room: the same moves
        return verdict or NodeVerdict(True, "unneeded" if own else "empty", f"{len(own)} pods to move")

    def _unsettled(self, moves: Sequence[Move]) -> Pod | None:
        """A moved pod whose spread or affinity the moves placed after it break: the drains run
        in parallel, so any of them may land first. Each such pod is checked against the final
        layout, as if it were the last to be scheduled."""
        for move in moves:
            p = move.pod.placement
            if p.spread or p.affinity or p.anti_affinity:
                self.room.undo([move])
                ok = self.room.failure(move.pod, move.slot) is None
                self.room.place(move.pod, move.slot)
                if not ok:
                    return move.pod
        return None

    def select(
        self, candidates: Sequence[Node], limit: int, reasons: list[Reason], code: ReasonCode | None = None
    ) -> None:
        """Up to `limit` of `candidates` within max_empty_bulk_delete and max_drains_in_parallel,
        each only if its pods fit in the room the earlier choices left."""
        settings, fleet, now = self.base.settings, self.base.fleet, self.base.now
        empty_budget = settings.max_empty_bulk_delete
        drain_budget = settings.max_drains_in_parallel - len(fleet.draining)
        for node in candidates:
            if len(self.remove) >= limit:
                break
            movers = self.movers(node.name)
            if (drain_budget if movers else empty_budget) <= 0:
                continue
            verdict = self._try(node, keep=True)
            self.verdicts[node.name] = verdict
            if not verdict.candidate:
                continue
            self.remove.append(node.name)
            if movers:
                drain_budget -= 1
            else:
                empty_budget -= 1
            since = self.unneeded.get(node.name)
            why = f"unneeded for {now - since:.0f}s, " if since is not None and code is None else ""
            reasons.append(
                Reason(
                    code or (ReasonCode.NODE_UNNEEDED if movers else ReasonCode.EMPTY_NODE),
                    f"{node.name} {why}{len(movers)} pods to move",
                )
            )


def _scale_down(base: _Base, estimate: _Estimate, state: ScalingState, reasons: list[Reason]) -> _Removal:
    """Nodes to remove now, every worker's verdict, and the unneeded-since clock of every node
    that qualifies."""
    fleet, settings, now, snapshot = base.fleet, base.settings, base.now, base.snapshot
    removal = _Removal(base, state)
    _remove_dead(removal, reasons)
    if estimate.helpable:
        reasons.append(Reason(ReasonCode.PENDING_PODS, f"{estimate.helpable} pods wait for capacity"))
        removal.mark("pending_pods", f"{estimate.helpable} pods wait for capacity")
        return removal
    above = fleet.count - settings.max_nodes
    if above > 0:
        limit = min(above, _room_above_min(fleet, settings, reasons))
        removal.select(removal.movable(), limit, reasons, ReasonCode.ABOVE_MAX)
        if not removal.remove:
            reasons.append(
                Reason(ReasonCode.ABOVE_MAX, f"{fleet.count} workers > max_nodes {settings.max_nodes}, none removable")
            )
        return removal
    if not snapshot.metrics.known:
        why = f"no scale-down on unknown metrics: {snapshot.metrics.unknown_reason}"
        reasons.append(Reason(ReasonCode.METRICS_UNKNOWN, why))
        removal.mark("metrics_unknown", why)
        return removal

    ripe = []
    for node in removal.movable():
        pods = removal.pods_by_node.get(node.name, ())
        utilization = _requested_utilization(node, pods)
        if utilization >= settings.scale_down_utilization_threshold:
            removal.verdicts[node.name] = NodeVerdict(
                False,
                "utilization_high",
                f"requests {utilization:.0%} >= scale_down_utilization_threshold "
                f"{settings.scale_down_utilization_threshold:.0%}",
            )
            continue
        verdict = removal.fits(node)
        if verdict.candidate:
            removal.unneeded[node.name] = state.unneeded_since.get(node.name, now)
            if not _usage_low(node, removal.movers(node.name), snapshot.metrics.node_cpu.get(node.name), settings):
                verdict = NodeVerdict(False, "usage_high", "CPU usage unknown or above what its pods request")
            elif now - removal.unneeded[node.name] >= settings.scale_down_unneeded_time_s:
                ripe.append(node)
        removal.verdicts[node.name] = verdict

    blocked = _global_blocker(fleet, state, settings, now)
    if blocked:
        reasons.append(blocked)
        return removal
    if not ripe:
        waiting = [n for n in removal.unneeded if removal.verdicts[n].candidate]
        detail = (
            f"{len(waiting)} nodes unneeded, none for {settings.scale_down_unneeded_time_s}s yet"
            if waiting or not removal.unneeded
            else f"{', '.join(sorted(removal.unneeded))} unneeded, but CPU usage is unknown or above what its pods request"
        )
        reasons.append(Reason(ReasonCode.NO_CANDIDATE, detail))
        return removal
    limit = _room_above_min(fleet, settings, reasons) - len(removal.remove)
    if limit > 0:
        removal.select(ripe, limit + len(removal.remove), reasons)
        if not any(n.name in removal.remove for n in ripe):
            reasons.append(Reason(ReasonCode.NO_CANDIDATE, "no unneeded node can be removed within the budgets"))
    return removal


def _remove_dead(removal: _Removal, reasons: list[Reason]) -> None:
    """A worker that never became Ready, or stayed NotReady too long, goes once the Ready workers
    meet min_nodes again without it (its replacement has joined), by the same drain and the same
    rules for its pods."""
    fleet, settings = removal.base.fleet, removal.base.settings
    if not fleet.dead or len(fleet.ready_by_instance) < settings.min_nodes:
        return
    removable = []
    for node in sorted(fleet.dead, key=lambda n: n.name):
        if node.name in fleet.draining:
            continue
        verdict = removal.protected(node)
        if verdict is None:
            removable.append(node)
        else:
            removal.verdicts[node.name] = verdict
    removal.select(removable, len(removable), reasons, ReasonCode.UNREADY_NODE)


def _room_above_min(fleet: _Fleet, settings: Settings, reasons: list[Reason]) -> int:
    ready = len(fleet.ready_by_instance) - len(fleet.draining & {n.name for n in fleet.ready_by_instance.values()})
    room = ready - settings.min_nodes
    if room <= 0:
        reasons.append(Reason(ReasonCode.AT_MIN, f"{ready} Ready workers, min_nodes {settings.min_nodes}"))
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


def _requested_utilization(node: Node, pods: Sequence[Pod]) -> float:
    """Requests over allocatable, DaemonSet and mirror pods included (they use the node too)."""
    cpu = sum(p.cpu_m for p in pods) / node.alloc_cpu_m if node.alloc_cpu_m else 1.0
    mem = sum(p.mem_mib for p in pods) / node.alloc_mem_mib if node.alloc_mem_mib else 1.0
    return max(cpu, mem)
