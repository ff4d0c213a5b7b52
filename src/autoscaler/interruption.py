"""A spot interruption warning: replace the worker and drain it before EC2 takes it back.

Pure, as the planner: `plan_interruption(snapshot, state, settings, now, ...) -> Decision`. EC2
warns two minutes before it takes a spot instance back; waiting for the pods to go pending and the
next cycle to see them would cost those two minutes and more. So, for a Ready spot worker of this
cluster (the Fleet lists only instances with its tags in its VPC), one replacement is launched in
its zone through the normal launch path (warm pool first, within max_nodes, not while backing off),
and the node is drained at once, as an interruption drain (see `model.Drain.interrupted`): no
scale-down timer, cool-down or GitOps hold waits, since the capacity goes whatever is decided.

Anything else changes nothing, and the decision's reasons say why: an instance that is not a
running worker of ours (or is unknown), an on-demand one (a warning for it cannot be genuine), the
server node, a node already drained for an interruption (a duplicate delivery), paused scaling.
"""

from __future__ import annotations

from dataclasses import replace

from autoscaler.config import Settings
from autoscaler.model import Action, ClusterSnapshot, Decision, ReasonCode, ScalingState
from autoscaler.plan_base import Base, Draft
from autoscaler.warm_pool import warm_starts

NOTICE_S = 120.0
"""EC2's notice: the instance is taken back this long after the warning."""


def plan_interruption(
    snapshot: ClusterSnapshot, state: ScalingState, settings: Settings, now: float, instance_id: str, warned_at: float
) -> Decision:
    base = Base.of(snapshot, state, settings, now)
    fleet = base.fleet
    draft = Draft(base, state)
    ends = warned_at + NOTICE_S

    def nothing(why: str) -> Decision:
        draft.say(ReasonCode.SPOT_INTERRUPTION, f"{instance_id} interrupted, nothing done: {why}")
        return draft.decide(Action.NONE)

    if state.paused:
        return nothing("scaling is paused")
    instance = next((i for i in fleet.alive if i.id == instance_id), None)
    if instance is None:
        return nothing("not a pending or running worker of this cluster (its tags or VPC)")
    if instance.lifecycle != "spot":
        return nothing(f"a {instance.lifecycle} worker, which EC2 does not interrupt")
    node = fleet.binding.node_of.get(instance_id)
    if node is not None and node.control_plane:
        return nothing(f"{node.name} is the server node, never drained")
    drain = next((d for d in state.drains if node is not None and d.node == node.name), None)
    if drain is not None and drain.interrupted:
        return nothing(f"{node.name} is already drained for an interruption (a delivery seen before)")

    launches: dict[str, int] = {}
    if drain is not None:
        # Already on its way out as unneeded: no replacement, but its drain now ends with the notice.
        draft.say(ReasonCode.DRAIN_IN_PROGRESS, f"{node.name} was being removed: no replacement")
    elif fleet.count >= settings.max_nodes:
        draft.say(
            ReasonCode.AT_MAX,
            f"no replacement for {instance_id}: {fleet.count} workers, max_nodes {settings.max_nodes}",
        )
    elif state.backoff_until is not None and now < state.backoff_until:
        draft.say(
            ReasonCode.BACKING_OFF,
            f"no replacement for {instance_id}: launches back off until {state.backoff_until:.0f}",
        )
    else:
        launches = {instance.az: 1}
    starts, launches = warm_starts(draft, launches)
    where = f"node {node.name}" if node is not None else "no node matched to it yet"
    replaced = "replaced" if starts or launches else "not replaced"
    draft.say(
        ReasonCode.SPOT_INTERRUPTION,
        f"{instance_id} ({where}, {instance.az}) is taken back at {ends:.0f}: {replaced}"
        + (", drained" if node is not None else ", nothing to drain"),
    )
    remove = (node.name,) if node is not None else ()
    action = Action.SCALE_UP if starts or launches else Action.NONE
    decision = draft.decide(action, launches=launches, starts=starts, remove=remove)
    return replace(decision, interrupted={name: ends for name in remove})
