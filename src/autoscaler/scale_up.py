"""Scale-up: where the pending pods would go (the estimate), and how many workers to launch in
which zone, within max_nodes, the back-off and the per-cycle limit."""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from autoscaler.ahead import ahead
from autoscaler.model import Instance, Pod, ReasonCode, Unhelpable
from autoscaler.placement import EXPLAIN, Slot, landing_daemonsets
from autoscaler.plan_base import LAUNCH_VISIBILITY_GRACE_S, Base, Draft
from autoscaler.room import Room
from autoscaler.scheduling import HOSTNAME_LABEL, ZONE_LABEL


@dataclass(slots=True)
class Estimate:
    """Where the pending pods would go: launching workers, new ones, or nowhere."""

    launches: Counter[str] = field(default_factory=Counter)
    """Zone -> new workers the pending pods need."""
    unhelpable: list[Unhelpable] = field(default_factory=list)
    helpable: int = 0
    """Pending pods some worker (running, launching or new) could host: they hold scale-down."""
    on_launching: int = 0
    """Of the packed pods, those that fit on workers already launching."""


def estimate(draft: Draft, unschedulable: Sequence[Pod]) -> Estimate:
    """First-fit decreasing of the pending pods onto the workers already launching, then onto new
    workers of the template, each opened in the zone with the fewest workers that can host the pod.
    A pod no new worker could host is reported, never launched for.

    Running nodes are in the room for what runs on them (spread, anti-affinity) but take no
    pending pod: the scheduler has already said those pods do not fit there, and it sees more
    than this model does."""
    found = Estimate()
    if not unschedulable:
        return found
    base = draft.base
    settings, now, fleet = base.settings, base.now, base.fleet
    waited = [p for p in unschedulable if now - (p.unschedulable_since or now) >= settings.new_pod_scale_up_delay_s]
    found.helpable = len(unschedulable) - len(waited)
    room = base.destinations()
    seen = {i.id for i in base.snapshot.instances}
    launching = [(i.az, i.id) for i in fleet.in_flight if i not in fleet.replaced] + [
        (x.az, x.instance_id)
        for x in draft.state.launches
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
            found.helpable += 1
            found.on_launching += not slot.name.startswith("new-")
            continue
        failures = []
        for zone in sorted(zones, key=lambda z: per_zone[z]):
            fresh = _add_template(room, base, f"new-{zone or 'any'}-{sum(found.launches.values())}", zone)
            why = room.failure(pod, fresh)
            if why is None:
                room.place(pod, fresh)
                per_zone[zone] += 1
                found.launches[zone] += 1
                found.helpable += 1
                break
            room.withdraw(fresh.name)
            failures.append((why, zone))
        else:
            why, _ = Counter(failures).most_common(1)[0][0]
            where = "in any zone" if len(zones) > 1 else "on a new worker"
            found.unhelpable.append(Unhelpable(pod.key, why, f"{EXPLAIN[why]} {where}"))
    return found


def _add_template(room: Room, base: Base, name: str, zone: str) -> Slot:
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


def pressures(base: Base) -> list[tuple[ReasonCode, str, float, float]]:
    """The usage signals at or above their threshold: (code, name, value, threshold)."""
    m, settings = base.snapshot.metrics, base.settings
    found = []
    if m.cluster_cpu is not None and m.cluster_cpu >= settings.cpu_high:
        found.append((ReasonCode.CPU_HIGH, "CPU", m.cluster_cpu, settings.cpu_high))
    if m.custom is not None and m.custom >= settings.custom_metric_threshold:
        found.append((ReasonCode.CUSTOM_METRIC_HIGH, "custom metric", m.custom, settings.custom_metric_threshold))
    return found


def pressure_since(draft: Draft) -> float | None:
    """When usage went above a threshold and stayed there; an unknown reading breaks the run."""
    if not pressures(draft.base):
        return None
    since = draft.state.pressure_since
    return since if since is not None else draft.base.now


def scale_up(draft: Draft, found: Estimate) -> dict[str, int]:
    """Zone -> workers to launch now, for the pending pods, min_nodes and sustained pressure."""
    base, state = draft.base, draft.state
    fleet, settings, now, snapshot = base.fleet, base.settings, base.now, base.snapshot
    extra = 0
    if fleet.dead:
        names = ", ".join(sorted(n.name for n in fleet.dead))
        draft.say(ReasonCode.UNREADY_NODE, f"{names} not Ready in time: replaced, then removed")
    if fleet.late:
        late = ", ".join(i.id for i in fleet.late)
        draft.say(
            ReasonCode.LATE_LAUNCH,
            f"{late} no Node {settings.launch_late_after_s}s after launch: "
            + (
                "not counted as room on its way; replaced if pods need it"
                if fleet.replaced
                else "several late, none overtaken: launches may be failing, no replacement"
            ),
        )
    if fleet.capacity < settings.min_nodes:
        extra = settings.min_nodes - fleet.capacity
        draft.say(ReasonCode.BELOW_MIN, f"{fleet.capacity} usable workers < min_nodes {settings.min_nodes}")
    if found.unhelpable:
        shown = "; ".join(f"{u.pod}: {u.detail}" for u in found.unhelpable[:5])
        more = f" (+{len(found.unhelpable) - 5} more)" if len(found.unhelpable) > 5 else ""
        draft.say(ReasonCode.NO_WORKER_FITS, f"{len(found.unhelpable)} pending pods fit no new worker: {shown}{more}")
    needed = sum(found.launches.values())
    if needed:
        draft.say(ReasonCode.UNSCHEDULABLE_PODS, f"{found.helpable} unschedulable pods need {needed} more workers")
    elif found.on_launching:
        draft.say(
            ReasonCode.CAPACITY_IN_FLIGHT,
            f"{found.on_launching} unschedulable pods fit on {fleet.coming} workers already launching",
        )

    since = state.pressure_since
    if since is not None and now - since >= settings.cpu_high_window_s:
        ready = len(fleet.ready_by_instance)
        for code, name, value, threshold in pressures(base):
            if fleet.in_flight or fleet.unseen_launches:
                draft.say(ReasonCode.CAPACITY_IN_FLIGHT, f"{name} {value:.3g} high; workers launching")
            elif ready:
                # Enough workers to bring the signal back under its threshold, if load spreads evenly.
                more = max(1, math.ceil(ready * value / threshold) - ready) if threshold > 0 else 1
                draft.say(code, f"{name} {value:.3g} >= {threshold:.3g} for {now - since:.0f}s: {more} more")
                extra = max(extra, more)

    more = ramp(draft, needed)
    if more:
        extra = max(extra, needed + more)
    prewarm = ahead(draft, max(needed, extra))
    if prewarm:
        extra = max(extra, needed) + prewarm
    launches = Counter(found.launches)
    if extra > needed:
        launches.update(spread(extra - needed, fleet.alive, snapshot.zones, planned=launches))
    wanted = sum(launches.values())
    if not wanted:
        return {}
    if state.backoff_until is not None and now < state.backoff_until and fleet.capacity >= settings.min_nodes:
        draft.say(ReasonCode.BACKING_OFF, f"launches back off for {state.backoff_until - now:.0f}s after a failure")
        return {}
    headroom = settings.max_nodes - fleet.count
    if headroom <= 0:
        draft.say(ReasonCode.AT_MAX, f"{fleet.count} workers = max_nodes {settings.max_nodes}")
        return {}
    count = min(wanted, headroom, settings.max_nodes_per_scale_up)
    if count < wanted:
        draft.say(
            ReasonCode.AT_MAX if headroom < wanted else ReasonCode.CAPACITY_IN_FLIGHT,
            f"{wanted} wanted, {count} launched this cycle "
            f"(max_nodes {settings.max_nodes}, max_nodes_per_scale_up {settings.max_nodes_per_scale_up})",
        )
        while sum(launches.values()) > count:
            launches[launches.most_common(1)[0][0]] -= 1
    return {z: n for z, n in launches.items() if n > 0}


RAMP_LEAD_S = 30
"""How long the ramp's extra room is meant to last: about a start from the warm pool, which serves
the extra first (the simulator's start to Ready: median 20 s, p95 40 s). Sized for a launch's 60 s,
it bought about the same waits for more dollars (bench/README.md)."""


def ramp(draft: Draft, needed: int) -> int:
    """Workers to add on top of the `needed` ones when pods went pending again within
    ramp_window_s of the last scale-up: demand is rising, and the pods still to come would
    otherwise each wait for a launch of their own. Sized to the pace of the window's additions.

    Cheap when wrong: an extra worker nobody needs is unneeded at once, and is stopped into the
    warm pool after warm_pool_unneeded_time_s while the pool has room."""
    base = draft.base
    settings, now, last = base.settings, base.now, draft.state.last_scale_up
    window = settings.ramp_window_s
    if not needed or not window or last is None or now - last > window:
        return 0
    # EC2's LaunchTime is a worker's last start, so workers back from the warm pool count too.
    added = needed + sum(1 for i in base.fleet.alive if now - i.launched_at <= window)
    more = max(1, math.ceil(added * RAMP_LEAD_S / window))
    draft.say(
        ReasonCode.RAMP,
        f"pods pending again {now - last:.0f}s after the last scale-up (ramp_window_s {window}): "
        f"{more} more for the rise to go on ({added} workers added within the window)",
    )
    return more


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
