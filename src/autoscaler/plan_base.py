"""What every part of one plan reads (`Base`), and the plan in the making (`Draft`).

`Draft` gathers the reasons, the state to hand on and the instances to terminate as the parts
of the plan run; `Draft.decide` is the one place a Decision is built.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from autoscaler.config import Settings
from autoscaler.matching import Binding, bind
from autoscaler.model import (
    Action,
    ClusterSnapshot,
    Decision,
    Instance,
    InstanceState,
    Node,
    NodeVerdict,
    Pod,
    Reason,
    ReasonCode,
    ScalingState,
    Unhelpable,
)
from autoscaler.placement import Slot
from autoscaler.room import Room
from autoscaler.rules import movers
from autoscaler.scheduling import HOSTNAME_LABEL

# A launch EC2 accepted may take a few seconds to show in DescribeInstances; until then the
# state's record of it counts, so a retry does not launch the same capacity twice.
LAUNCH_VISIBILITY_GRACE_S = 120.0
# A Ready condition whose last change came this soon after the Node was created has never been True.
NEVER_READY_SLACK_S = 60.0


@dataclass(frozen=True, slots=True)
class FleetView:
    """The worker fleet as the rules see it, derived once per plan."""

    alive: tuple[Instance, ...]
    unseen_launches: int
    ready_by_instance: Mapping[str, Node]
    in_flight: tuple[Instance, ...]
    unjoined: tuple[Instance, ...]
    """Matched by no Node at all past max_node_provision_time, or past launch_late_after_s while a
    worker launched at or after it is Ready: to be terminated."""
    dead: tuple[Node, ...]
    """Registered workers that never became Ready in time, or NotReady past scale_down_unready_time."""
    draining: frozenset[str]
    binding: Binding
    warm: tuple[Instance, ...] = ()
    """Stopping and stopped workers: the warm pool."""
    late: tuple[Instance, ...] = ()
    """Launches in flight with no Node past launch_late_after_s and not yet overtaken."""

    @property
    def replaced(self) -> tuple[Instance, ...]:
        """The late launch no longer counted as room on its way, when it is the only one: several
        late together, none overtaken, look like failing launches, which a replacement would not
        cure; they wait for max_node_provision_time."""
        return self.late if len(self.late) == 1 else ()

    @property
    def coming(self) -> int:
        """Workers launching that count as room on its way."""
        return len(self.in_flight) - len(self.replaced) + self.unseen_launches

    @property
    def count(self) -> int:
        """Workers that bill or soon will: what max_nodes is counted against."""
        return len(self.alive) + self.unseen_launches

    @property
    def capacity(self) -> int:
        """Workers that are or will be of use (Ready, launching, or NotReady for less than the
        unready time): what min_nodes is counted against. Dead, unjoined and replaced ones are not."""
        return self.count - len(self.dead) - len(self.unjoined) - len(self.replaced)


def fleet_view(snapshot: ClusterSnapshot, state: ScalingState, settings: Settings, now: float) -> FleetView:
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
        # EC2's LaunchTime is the last start: a worker back from the warm pool has been NotReady
        # only since then, though its Node went NotReady when it stopped.
        since = max(since, inst.launched_at)
        # The Ready condition last moved at registration: this node has never been Ready.
        never_ready = node.ready_since is None or node.ready_since <= node.created_at + NEVER_READY_SLACK_S
        if (never_ready and now - inst.launched_at > deadline) or now - since > settings.scale_down_unready_time_s:
            dead.append(node)
    dead_ids = {binding.instance_of[n.name] for n in dead}
    # A worker launched (or started) at or after a late launch is Ready: launches work, that one is stuck.
    newest_ready = max((i.launched_at for i in alive if i.id in ready), default=None)
    unjoined, in_flight, late = [], [], []
    for inst in waiting:
        age, joined = now - inst.launched_at, binding.joined(inst.id)
        if not joined and age > min(deadline, settings.launch_late_after_s):
            if age > deadline or (newest_ready is not None and newest_ready >= inst.launched_at):
                unjoined.append(inst)
                continue
            late.append(inst)
        if age <= deadline and inst.id not in dead_ids:
            in_flight.append(inst)
    return FleetView(
        alive=alive,
        unseen_launches=unseen,
        ready_by_instance=ready,
        in_flight=tuple(in_flight),
        unjoined=tuple(unjoined),
        dead=tuple(dead),
        draining=frozenset(d.node for d in state.drains),
        binding=binding,
        warm=tuple(i for i in snapshot.instances if i.warm),
        late=tuple(late),
    )


@dataclass(frozen=True, slots=True)
class Base:
    """What every part of one plan reads."""

    snapshot: ClusterSnapshot
    fleet: FleetView
    settings: Settings
    now: float
    pods_by_node: Mapping[str, Sequence[Pod]]

    @classmethod
    def of(cls, snapshot: ClusterSnapshot, state: ScalingState, settings: Settings, now: float) -> Base:
        return cls(snapshot, fleet_view(snapshot, state, settings, now), settings, now, snapshot.pods_by_node())

    def destinations(self) -> Room:
        """Every node kube-scheduler could place a pod on now, with what runs there."""
        room = Room()
        for node in self.snapshot.nodes:
            if node.ready and not node.cordoned and node.name not in self.fleet.draining:
                room.add(_slot(node), self.pods_by_node.get(node.name, ()))
        return room

    def room_left(self) -> Room:
        """The destinations, with the pods of draining nodes placed first-fit: where they will go."""
        room = self.destinations()
        for name in sorted(self.fleet.draining):
            for pod in movers(self.pods_by_node.get(name, ())):
                slot = room.first_fit(pod)
                if slot is not None:
                    room.place(pod, slot)
        return room


def _slot(node: Node) -> Slot:
    slot = Slot.of(node)
    if HOSTNAME_LABEL not in slot.labels:  # the kubelet always sets it; snapshots built by hand may not
        slot.labels = {**slot.labels, HOSTNAME_LABEL: node.name}
    return slot


@dataclass(slots=True)
class Draft:
    """One plan in the making: the reasons given so far, the state to hand on, the unjoined
    instances to terminate, and the warm pool's own chores."""

    base: Base
    state: ScalingState
    reasons: list[Reason] = field(default_factory=list)
    terminate: tuple[str, ...] = ()
    retire: tuple[str, ...] = ()
    uncordon: tuple[str, ...] = ()

    def say(self, code: ReasonCode, detail: str) -> None:
        self.reasons.append(Reason(code, detail))

    def update(self, **changes: object) -> None:
        self.state = replace(self.state, **changes)

    def decide(
        self,
        action: Action,
        *,
        launches: Mapping[str, int] | None = None,
        starts: Sequence[str] = (),
        remove: Sequence[str] = (),
        warm: Sequence[str] = (),
        verdicts: Mapping[str, NodeVerdict] | None = None,
        unhelpable: Sequence[Unhelpable] = (),
    ) -> Decision:
        """The Decision, with the Node objects left behind by terminated workers to delete (none
        while paused)."""
        orphans = () if self.state.paused else _orphan_nodes(self.base.snapshot, self.state)
        reasons = list(self.reasons)
        if orphans:
            reasons.append(
                Reason(ReasonCode.ORPHAN_NODE, f"{', '.join(orphans)}: instance terminated, Node object left")
            )
        return Decision(
            action,
            launches=dict(launches or {}),
            remove=tuple(remove),
            terminate_unjoined=self.terminate,
            starts=tuple(starts),
            warm=tuple(warm),
            retire=self.retire,
            uncordon=self.uncordon,
            delete_nodes=orphans,
            reasons=tuple(reasons),
            state=self.state,
            instances={n: self.base.fleet.binding.instance_of[n] for n in remove},
            nodes=dict(verdicts or {}),
            unhelpable=tuple(unhelpable),
        )


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
