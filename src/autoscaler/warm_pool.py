"""The warm pool: removed workers stopped rather than terminated, up to warm_pool_size, and
started again before any new worker is launched.

A stopped worker bills only its volumes, and it starts sooner than a new one joins: its network
interface and volume exist, its first boot is done, its K3s agent already registered. Its Node
stays, cordoned by the drain that stopped it and NotReady while it is stopped (no pod lands on
it, and a stopped worker is not a dead one: it is not alive). The actuator uncordons it as it
starts, and the NotReady taints of the node lifecycle controller keep pods off it until its
kubelet reports Ready. A Ready worker still cordoned by node-fleet with no drain under way (a
start whose uncordon was lost) is given back here.

Only on-demand workers are kept (a one-time spot instance cannot be stopped), and only within
warm_pool_max_age_s of their last start: an older one may run an older AMI than a launch would.
A worker stopped for warm_pool_max_stopped_s is terminated: its volume has billed by then what
stopping it early saved.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

from autoscaler.matching import bind
from autoscaler.model import Instance, InstanceState, Node, ReasonCode
from autoscaler.plan_base import Draft
from autoscaler.rules import first_blocker, movers
from autoscaler.scheduling import REGION_LABEL, ZONE_LABEL


def warm_starts(draft: Draft, launches: Mapping[str, int]) -> tuple[tuple[str, ...], dict[str, int]]:
    """(stopped workers to start, the launches left): each zone's launches are served first by its
    stopped workers, the most recently run first."""
    stopped = stopped_newest_first(draft)
    starts: list[str] = []
    left: dict[str, int] = {}
    for az, count in launches.items():
        found = [i.id for i in stopped if i.az == az][:count]
        starts += found
        if count > len(found):
            left[az] = count - len(found)
    if starts:
        draft.say(ReasonCode.WARM_START, f"{', '.join(starts)} started from the warm pool")
    return tuple(starts), left


def stopped_newest_first(draft: Draft) -> list[Instance]:
    """The pool's stopped workers, the most recently run first."""
    stopped = (i for i in draft.base.fleet.warm if i.state is InstanceState.STOPPED)
    return sorted(stopped, key=lambda i: (-i.launched_at, i.id))


def pool_room(draft: Draft) -> int:
    """Workers the pool can still take: its size less its stopped workers and the drains already
    keeping theirs."""
    fleet = draft.base.fleet
    room = draft.base.settings.warm_pool_size - len(fleet.warm) - sum(1 for d in draft.state.drains if d.keep)
    return max(room, 0)


def stoppable(draft: Draft, names: Sequence[str]) -> list[str]:
    """The nodes of `names` that could be stopped: Ready on-demand workers started within
    warm_pool_max_age_s (a one-time spot instance cannot be stopped)."""
    base = draft.base
    fleet = base.fleet
    alive = {i.id: i for i in fleet.alive}
    ready = {n.name for n in fleet.ready_by_instance.values()}
    fresh_since = base.now - base.settings.warm_pool_max_age_s
    return [
        name
        for name in names
        if name in ready
        and (instance := alive[fleet.binding.instance_of[name]]).lifecycle == "on-demand"
        and instance.launched_at >= fresh_since
    ]


def keepable(draft: Draft, names: Sequence[str]) -> list[str]:
    """The nodes of `names` that would be stopped into the pool, in order: stoppable, as many as it
    has room for, and only while their zone would stay normal for the node lifecycle controller."""
    return _sorted_by_zone(draft, names)[0]


def _sorted_by_zone(draft: Draft, names: Sequence[str]) -> tuple[list[str], list[str]]:
    """(kept, crowded): of the stoppable nodes of `names` the pool has room for, those whose zone
    stays normal with them stopped, and those whose zone would not."""
    nodes = {n.name: n for n in draft.base.snapshot.nodes}
    not_ready, total = _zone_counts(draft)
    kept: list[str] = []
    crowded: list[str] = []
    for name in stoppable(draft, names)[: pool_room(draft)]:
        zone = _zone_key(nodes[name])
        if _stays_normal(not_ready[zone] + 1, total[zone]):
            kept.append(name)
            not_ready[zone] += 1
        else:
            crowded.append(name)
    return kept, crowded


def kept_warm(draft: Draft, remove: Sequence[str]) -> tuple[str, ...]:
    """The nodes of `remove` whose instance is stopped into the pool; says why others are not."""
    kept, crowded = _sorted_by_zone(draft, remove)
    if kept:
        size = draft.base.settings.warm_pool_size
        draft.say(ReasonCode.WARM_POOL, f"{', '.join(kept)} to be stopped into the warm pool (size {size})")
    if crowded:
        draft.say(
            ReasonCode.WARM_POOL,
            f"{', '.join(crowded)} terminated, not stopped: another NotReady node in its zone could make the "
            "node lifecycle controller see it as disrupted and stop evicting pods from failed nodes",
        )
    return tuple(kept)


def _immovable_pod(draft: Draft, node: Node | None) -> str | None:
    """Why a pod bound to a stopped worker's Node (by nodeName, say) could not move, if one could
    not: the worker is never terminated under it."""
    return None if node is None else first_blocker(movers(draft.base.pods_by_node.get(node.name, ())))


def _expired(draft: Draft, instance: Instance) -> bool:
    """Started over warm_pool_max_age_s ago, or stopped over warm_pool_max_stopped_s ago."""
    now, settings = draft.base.now, draft.base.settings
    stopped_at = instance.stopped_at
    return now - instance.launched_at > settings.warm_pool_max_age_s or (
        stopped_at is not None and now - stopped_at > settings.warm_pool_max_stopped_s
    )


UNHEALTHY_ZONE_THRESHOLD = 0.55
"""kube-controller-manager's --unhealthy-zone-threshold (its default; K3s keeps it). A zone with
more than 2 NotReady nodes, at least this share of its nodes, is partially disrupted, and in a
cluster of up to 50 nodes (--large-cluster-size-threshold) the node lifecycle controller then
evicts no pod from a failed node there."""


def _stays_normal(not_ready: int, total: int) -> bool:
    """With `not_ready` of the zone's `total` nodes NotReady, would the zone stay normal if one
    more node failed? A stopped worker's Node is NotReady: the pool must not leave a real failure
    unhandled."""
    after = not_ready + 1
    return after <= 2 or after / max(total, 1) < UNHEALTHY_ZONE_THRESHOLD


def _zone_key(node: Node) -> str:
    return node.labels.get(REGION_LABEL, "") + ":" + node.labels.get(ZONE_LABEL, "")


def _zone_counts(draft: Draft) -> tuple[Counter[str], Counter[str]]:
    """Per zone, as the node lifecycle controller keys them: NotReady nodes (and those a drain is
    about to stop), and all nodes."""
    stopping = {d.node for d in draft.state.drains if d.keep}
    not_ready: Counter[str] = Counter()
    total: Counter[str] = Counter()
    for node in draft.base.snapshot.nodes:
        zone = _zone_key(node)
        total[zone] += 1
        not_ready[zone] += not node.ready or node.name in stopping
    return not_ready, total


def tend(draft: Draft) -> None:
    """The pool's chores each cycle: stopped workers last started over warm_pool_max_age_s ago or
    stopped over warm_pool_max_stopped_s ago, and those past its size (run longest ago first), are
    terminated; Ready workers left cordoned by a drain that is over are given back."""
    base = draft.base
    fleet, settings = base.fleet, base.settings
    nodes = bind(base.snapshot.nodes, fleet.warm).node_of
    held = {i.id: why for i in fleet.warm if (why := _immovable_pod(draft, nodes.get(i.id))) is not None}
    by_age = sorted((i for i in fleet.warm if i.id not in held), key=lambda i: (i.launched_at, i.id))
    due = [i for i in fleet.warm if i.id in held and _expired(draft, i)]
    for i in sorted(due, key=lambda i: i.id):
        draft.say(ReasonCode.WARM_POOL, f"{i.id} kept in the pool, not terminated: {held[i.id]}")
    stale = [i.id for i in by_age if base.now - i.launched_at > settings.warm_pool_max_age_s]
    idle = [i.id for i in by_age if i.id not in stale and _expired(draft, i)]
    gone = {*stale, *idle}
    extra = [i.id for i in by_age if i.id not in gone][: max(len(by_age) - len(gone) - settings.warm_pool_size, 0)]
    if stale:
        max_age = settings.warm_pool_max_age_s
        draft.say(ReasonCode.WARM_POOL, f"{', '.join(stale)} terminated: last started over {max_age}s ago")
    if idle:
        max_stopped = settings.warm_pool_max_stopped_s
        draft.say(
            ReasonCode.WARM_POOL,
            f"{', '.join(idle)} terminated: stopped over {max_stopped}s ago, its volume has billed what stopping "
            "it early saved",
        )
    if extra:
        draft.say(
            ReasonCode.WARM_POOL,
            f"{', '.join(extra)} terminated: {len(fleet.warm)} stopped workers > warm_pool_size {settings.warm_pool_size}",
        )
    draft.retire = (*stale, *idle, *extra)
    back = sorted(
        node.name
        for node in fleet.binding.node_of.values()
        if node.ready and node.drained_by_us and node.name not in fleet.draining and not node.control_plane
    )
    if back:
        draft.uncordon = tuple(back)
        draft.say(ReasonCode.REJOINED, f"{', '.join(back)} Ready and cordoned by no drain under way: uncordoned")
