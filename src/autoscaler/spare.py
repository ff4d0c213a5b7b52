"""The spare room: soon after a scale-up, room on the Ready nodes for spare_room_pods more pods.

A rise seldom ends with the pods that made the last scale-up: the next ones would each wait for
a start from the warm pool (about 25 s) if the workers were full. So, within ramp_window_s of
the last scale-up and while the warm pool is on, room is kept for spare_room_pods more pods of
the median size of those the workers run: a stopped worker is started when no Ready node has
that room (one at a time, and never a launch), and no unneeded worker goes that would leave
none. The hold does not need a stopped worker: the worker started for the room would otherwise
be stopped again two minutes later, and started again. Outside the window the room goes like
any other. A start for the room is not a scale-up: it opens no window of its own.

The room costs a part-used worker at most, for the window; bench/README.md measures what it buys.
"""

from __future__ import annotations

from collections.abc import Sequence

from autoscaler.model import Pod, ReasonCode
from autoscaler.plan_base import Draft
from autoscaler.rules import movers
from autoscaler.warm_pool import stopped_newest_first

SPARE_NAMESPACE = "node-fleet-spare-room"
"""The namespace of the pods the spare room is kept for: they exist only in the plan."""


def spare_pods(draft: Draft) -> list[Pod]:
    """The pods to keep room for now (none outside the window, with the warm pool off, or with no
    pod running on a worker to take the size of)."""
    base, last = draft.base, draft.state.last_scale_up
    settings, fleet = base.settings, base.fleet
    if not (settings.spare_room_pods and settings.warm_pool_size and settings.ramp_window_s):
        return []
    if last is None or base.now - last > settings.ramp_window_s:
        return []
    running = [p for node in fleet.ready_by_instance.values() for p in movers(base.pods_by_node.get(node.name, ()))]
    if not running:
        return []
    cpu_m = sorted(p.cpu_m for p in running)[len(running) // 2]
    mem_mib = sorted(p.mem_mib for p in running)[len(running) // 2]
    return [
        Pod(f"spare-{k}", SPARE_NAMESPACE, cpu_m, mem_mib, owner_kind=None) for k in range(settings.spare_room_pods)
    ]


def describe(pods: Sequence[Pod]) -> str:
    count = "one more pod" if len(pods) == 1 else f"{len(pods)} more pods"
    return f"{count} of the median size ({pods[0].cpu_m}m CPU, {pods[0].mem_mib}Mi)"


def spare_starts(draft: Draft, pods: Sequence[Pod], pending: int) -> tuple[str, ...]:
    """The stopped worker to start when no Ready node has room for `pods` (spare_pods; none when
    the pool has no stopped worker): the most recently run, one at a time (the next cycle looks
    again once it is Ready). `pending`: the pending pods some worker could host (they come first)."""
    base = draft.base
    fleet, settings = base.fleet, base.settings
    if not pods or pending or fleet.in_flight or fleet.unseen_launches or fleet.count >= settings.max_nodes:
        return ()
    stopped = stopped_newest_first(draft)
    if not stopped:
        return ()
    _, stuck = base.room_left().place_all(pods)
    if stuck is None:
        return ()
    started = stopped[0]
    draft.say(
        ReasonCode.SPARE_ROOM,
        f"no room for {describe(pods)} within ramp_window_s ({settings.ramp_window_s}s) of the last "
        f"scale-up: {started.id} started from the warm pool",
    )
    return (started.id,)
