"""Scale-down: which workers to remove now, within min_nodes, the cool-downs and the budgets,
and the unneeded-since clock of every worker that qualifies."""

from __future__ import annotations

from collections.abc import Sequence

from autoscaler.ahead import calm_reason, unneeded_time_s
from autoscaler.model import Node, NodeVerdict, Pod, Reason, ReasonCode
from autoscaler.plan_base import Draft
from autoscaler.removal import Removal
from autoscaler.rules import requested_utilization
from autoscaler.spare import describe
from autoscaler.warm_pool import keepable


def scale_down(draft: Draft, pending: int, spare: Sequence[Pod]) -> Removal:
    """Nodes to remove now, every worker's verdict, and the unneeded-since clock of every node
    that qualifies. `pending`: the pending pods some worker could host (they hold scale-down);
    `spare`: the pods whose room no removal may take (spare.spare_pods)."""
    base, state = draft.base, draft.state
    fleet, settings, now, snapshot = base.fleet, base.settings, base.now, base.snapshot
    removal = Removal(draft)
    _remove_dead(removal)
    if pending:
        draft.say(ReasonCode.PENDING_PODS, f"{pending} pods wait for capacity")
        removal.mark("pending_pods", f"{pending} pods wait for capacity")
        return removal
    above = fleet.count - len(draft.terminate) - settings.max_nodes  # unjoined ones already go
    if above > 0:
        above -= _cancel_launches(draft, above)
        limit = min(above, room_above_min(draft)) if above > 0 else 0
        removal.select(removal.movable(), limit, ReasonCode.ABOVE_MAX)
        if above > 0 and not removal.remove:
            draft.say(ReasonCode.ABOVE_MAX, f"{fleet.count} workers > max_nodes {settings.max_nodes}, none removable")
        return removal
    if not snapshot.metrics.known:
        why = f"no scale-down on unknown metrics: {snapshot.metrics.unknown_reason}"
        draft.say(ReasonCode.METRICS_UNKNOWN, why)
        removal.mark("metrics_unknown", why)
        return removal

    if spare and not removal.keep_room(spare):
        why = f"no room for {describe(spare)} within ramp_window_s of the last scale-up: no worker goes"
        draft.say(ReasonCode.SPARE_ROOM, why)
        removal.mark("spare_room", why)
        return removal

    wait_s = unneeded_time_s(draft)
    warm_wait_s = min(wait_s, settings.warm_pool_unneeded_time_s)
    ripe, early = [], []
    for node in removal.movable():
        pods = removal.pods_by_node.get(node.name, ())
        utilization = requested_utilization(node, pods)
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
            if not _usage_low(draft, node, removal.movers(node.name)):
                verdict = NodeVerdict(False, "usage_high", "CPU usage unknown or above what its pods request")
            elif now - removal.unneeded[node.name] >= wait_s:
                ripe.append(node)
            elif now - removal.unneeded[node.name] >= warm_wait_s:
                early.append(node)
        removal.verdicts[node.name] = verdict
    held = sorted(name for name, v in removal.verdicts.items() if v.reason == "spare_room")
    if held:
        draft.say(ReasonCode.SPARE_ROOM, f"{', '.join(held)} kept: room for {describe(spare)} after the last scale-up")

    blocked = _global_blocker(draft, settings.scale_down_delay_after_add_s)
    # The pool's shorter wait after a scale-up too, never longer than the whole one.
    warm_after_add_s = min(settings.scale_down_delay_after_add_s, settings.warm_pool_unneeded_time_s)
    if (blocked or not ripe) and _stop_early(removal, [*ripe, *early], warm_after_add_s):
        return removal
    if blocked:
        draft.reasons.append(blocked)
        return removal
    if not ripe:
        waiting = [n for n in removal.unneeded if removal.verdicts[n].candidate]
        detail = (
            f"{len(waiting)} nodes unneeded, none for {wait_s}s yet"
            if waiting or not removal.unneeded
            else f"{', '.join(sorted(removal.unneeded))} unneeded, but CPU usage is unknown or above what its pods request"
        )
        draft.say(ReasonCode.NO_CANDIDATE, detail)
        return removal
    calm_reason(draft, wait_s)
    limit = room_above_min(draft) - len(removal.remove)
    if limit > 0:
        removal.select(ripe, limit + len(removal.remove))
        if not any(n.name in removal.remove for n in ripe):
            draft.say(ReasonCode.NO_CANDIDATE, "no unneeded node can be removed within the budgets")
    return removal


def _stop_early(removal: Removal, unneeded: Sequence[Node], after_add_s: int) -> bool:
    """The warm pool's shorter wait: of the `unneeded` workers (unneeded for its wait), those it
    has room for are stopped into it, `after_add_s` after the last scale-up. Whether any was chosen."""
    draft = removal.draft
    names = set(keepable(draft, [n.name for n in unneeded]))
    if not names or _global_blocker(draft, after_add_s) is not None:
        return False
    limit = room_above_min(draft) - len(removal.remove)
    if limit > 0:
        removal.select([n for n in unneeded if n.name in names], limit + len(removal.remove))
    return any(n in names for n in removal.remove)


def _remove_dead(removal: Removal) -> None:
    """A worker that never became Ready, or stayed NotReady too long, goes once the Ready workers
    meet min_nodes again without it (its replacement has joined), by the same drain and the same
    rules for its pods."""
    fleet, settings = removal.draft.base.fleet, removal.draft.base.settings
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
    removal.select(removable, len(removable), ReasonCode.UNREADY_NODE)


def _cancel_launches(draft: Draft, above: int) -> int:
    """Above max_nodes, workers still launching go first, newest first: with no Node yet they hold no
    pods, so stopping them moves nothing, where draining a Ready worker would. How many went."""
    fleet, settings = draft.base.fleet, draft.base.settings
    launching = sorted(
        (i for i in fleet.in_flight if not fleet.binding.joined(i.id)), key=lambda i: (-i.launched_at, i.id)
    )
    cancel = tuple(i.id for i in launching[:above])
    if cancel:
        draft.terminate += cancel
        draft.update(launches=tuple(x for x in draft.state.launches if x.instance_id not in cancel))
        draft.say(
            ReasonCode.ABOVE_MAX,
            f"{', '.join(cancel)} still launching, terminated before joining: "
            f"{fleet.count} workers > max_nodes {settings.max_nodes}",
        )
    return len(cancel)


def room_above_min(draft: Draft) -> int:
    """How many Ready workers may go before min_nodes is reached; says so when none may."""
    fleet, settings = draft.base.fleet, draft.base.settings
    ready = len(fleet.ready_by_instance) - len(fleet.draining & {n.name for n in fleet.ready_by_instance.values()})
    room = ready - settings.min_nodes
    if room <= 0:
        draft.say(ReasonCode.AT_MIN, f"{ready} Ready workers, min_nodes {settings.min_nodes}")
    return room


def _global_blocker(draft: Draft, after_add_s: int) -> Reason | None:
    """Why no worker may go now, if none may: `after_add_s` is the wait after a scale-up."""
    fleet, settings, now, state = draft.base.fleet, draft.base.settings, draft.base.now, draft.state
    if fleet.in_flight or fleet.unseen_launches:
        return Reason(ReasonCode.LAUNCH_IN_FLIGHT, f"{len(fleet.in_flight) + fleet.unseen_launches} workers launching")
    if state.last_scale_up is not None and now - state.last_scale_up < after_add_s:
        return Reason(
            ReasonCode.COOLDOWN_AFTER_ADD, f"{now - state.last_scale_up:.0f}s since the last scale-up < {after_add_s}s"
        )
    if state.last_failure is not None and now - state.last_failure < settings.scale_down_delay_after_failure_s:
        return Reason(
            ReasonCode.COOLDOWN_AFTER_FAILURE,
            f"{now - state.last_failure:.0f}s since the last failure < {settings.scale_down_delay_after_failure_s}s",
        )
    if len(fleet.draining) >= settings.max_drains_in_parallel:
        return Reason(ReasonCode.DRAIN_IN_PROGRESS, f"draining {', '.join(sorted(fleet.draining))}")
    return None


def _usage_low(draft: Draft, node: Node, pods: Sequence[Pod]) -> bool:
    """Under cpu_low, or no more than the pods request: pods that use more than they request
    would overload the nodes they are packed onto. An empty node moves nothing. Checked when
    removing rather than on the unneeded clock, so a lagging reading delays, never resets it."""
    if not pods:
        return True
    usage = draft.base.snapshot.metrics.node_cpu.get(node.name)
    requested_cpu = sum(p.cpu_m for p in pods) / node.alloc_cpu_m if node.alloc_cpu_m else 1.0
    return usage is not None and usage < max(draft.base.settings.cpu_low, requested_cpu)
