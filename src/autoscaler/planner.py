"""The decision core: `plan(snapshot, state, settings, now) -> Decision`.

Pure: it reads only its arguments (no clock, no I/O, no boto3/requests/kubernetes), so the
Lambda, the simulator and the tests all run the same rules. Requests drive capacity (pods the
scheduler could not place); CPU usage is a secondary signal that counts only when it is known.

The parts, by job: `plan_base` (what a plan reads, and the Draft that builds the Decision),
`scale_up` (the estimate and the launches), `scale_down` and `removal` (which workers go),
`rules` (which pods may move, which nodes may go; shared with the actuator).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from autoscaler.config import Settings
from autoscaler.gc_pause import gc_paused
from autoscaler.model import (
    Action,
    ClusterSnapshot,
    Decision,
    Intent,
    IntentKind,
    Pod,
    ReasonCode,
    ScalingState,
    Unhelpable,
)
from autoscaler.plan_base import LAUNCH_VISIBILITY_GRACE_S, Base, Draft, FleetView
from autoscaler.removal import Removal
from autoscaler.scale_down import room_above_min, scale_down
from autoscaler.scale_up import estimate, pressure_since, scale_up, spread
from autoscaler.spare import spare_pods, spare_starts
from autoscaler.warm_pool import kept_warm, tend, warm_starts


def plan(
    snapshot: ClusterSnapshot, state: ScalingState, settings: Settings, now: float, intent: Intent | None = None
) -> Decision:
    # At 30,000 pods the cyclic collector's passes over the fresh model were a quarter of a plan's CPU.
    with gc_paused():
        return _plan(snapshot, state, settings, now, intent)


def _plan(
    snapshot: ClusterSnapshot, state: ScalingState, settings: Settings, now: float, intent: Intent | None
) -> Decision:
    base = Base.of(snapshot, state, settings, now)
    fleet = base.fleet
    draft = Draft(base, _prune(state, fleet, now))
    for instance_id, names in sorted(fleet.binding.ambiguous.items()):
        draft.say(ReasonCode.AMBIGUOUS_INSTANCE, f"{instance_id} is claimed by {', '.join(names)}: neither is acted on")

    kind = intent.kind if intent else None
    if kind in (IntentKind.PAUSE, IntentKind.RESUME):
        draft.update(paused=kind is IntentKind.PAUSE)
        draft.say(ReasonCode.REQUESTED, f"{kind} by {intent.source}")
    if draft.state.paused:
        detail = f"{kind} ignored: scaling is paused" if kind and kind is not IntentKind.PAUSE else "scaling is paused"
        draft.say(ReasonCode.PAUSED, detail)
        return draft.decide(Action.NONE)

    if fleet.unjoined:
        _terminate_unjoined(draft)
    tend(draft)
    unschedulable = [p for p in snapshot.unschedulable() if not p.stays]
    if kind in (IntentKind.SCALE_UP, IntentKind.SCALE_DOWN, IntentKind.SET):
        return _requested(intent, draft, unschedulable)
    draft.update(pressure_since=pressure_since(draft))

    found = estimate(draft, unschedulable)
    launches = scale_up(draft, found)
    if launches:
        starts, launches = warm_starts(draft, launches)
        draft.update(last_scale_up=now, pressure_since=None, unneeded_since={})
        return draft.decide(Action.SCALE_UP, launches=launches, starts=starts, unhelpable=found.unhelpable)
    spare = spare_pods(draft)
    # Not a scale-up for the window's sake: the spare room must not keep itself going.
    starts = spare_starts(draft, spare, found.helpable)
    if starts:
        return draft.decide(Action.SCALE_UP, starts=starts, unhelpable=found.unhelpable)

    removal = scale_down(draft, found.helpable, spare)
    draft.update(unneeded_since=removal.unneeded)
    if not removal.remove and not draft.reasons:
        draft.say(ReasonCode.STEADY, f"{fleet.count} workers, nothing to change")
    return _removing(draft, removal, found.unhelpable)


def _prune(state: ScalingState, fleet: FleetView, now: float) -> ScalingState:
    """Forget launches that became nodes, vanished, or are long past visibility."""
    alive = {i.id for i in fleet.alive}
    launches = tuple(
        x
        for x in state.launches
        if x.instance_id not in fleet.ready_by_instance
        and (x.instance_id in alive or now - x.launched_at < LAUNCH_VISIBILITY_GRACE_S)
    )
    return replace(state, launches=launches)


def _terminate_unjoined(draft: Draft) -> None:
    """Launched workers never matched by a Node in time, or overtaken while late, are terminated."""
    base = draft.base
    fleet, settings, now = base.fleet, base.settings, base.now
    draft.terminate = tuple(i.id for i in fleet.unjoined)
    expired = [i.id for i in fleet.unjoined if now - i.launched_at > settings.max_node_provision_time_s]
    overtaken = [i.id for i in fleet.unjoined if i.id not in expired]
    if expired:
        draft.say(
            ReasonCode.UNJOINED_INSTANCE,
            f"{', '.join(expired)} not a Ready node {settings.max_node_provision_time_s}s after launch",
        )
    if overtaken:
        draft.say(
            ReasonCode.UNJOINED_INSTANCE,
            f"{', '.join(overtaken)} no Node {settings.launch_late_after_s}s after launch, and a worker "
            "launched since is Ready: stuck, replaced",
        )
    # Back off only when the pool looks broken: no worker launched since then has joined either.
    # A lone straggler among healthy launches is replaced at once.
    since = min(i.launched_at for i in fleet.unjoined)
    healthy = any(i.launched_at >= since and i.id in fleet.ready_by_instance for i in fleet.alive)
    state = draft.state
    draft.update(
        last_failure=now,
        backoff_until=state.backoff_until if healthy else now + settings.provision_backoff_s,
        launches=tuple(x for x in state.launches if x.instance_id not in draft.terminate),
    )


def _requested(intent: Intent, draft: Draft, unschedulable: Sequence[Pod]) -> Decision:
    """An alarm's or operator's request: scale up, down or to a count, within the bounds and
    never past a safety rule."""
    base = draft.base
    fleet, settings, now = base.fleet, base.settings, base.now
    draft.say(ReasonCode.REQUESTED, f"{intent.kind} {intent.count} by {intent.source}")
    if intent.kind is IntentKind.SET:
        desired = min(max(intent.count, settings.min_nodes), settings.max_nodes)
        if desired != intent.count:
            draft.say(
                ReasonCode.AT_MAX if desired < intent.count else ReasonCode.AT_MIN,
                f"{intent.count} clamped to {desired}",
            )
        delta = desired - fleet.count
    else:
        delta = intent.count if intent.kind is IntentKind.SCALE_UP else -intent.count
    if delta > 0:
        count = min(delta, settings.max_nodes - fleet.count)
        if count < delta:
            draft.say(ReasonCode.AT_MAX, f"{delta} asked, room for {max(count, 0)} under max_nodes")
        if count > 0:
            starts, launches = warm_starts(draft, spread(count, fleet.alive, base.snapshot.zones))
            draft.update(last_scale_up=now, unneeded_since={})
            return draft.decide(Action.SCALE_UP, launches=launches, starts=starts)
    elif delta < 0:
        found = estimate(draft, unschedulable)
        removal = Removal(draft)
        if found.helpable:
            draft.say(ReasonCode.PENDING_PODS, f"{found.helpable} pods wait for capacity")
        else:
            # Skips the timers and the utilization threshold, never a safety rule or a budget.
            limit = min(-delta, room_above_min(draft))
            if 0 < limit < -delta:
                draft.say(ReasonCode.AT_MIN, f"{-delta} asked, {limit} above min_nodes {settings.min_nodes}")
            removal.select(removal.movable(), limit)
            if limit > 0 and len(removal.remove) < -delta:
                draft.say(
                    ReasonCode.NO_CANDIDATE, f"{-delta} asked, {len(removal.remove)} can go without stranding pods"
                )
        return _removing(draft, removal, found.unhelpable)
    else:
        draft.say(ReasonCode.STEADY, f"already {fleet.count} workers")
    return draft.decide(Action.NONE)


def _removing(draft: Draft, removal: Removal, unhelpable: Sequence[Unhelpable]) -> Decision:
    """Scale down when the removal chose nodes, else nothing; with every worker's verdict."""
    action = Action.SCALE_DOWN if removal.remove else Action.NONE
    if removal.remove:
        draft.update(last_scale_down=draft.base.now)
    warm = kept_warm(draft, removal.remove)
    return draft.decide(action, remove=removal.remove, warm=warm, verdicts=removal.verdicts, unhelpable=unhelpable)
