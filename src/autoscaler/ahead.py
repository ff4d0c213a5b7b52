"""Scaling ahead of demand (pure): how many workers the forecast wants launched before the pods
arrive, and how long an unneeded worker waits before it goes.

Both compare the forecast's rise in requested CPU and memory with the free room: what the Ready,
schedulable workers have left, plus a whole worker's room for each one launching or about to be
launched, minus what the pending pods ask. The room is fluid (it ignores how pods would pack);
the bin-packing estimate has already launched for the pods that wait, so this only decides how
much more room to have ready.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from autoscaler.config import Settings
from autoscaler.forecast import HistoryRead, forecast, history_read
from autoscaler.model import ReasonCode
from autoscaler.plan_base import Draft


@dataclass(frozen=True, slots=True)
class Room:
    cpu_m: float
    mem_mib: float


def forecast_read(settings: Settings) -> HistoryRead | None:
    """The demand history these settings' forecast needs; None when they do not use it."""
    horizons = []
    if settings.forecast_max_prewarm:
        horizons.append(settings.forecast_lead_s)
    if settings.forecast_unneeded_time_s < settings.scale_down_unneeded_time_s:
        horizons.append(settings.scale_down_unneeded_time_s)
    return history_read(max(horizons)) if horizons else None


def ahead(draft: Draft, launching: int) -> int:
    """Workers to launch ahead of the demand the forecast predicts within forecast_lead_s, on top of
    `launching` (this cycle's launches for pending pods); at most forecast_max_prewarm workers' room
    is kept ready beyond today's demand. Says why when it launches."""
    base = draft.base
    settings, history = base.settings, base.snapshot.demand
    if settings.forecast_max_prewarm == 0 or history is None:
        return 0
    predicted = forecast(history, base.now, settings.forecast_lead_s)
    if predicted is None or not predicted.rising:
        return 0
    worker, free = _worker_room(draft), _free_room(draft, launching)
    cap = settings.forecast_max_prewarm
    want_cpu = min(predicted.rise_cpu_m, cap * worker.cpu_m) - free.cpu_m
    want_mem = min(predicted.rise_mem_mib, cap * worker.mem_mib) - free.mem_mib
    count = max(0, math.ceil(max(want_cpu / worker.cpu_m, want_mem / worker.mem_mib) - 1e-9))
    if count:
        draft.say(
            ReasonCode.FORECAST_RAMP,
            f"demand forecast ({predicted.basis}) rises by {predicted.rise_cpu_m:.0f}m CPU and "
            f"{predicted.rise_mem_mib:.0f}Mi within {settings.forecast_lead_s}s, free room "
            f"{max(free.cpu_m, 0):.0f}m and {max(free.mem_mib, 0):.0f}Mi: {count} more workers ahead of it",
        )
    return count


def unneeded_time_s(draft: Draft) -> int:
    """How long a worker must be unneeded before it goes: forecast_unneeded_time_s when the forecast
    predicts no rise within scale_down_unneeded_time_s that the free room without one worker could
    not take, else scale_down_unneeded_time_s."""
    base = draft.base
    settings, history = base.settings, base.snapshot.demand
    full = settings.scale_down_unneeded_time_s
    if settings.forecast_unneeded_time_s >= full or history is None:
        return full
    predicted = forecast(history, base.now, full)
    if predicted is None:
        return full
    worker, free = _worker_room(draft), _free_room(draft, 0)
    if predicted.rise_cpu_m > free.cpu_m - worker.cpu_m or predicted.rise_mem_mib > free.mem_mib - worker.mem_mib:
        return full
    return settings.forecast_unneeded_time_s


def calm_reason(draft: Draft, wait_s: int) -> None:
    """Says that the wait was shortened, when it was."""
    settings = draft.base.settings
    if wait_s < settings.scale_down_unneeded_time_s:
        draft.say(
            ReasonCode.FORECAST_CALM,
            f"no rise in demand forecast within {settings.scale_down_unneeded_time_s}s beyond the free room: "
            f"unneeded workers go after {wait_s}s",
        )


def _worker_room(draft: Draft) -> Room:
    """What one new worker holds for pods: the template less its DaemonSet pods' requests."""
    base = draft.base
    settings, daemonsets = base.settings, base.snapshot.daemonsets
    return Room(
        max(1.0, settings.node_cpu_m - sum(p.cpu_m for p in daemonsets)),
        max(1.0, settings.node_mem_mib - sum(p.mem_mib for p in daemonsets)),
    )


def _free_room(draft: Draft, launching: int) -> Room:
    base = draft.base
    fleet = base.fleet
    cpu = mem = 0.0
    for node in base.snapshot.nodes:
        if node.ready and not node.cordoned and not node.control_plane and node.name not in fleet.draining:
            pods = base.pods_by_node.get(node.name, ())
            cpu += node.alloc_cpu_m - sum(p.cpu_m for p in pods)
            mem += node.alloc_mem_mib - sum(p.mem_mib for p in pods)
    coming = fleet.coming + launching
    worker = _worker_room(draft)
    pending = [p for p in base.snapshot.unschedulable() if not p.stays]
    return Room(
        cpu + coming * worker.cpu_m - sum(p.cpu_m for p in pending),
        mem + coming * worker.mem_mib - sum(p.mem_mib for p in pending),
    )
