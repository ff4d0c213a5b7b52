"""Request-rate series into replicas of one service: the service model (an HPA on CPU, in effect)
and the cutting, resampling and checking every request-rate trace shares."""

from __future__ import annotations

import bisect
import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from node_fleet.sim.workload import PodSpec, TraceError, Workload

from .reading import num, window_bounds

MAX_REPLICAS = 100_000
"""A request rate that needs more replicas than this is not a trace a replay can run: TraceError."""


@dataclass(frozen=True, slots=True)
class ServiceModel:
    """How a request rate becomes replicas of one service (an HPA on CPU, in effect).

    - `cost_m_per_rps`: CPU cost of a request in millicore-seconds, which is the same as the CPU
      millicores the service needs per request/second of load: `load_m = rate * cost_m_per_rps`.
    - `pod_cpu_m`, `pod_mem_mib`: the requests of one replica.
    - `target_utilization`: the HPA target; `desired = max(min_replicas,
      ceil(load_m / (pod_cpu_m * target_utilization)))`.
    - `step_s`: the series is resampled to this step (mean over each step) and the HPA decides once
      per step.
    - `scale_down_stabilization_s`: as the HPA's scale-down stabilization window, replicas at time t
      are the highest desired count over [t - window, t]: scale-up is immediate, and the count drops
      to a lower value only once the desired count has stayed at or below it for the whole window.

    Each replica's `PodSpec.usage` is the time-weighted mean, over its life, of the usage the load
    gives, `load_m / (replicas * pod_cpu_m)` clamped to [0, 1].

    The defaults (40 m per request/s, 500 m / 1024 MiB pods, 70 % target, at least 6 replicas,
    60 s steps, 300 s stabilization) are those used for the Azure Functions trace. The per-trace
    models in TRACE_DEFAULTS differ in cost only, chosen so each trace's default window peaks at
    about 22–25 workers of 2000 m / 7680 MiB; the minimum of 6 replicas (3000 m, 1.5 workers)
    keeps every replay above one worker. A model is a scale, not a measurement: say it in reports.
    """

    cost_m_per_rps: float = 40.0
    pod_cpu_m: int = 500
    pod_mem_mib: int = 1024
    target_utilization: float = 0.7
    min_replicas: int = 6
    step_s: int = 60
    scale_down_stabilization_s: int = 300

    def __post_init__(self) -> None:
        if not (math.isfinite(self.cost_m_per_rps) and self.cost_m_per_rps > 0):
            raise ValueError(f"cost_m_per_rps must be a positive number, got {self.cost_m_per_rps!r}")
        for name in ("pod_cpu_m", "pod_mem_mib", "step_s"):
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not 0.0 < self.target_utilization <= 1.0:
            raise ValueError(f"target_utilization must be in (0, 1], got {self.target_utilization!r}")
        for name in ("min_replicas", "scale_down_stabilization_s"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be an integer >= 0, got {value!r}")

    def desired_replicas(self, rate_rps: float) -> int:
        """The HPA's desired count for a request rate, before stabilization."""
        raw = rate_rps * self.cost_m_per_rps / (self.pod_cpu_m * self.target_utilization)
        return max(self.min_replicas, math.ceil(raw - 1e-9))

    def describe(self) -> str:
        return (
            f"service model: {num(self.cost_m_per_rps)} m per request/s, pods {self.pod_cpu_m} m / "
            f"{self.pod_mem_mib} MiB, target {num(self.target_utilization)}, min {self.min_replicas} "
            f"replicas, step {self.step_s} s, scale-down stabilization {self.scale_down_stabilization_s} s"
        )


def rates_to_workload(
    name: str,
    times_s: Sequence[float],
    rates: Sequence[float],
    model: ServiceModel,
    *,
    horizon_s: float | None = None,
    description: str = "",
) -> Workload:
    """Turn a request-rate series into the replicas of one service, one PodSpec per replica life.

    `rates[i]` (requests/second) holds from `times_s[i]` to `times_s[i + 1]`, the last one until
    `horizon_s` (default: the last time plus `model.step_s`). The replica count at each time follows
    `model` (HPA rule and scale-down stabilization). When it goes up, new pods start at that time;
    when it goes down, the newest pods end (last in, first out). Pods alive at the horizon have
    `end_s=None`. Pods are named `{name}-00000`, `{name}-00001`, ... in start order.
    """
    n = len(times_s)
    if n == 0 or len(rates) != n:
        raise ValueError(f"need as many rates as times, at least one: got {n} times and {len(rates)} rates")
    for i in range(1, n):
        if not times_s[i] > times_s[i - 1]:
            raise ValueError(f"times_s must increase strictly: times_s[{i}]={times_s[i]!r} after {times_s[i - 1]!r}")
    for i, r in enumerate(rates):
        if not (math.isfinite(r) and r >= 0):
            raise ValueError(f"rates[{i}]={r!r}: expected a finite rate >= 0")
    horizon = float(times_s[-1] + model.step_s if horizon_s is None else horizon_s)
    if not horizon > times_s[-1]:
        raise ValueError(f"horizon_s={horizon_s!r} must be after the last time {times_s[-1]!r}")

    # Replicas: the highest desired count over the stabilization window (a sliding-window maximum).
    window = model.scale_down_stabilization_s
    replicas: list[int] = []
    best: deque[int] = deque()  # indices whose desired counts decrease, front = window maximum
    desired = [model.desired_replicas(r) for r in rates]
    for i in range(n):
        while best and desired[best[-1]] <= desired[i]:
            best.pop()
        best.append(i)
        while times_s[best[0]] < times_s[i] - window:
            best.popleft()
        replicas.append(desired[best[0]])

    # Usage per step, and its time integral, for each pod's mean usage.
    cum = [0.0]
    for i in range(n):
        usage = min(1.0, rates[i] * model.cost_m_per_rps / (replicas[i] * model.pod_cpu_m)) if replicas[i] else 0.0
        dt = (times_s[i + 1] if i + 1 < n else horizon) - times_s[i]
        cum.append(cum[-1] + usage * dt)

    def pod(serial: int, start_i: int, end_i: int) -> PodSpec:
        end_t = times_s[end_i] if end_i < n else horizon
        start_t = times_s[start_i]
        usage = (cum[end_i] - cum[start_i]) / (end_t - start_t)
        return PodSpec(
            name=f"{name}-{serial:05d}",
            start_s=float(start_t),
            end_s=float(end_t) if end_i < n else None,
            cpu_m=model.pod_cpu_m,
            mem_mib=model.pod_mem_mib,
            usage=min(1.0, max(0.0, usage)),
        )

    pods: list[PodSpec | None] = []
    live: list[tuple[int, int]] = []  # (serial, start index), newest last
    for i, want in enumerate(replicas):
        while len(live) < want:
            live.append((len(pods), i))
            pods.append(None)
        while len(live) > want:
            serial, start_i = live.pop()
            pods[serial] = pod(serial, start_i, i)
    for serial, start_i in live:
        pods[serial] = pod(serial, start_i, n)
    done = tuple(p for p in pods if p is not None)
    peak = max(replicas)
    desc = description or f"{name}: {n} steps"
    desc += f"; {model.describe()}; replicas {min(replicas)}..{peak}"
    return Workload(name=name, pods=done, horizon_s=horizon, description=desc)


def series_workload(
    name: str,
    path: Path,
    times: list[float],
    rates: list[float],
    end: float,
    model: ServiceModel,
    start_s: float,
    duration_s: float | None,
    label: str,
) -> Workload:
    """Cut [start_s, start_s + duration_s) from a piecewise-constant series ending at `end`,
    resample it to the model's step and turn it into a workload."""
    w_start, w_end = window_bounds(start_s, duration_s)
    w_end = min(w_end, end)
    if w_start >= w_end:
        raise TraceError(f"{path}: window start_s={num(start_s)} is past the end of the trace ({num(end)} s)")
    grid, means = _resample(times, rates, w_start, w_end, model.step_s)
    check_replicas(path, model, means)
    desc = f"{label} from {path}, seconds {num(w_start)}..{num(w_end)} of the trace"
    return rates_to_workload(name, grid, means, model, horizon_s=w_end - w_start, description=desc)


def check_replicas(path: Path, model: ServiceModel, rates: Sequence[float]) -> None:
    peak = max(rates, default=0.0)
    needed = peak * model.cost_m_per_rps / (model.pod_cpu_m * model.target_utilization)
    if not needed <= MAX_REPLICAS:  # also catches an infinite product
        raise TraceError(
            f"{path}: a rate of {peak:g} requests/s needs {needed:.3g} replicas of the service model, "
            f"more than {MAX_REPLICAS}: not a trace a replay can run"
        )


def _resample(
    times: Sequence[float], values: Sequence[float], t0: float, t1: float, step: float
) -> tuple[list[float], list[float]]:
    """Time-weighted means over [t0 + k*step, t0 + (k+1)*step) ∩ [t0, t1) of a piecewise-constant
    series (values[k] holds from times[k] to times[k+1], the last one onwards, 0 before the first).
    Returns the cells' start times relative to t0, and the means."""
    n = len(times)
    k = bisect.bisect_right(times, t0) - 1
    grid: list[float] = []
    means: list[float] = []
    cell = t0
    while cell < t1:
        cell_end = min(cell + step, t1)
        acc = 0.0
        cur = cell
        while cur < cell_end:
            value = values[k] if k >= 0 else 0.0
            nxt = times[k + 1] if k + 1 < n else math.inf
            seg_end = min(nxt, cell_end)
            acc += value * (seg_end - cur)
            cur = seg_end
            if seg_end == nxt:
                k += 1
        grid.append(cell - t0)
        means.append(acc / (cell_end - cell))
        cell = cell_end
    return grid, means
