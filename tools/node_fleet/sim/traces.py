"""Turn workload traces into `Workload`s for the replay simulator.

Two kinds of input:

- pod-level files, where each row already is a pod: the project's own pod CSV (`load_pods_csv`,
  written by `write_pods_csv`) and the Alibaba 2023 GPU-cluster pod list (`from_alibaba`);
- request-rate series (NASA-HTTP 1995, the NAB AWS ELB request count, Azure Functions 2019),
  which a `ServiceModel` turns into replicas of one service, HPA-like (`rates_to_workload`).

Traces are read where they lie, by path: nothing here copies a trace, or anything derived from one,
anywhere. Every converter takes a window (`start_s`, `duration_s`, in seconds from the start of the
trace) so a replay can take, say, two days of a two-month trace; times in the resulting workload
are relative to the window start. `load(path, fmt)` applies `TRACE_DEFAULTS`, a window of at most
two days and a service model per trace, so each default replay peaks at about 15–25 workers of
2000 m CPU / 7680 MiB and never drops below about 1.5 of them.

A malformed file raises `TraceError` naming the file, the line, the field and what was expected.
"""

from __future__ import annotations

import bisect
import csv
import functools
import math
import re
import tarfile
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, NoReturn

from node_fleet.sim.workload import DEFAULT_USAGE, PodSpec, TraceError, Workload

__all__ = [
    "FORMATS",
    "HORIZON_MARGIN_S",
    "POD_CSV_COLUMNS",
    "TRACE_DEFAULTS",
    "ServiceModel",
    "from_alibaba",
    "from_azure",
    "from_elb",
    "from_nasa",
    "load",
    "load_pods_csv",
    "rates_to_workload",
    "write_pods_csv",
]

POD_CSV_COLUMNS = ("name", "start_s", "end_s", "cpu_m", "mem_mib", "usage")
"""Header of the pod CSV; the `usage` column may be left out (every pod then uses DEFAULT_USAGE)."""

HORIZON_MARGIN_S = 900.0
"""Replay time added after the last pod event of a pod-level file, so the scale-down that follows
(10 minutes unneeded plus a drain, Cluster-Autoscaler-like) shows in the replay."""

DEFAULT_NODE_CPU_M = 2000
DEFAULT_NODE_MEM_MIB = 7680

ALIBABA_SCALE = 20
"""Default divisor of the Alibaba pods' CPU and memory requests. The trace's pods are sized for big
GPU machines (median 11.3 cores / 40.6 GiB); divided by 20 the median becomes 565 m / 2078 MiB and
all but about 0.6 % of the pods fit a 2000 m / 7680 MiB worker (the rest are dropped and counted in
the workload's description)."""

_DAY_S = 86_400
_CHUNK_BYTES = 1 << 20
"""How much of the NASA archive's text is read at a time."""


MAX_REPLICAS = 100_000
"""A request rate that needs more replicas than this is not a trace a replay can run: TraceError."""


def _names_the_file(loader: Callable[..., Workload]) -> Callable[..., Workload]:
    """Decoding and CSV errors met while reading become a TraceError that names the file."""

    @functools.wraps(loader)
    def wrapped(path: str | Path, *args: Any, **kwargs: Any) -> Workload:
        try:
            return loader(path, *args, **kwargs)
        except UnicodeDecodeError as exc:
            raise TraceError(f"{path}: not UTF-8 text (byte {exc.start}: {exc.reason})") from exc
        except csv.Error as exc:
            raise TraceError(f"{path}: not a readable CSV file: {exc}") from exc

    return wrapped


# --------------------------------------------------------------------------------------------------
# Pod CSV


@_names_the_file
def load_pods_csv(path: str | Path) -> Workload:
    """Read the project's pod CSV: header `name,start_s,end_s,cpu_m,mem_mib,usage`.

    `usage` is optional (column absent or cell empty: DEFAULT_USAGE, 0.6); an empty `end_s` means the
    pod runs to the end of the replay. Every row is checked: name non-empty and unique, start_s a
    finite number >= 0, end_s (when given) finite and > start_s, cpu_m and mem_mib positive integers,
    usage in [0, 1]. Blank lines are skipped.

    The workload is named after the file's stem. Its horizon is the latest start or end of any pod
    plus HORIZON_MARGIN_S (900 s), so the replay also shows the cluster shrinking afterwards; the
    horizon is not stored in the file, so a `write_pods_csv` round trip keeps the pods, not the
    horizon.
    """
    path = Path(path)
    pods: list[PodSpec] = []
    seen: dict[str, int] = {}
    with _open_text(path) as f:
        reader = csv.reader(f)
        header = _read_header(path, reader, POD_CSV_COLUMNS)
        if header != list(POD_CSV_COLUMNS) and header != list(POD_CSV_COLUMNS[:-1]):
            raise TraceError(
                f"{path} line {reader.line_num}: expected the header {','.join(POD_CSV_COLUMNS)!r} "
                f"(the usage column is optional), got {','.join(header)!r}"
            )
        width = len(header)
        for row in reader:
            if not row or (len(row) == 1 and not row[0].strip()):
                continue
            line = reader.line_num
            if len(row) != width:
                raise TraceError(f"{path} line {line}: expected {width} fields, got {len(row)}")
            cells = dict(zip(header, (c.strip() for c in row), strict=True))
            where = f"{path} line {line}"
            name = cells["name"]
            if not name:
                _bad(where, "name", "a non-empty name", row[0])
            if name in seen:
                _bad(where, "name", f"a unique name (already on line {seen[name]})", name)
            seen[name] = line
            start = _finite(where, "start_s", cells["start_s"], minimum=0.0)
            end: float | None = None
            if cells["end_s"]:
                end = _finite(where, "end_s", cells["end_s"])
                if end <= start:
                    _bad(where, "end_s", f"a number > start_s ({cells['start_s']}) or empty", cells["end_s"])
            cpu = _positive_int(where, "cpu_m", cells["cpu_m"])
            mem = _positive_int(where, "mem_mib", cells["mem_mib"])
            usage = DEFAULT_USAGE
            if cells.get("usage"):
                usage = _finite(where, "usage", cells["usage"])
                if not 0.0 <= usage <= 1.0:
                    _bad(where, "usage", "a number in [0, 1]", cells["usage"])
            pods.append(PodSpec(name, start, end, cpu, mem, usage))
    if not pods:
        raise TraceError(f"{path}: no pods after the header")
    return Workload(
        name=path.stem,
        pods=tuple(pods),
        horizon_s=_pods_horizon(pods),
        description=f"{len(pods)} pods from {path}",
    )


def write_pods_csv(workload: Workload, path: str | Path) -> None:
    """Write `workload`'s pods in the pod CSV format (`load_pods_csv` reads them back unchanged).

    Times are written exactly (whole numbers without a decimal point, others as Python's shortest
    round-tripping repr); `end_s` is empty for a pod that runs to the end.
    """
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(POD_CSV_COLUMNS)
        for p in workload.pods:
            end = "" if p.end_s is None else _num(p.end_s)
            writer.writerow([p.name, _num(p.start_s), end, p.cpu_m, p.mem_mib, _num(p.usage)])


# --------------------------------------------------------------------------------------------------
# Request-rate traces


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
            f"service model: {_num(self.cost_m_per_rps)} m per request/s, pods {self.pod_cpu_m} m / "
            f"{self.pod_mem_mib} MiB, target {_num(self.target_utilization)}, min {self.min_replicas} "
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


def from_nasa(
    path: str | Path,
    model: ServiceModel | None = None,
    start_s: float = 0,
    duration_s: float | None = None,
) -> Workload:
    """NASA-HTTP 1995: a bzip2 tar holding `workload.txt`, one integer requests/second per second.

    The integers may be separated by any whitespace (the shared file has them on one line). The
    archive is streamed: values before the window are only counted, reading stops at its end, and
    only the window's values are checked. Each `model.step_s` of them becomes one rate, their mean.
    The window is in whole seconds from the first value; `duration_s=None` runs to the end of the
    trace (58.6 days: use a window, see TRACE_DEFAULTS). `model=None` uses TRACE_DEFAULTS["nasa"].
    """
    path = Path(path)
    if model is None:
        model = TRACE_DEFAULTS["nasa"]["model"]
    start, stop = _window_ints(start_s, duration_s)
    values = _read_nasa(path, start, stop)
    if not values:
        raise TraceError(f"{path}: window start_s={start_s} is past the end of the trace")
    step = model.step_s
    times: list[float] = []
    rates: list[float] = []
    for i in range(0, len(values), step):
        chunk = values[i : i + step]
        times.append(float(i))
        rates.append(sum(chunk) / len(chunk))
    _check_replicas(path, model, rates)
    return rates_to_workload(
        "nasa",
        times,
        rates,
        model,
        horizon_s=float(len(values)),
        description=f"NASA-HTTP 1995 requests/s from {path}, seconds {start}..{start + len(values)}",
    )


@_names_the_file
def from_elb(
    path: str | Path,
    model: ServiceModel | None = None,
    start_s: float = 0,
    duration_s: float | None = None,
    *,
    period_s: float = 300.0,
) -> Workload:
    """NAB AWS ELB request count: CSV `timestamp,value`, `value` requests per `period_s` (5 minutes).

    Each value counts the requests of the period starting at its timestamp, so the rate is
    `value / period_s` from that timestamp until the next one (a missing sample holds the previous
    value). Timestamps (`YYYY-MM-DD HH:MM:SS`) must increase; the window is in seconds from the
    first one, `duration_s=None` running to the end of the last period. The series is resampled to
    `model.step_s` by time-weighted mean. `model=None` uses TRACE_DEFAULTS["elb"].
    """
    path = Path(path)
    if model is None:
        model = TRACE_DEFAULTS["elb"]["model"]
    if not (math.isfinite(period_s) and period_s > 0):
        raise ValueError(f"period_s must be a positive number, got {period_s!r}")
    times: list[float] = []
    rates: list[float] = []
    first: datetime | None = None
    with _open_text(path) as f:
        reader = csv.reader(f)
        header = _read_header(path, reader, ("timestamp", "value"))
        if header[:2] != ["timestamp", "value"]:
            raise TraceError(
                f"{path} line {reader.line_num}: expected the header 'timestamp,value', got {','.join(header)!r}"
            )
        for row in reader:
            if not row:
                continue
            where = f"{path} line {reader.line_num}"
            if len(row) != len(header):
                raise TraceError(f"{where}: expected {len(header)} fields, got {len(row)}")
            try:
                stamp = datetime.fromisoformat(row[0].strip())
            except ValueError:
                _bad(where, "timestamp", "a time like '2014-04-10 00:04:00'", row[0])
            if stamp.tzinfo is not None:  # the trace's times are UTC; an explicit offset must agree with the rest
                stamp = stamp.astimezone(UTC).replace(tzinfo=None)
            if first is None:
                first = stamp
            t = (stamp - first).total_seconds()
            if times and t <= times[-1]:
                _bad(where, "timestamp", "a time after the previous row's", row[0])
            value = _finite(where, "value", row[1].strip(), minimum=0.0)
            times.append(t)
            rates.append(value / period_s)
    if not times:
        raise TraceError(f"{path}: no samples after the header")
    return _series_workload("elb", path, times, rates, times[-1] + period_s, model, start_s, duration_s, "NAB AWS ELB")


@_names_the_file
def from_azure(
    path: str | Path,
    model: ServiceModel | None = None,
    start_s: float = 0,
    duration_s: float | None = None,
) -> Workload:
    """Azure Functions 2019 invocations: CSV `HashFunction,HashApp,HashOwner,minute_1..minute_N`.

    All functions are summed per minute; that count over 60 is the rate in requests/second. (The
    durations and memory files are not needed: the service model sets the cost.) The window is in
    seconds from the start of minute_1; `duration_s=None` runs to the end of minute_N.
    `model=None` uses TRACE_DEFAULTS["azure"].
    """
    path = Path(path)
    if model is None:
        model = TRACE_DEFAULTS["azure"]["model"]
    with _open_text(path) as f:
        reader = csv.reader(f)
        header = _read_header(path, reader, ("HashFunction", "HashApp", "HashOwner", "minute_1"))
        minutes = header[3:]
        if (
            header[:3] != ["HashFunction", "HashApp", "HashOwner"]
            or not minutes
            or any(col != f"minute_{i}" for i, col in enumerate(minutes, start=1))
        ):
            shown = ",".join(header[:5]) + (",..." if len(header) > 5 else "")
            expected = "HashFunction,HashApp,HashOwner,minute_1..minute_N"
            raise TraceError(f"{path} line 1: expected the header {expected!r}, got {shown!r}")
        totals = [0] * len(minutes)
        functions = 0
        for row in reader:
            if not row:
                continue
            where = f"{path} line {reader.line_num}"
            if len(row) != len(header):
                raise TraceError(f"{where}: expected {len(header)} fields, got {len(row)}")
            try:
                counts = list(map(int, row[3:]))
                if min(counts) < 0:
                    raise ValueError
            except ValueError:
                for col, cell in zip(minutes, row[3:], strict=True):
                    _nonneg_int(where, col, cell)
                raise  # pragma: no cover - the loop above always finds the bad cell
            totals = list(map(int.__add__, totals, counts))
            functions += 1
    if not functions:
        raise TraceError(f"{path}: no functions after the header")
    times = [60.0 * i for i in range(len(totals))]
    rates = [c / 60.0 for c in totals]
    label = f"Azure Functions 2019, {functions} functions summed"
    return _series_workload("azure", path, times, rates, 60.0 * len(totals), model, start_s, duration_s, label)


@_names_the_file
def from_alibaba(
    path: str | Path,
    scale: float = ALIBABA_SCALE,
    start_s: float = 0,
    duration_s: float | None = None,
    *,
    node_cpu_m: int = DEFAULT_NODE_CPU_M,
    node_mem_mib: int = DEFAULT_NODE_MEM_MIB,
) -> Workload:
    """Alibaba 2023 GPU cluster (openb) pod list, one pod per row, times in seconds.

    Columns used: `name`, `cpu_milli`, `memory_mib`, `creation_time`, `deletion_time` (the others
    are ignored). Pods without a creation_time are skipped; an empty or 0 deletion_time means the pod
    runs to the end; a pod deleted at its creation time lives 0 s and is skipped. CPU and memory
    are divided by `scale` (default ALIBABA_SCALE, 20) and rounded up; a pod that still does not fit
    one `node_cpu_m` / `node_mem_mib` worker is dropped. Both counts go into the description.

    The window keeps the pods alive in [start_s, start_s + duration_s); times become relative to
    start_s, a pod already running at the window start starts at 0 and one still running at its end
    gets `end_s=None`. Horizon: `duration_s`, or (`duration_s=None`) the last pod event plus
    HORIZON_MARGIN_S. Usage is DEFAULT_USAGE (the trace has none).
    """
    path = Path(path)
    if not (math.isfinite(scale) and scale > 0):
        raise ValueError(f"scale must be a positive number, got {scale!r}")
    w_start, w_end = _window(start_s, duration_s)
    need = ("name", "cpu_milli", "memory_mib", "creation_time", "deletion_time")
    pods: list[PodSpec] = []
    seen: dict[str, int] = {}
    no_creation = zero_length = too_big = 0
    with _open_text(path) as f:
        reader = csv.reader(f)
        header = [h.strip() for h in _read_header(path, reader, need)]
        missing = [c for c in need if c not in header]
        if missing:
            columns = ",".join(need)
            raise TraceError(f"{path} line 1: expected a header with the columns {columns}, missing {missing}")
        col = {c: header.index(c) for c in need}
        for row in reader:
            if not row:
                continue
            line = reader.line_num
            where = f"{path} line {line}"
            if len(row) != len(header):
                raise TraceError(f"{where}: expected {len(header)} fields, got {len(row)}")
            name = row[col["name"]].strip()
            if not name:
                _bad(where, "name", "a non-empty name", row[col["name"]])
            if name in seen:
                _bad(where, "name", f"a unique name (already on line {seen[name]})", name)
            seen[name] = line
            cpu = _nonneg_int(where, "cpu_milli", row[col["cpu_milli"]])
            mem = _nonneg_int(where, "memory_mib", row[col["memory_mib"]])
            created_cell = row[col["creation_time"]].strip()
            if not created_cell:
                no_creation += 1
                continue
            created = _finite(where, "creation_time", created_cell, minimum=0.0)
            deleted_cell = row[col["deletion_time"]].strip()
            deleted: float | None = None
            if deleted_cell:
                deleted = _finite(where, "deletion_time", deleted_cell, minimum=0.0) or None
            if deleted is not None and deleted < created:
                _bad(where, "deletion_time", f"a time >= creation_time ({created_cell}), 0 or empty", deleted_cell)
            if created >= w_end or (deleted is not None and deleted <= w_start):
                continue  # outside the window
            if deleted == created:
                zero_length += 1
                continue
            if cpu > node_cpu_m * scale or mem > node_mem_mib * scale:  # before dividing: no float overflow
                too_big += 1
                continue
            cpu_m = max(1, math.ceil(cpu / scale))
            mem_mib = max(1, math.ceil(mem / scale))
            if cpu_m > node_cpu_m or mem_mib > node_mem_mib:
                too_big += 1
                continue
            end = None if deleted is None or deleted >= w_end else deleted - w_start
            pods.append(PodSpec(name, max(0.0, created - w_start), end, cpu_m, mem_mib, DEFAULT_USAGE))
    if not pods:
        raise TraceError(f"{path}: no pods in the window [{_num(w_start)}, {_num(w_end)}) s")
    horizon = w_end - w_start if duration_s is not None else _pods_horizon(pods)
    window = f"[{_num(w_start)}, {_num(w_end)})" if duration_s is not None else f"from {_num(w_start)}"
    description = (
        f"Alibaba 2023 openb pod list from {path}: {len(pods)} pods alive in the window {window} s, "
        f"CPU and memory divided by {_num(scale)} (rounded up); dropped {too_big} pods larger than a "
        f"{node_cpu_m} m / {node_mem_mib} MiB worker after scaling; skipped {zero_length} zero-length "
        f"pods and {no_creation} without a creation_time"
    )
    return Workload(name="alibaba", pods=tuple(pods), horizon_s=horizon, description=description)


# --------------------------------------------------------------------------------------------------
# Dispatch and defaults

TRACE_DEFAULTS: dict[str, dict[str, Any]] = {
    "pods": {},
    # Jul 12-13 1995 (seconds 950400..1123200): an ordinary weekday, then the STS-70 launch day,
    # whose morning flash crowd is the trace's peak (6.8 req/s per-minute mean; ~3 on usual days).
    "nasa": {
        "model": ServiceModel(cost_m_per_rps=5000.0),
        "start_s": 11 * _DAY_S,
        "duration_s": 2 * _DAY_S,
    },
    # 2014-04-22/23: the 14 days' peak (656 requests / 5 min on the 22nd) and an ordinary day.
    "elb": {
        "model": ServiceModel(cost_m_per_rps=15000.0),
        "start_s": 12 * _DAY_S,
        "duration_s": 2 * _DAY_S,
    },
    # The whole (one-day) trace: 68..758 invocations/s per minute, a spike at ~18:00.
    "azure": {
        "model": ServiceModel(cost_m_per_rps=40.0),
        "start_s": 0,
        "duration_s": None,
    },
    # Two days in the dense part of the trace (days 146-147 from its time 0).
    "alibaba": {
        "scale": ALIBABA_SCALE,
        "start_s": 146 * _DAY_S,
        "duration_s": 2 * _DAY_S,
    },
}
"""Per-format keyword arguments `load` uses unless overridden: a window of at most two days and,
for the request-rate traces, the service model (only the cost per request differs from the
ServiceModel defaults)."""

_LOADERS: dict[str, Callable[..., Workload]] = {
    "pods": load_pods_csv,
    "nasa": from_nasa,
    "elb": from_elb,
    "azure": from_azure,
    "alibaba": from_alibaba,
}
FORMATS = tuple(_LOADERS)


def load(path: str | Path, fmt: str, **opts: Any) -> Workload:
    """Read the trace at `path` as format `fmt` (one of FORMATS), with TRACE_DEFAULTS[fmt] under `opts`.

    E.g. `load(p, "nasa")` replays the default two days; `load(p, "nasa", start_s=0,
    duration_s=86400)` the first day with the default model; `duration_s=None` the whole trace.
    """
    loader = _LOADERS.get(fmt)
    if loader is None:
        raise ValueError(f"unknown trace format {fmt!r}: expected one of {', '.join(FORMATS)}")
    return loader(path, **{**TRACE_DEFAULTS[fmt], **opts})


# --------------------------------------------------------------------------------------------------
# Helpers


def _series_workload(
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
    w_start, w_end = _window(start_s, duration_s)
    w_end = min(w_end, end)
    if w_start >= w_end:
        raise TraceError(f"{path}: window start_s={_num(start_s)} is past the end of the trace ({_num(end)} s)")
    grid, means = _resample(times, rates, w_start, w_end, model.step_s)
    _check_replicas(path, model, means)
    desc = f"{label} from {path}, seconds {_num(w_start)}..{_num(w_end)} of the trace"
    return rates_to_workload(name, grid, means, model, horizon_s=w_end - w_start, description=desc)


def _check_replicas(path: Path, model: ServiceModel, rates: Sequence[float]) -> None:
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


_TOKEN = re.compile(rb"\S+")


def _read_nasa(path: Path, start: int, stop: float) -> list[int]:
    """The integers number start..stop-1 (0-based) of the archive's workload.txt, streamed."""
    try:
        with tarfile.open(path, "r|bz2") as tar:
            for info in tar:
                if info.isfile() and info.name.rsplit("/", 1)[-1] == "workload.txt":
                    f = tar.extractfile(info)
                    assert f is not None  # nosec B101  # extractfile() of a regular file (isfile above) is never None
                    return _read_ints(path, f, start, stop)
    except (OSError, tarfile.TarError, EOFError) as exc:
        raise TraceError(f"{path}: cannot read as a bzip2 tar archive: {exc}") from exc
    raise TraceError(f"{path}: no workload.txt in the archive")


def _read_ints(path: Path, f: IO[bytes], start: int, stop: float) -> list[int]:
    """Whitespace-separated integers number start..stop-1 of `f`, read in chunks of _CHUNK_BYTES."""
    out: list[int] = []
    index = 0  # values before the current chunk
    lines = 0  # newlines before the current chunk
    carry = b""
    limit = int(min(stop, 2**62))
    while index < limit:
        chunk = f.read(_CHUNK_BYTES)
        data = carry + chunk
        tokens = data.split()
        carry = b""
        if chunk and tokens and not data[-1:].isspace():
            carry = tokens.pop()  # may go on in the next chunk
        lo = max(0, start - index)
        hi = max(0, min(len(tokens), limit - index))
        if lo < hi:
            try:
                values = list(map(int, tokens[lo:hi]))
                if min(values) < 0:
                    raise ValueError
            except ValueError:
                _nasa_error(path, data, lines, index, lo, hi)
            out.extend(values)
        index += len(tokens)
        lines += data.count(b"\n")
        if not chunk:
            break
    return out


def _nasa_error(path: Path, data: bytes, lines: int, index: int, lo: int, hi: int) -> NoReturn:
    for k, m in enumerate(_TOKEN.finditer(data)):
        if k < lo or k >= hi:
            continue
        token = m.group()
        try:
            ok = int(token) >= 0
        except ValueError:
            ok = False
        if not ok:
            line = lines + data.count(b"\n", 0, m.start()) + 1
            raise TraceError(
                f"{path} (workload.txt) line {line}, value {index + k + 1}, field requests_per_s: "
                f"expected an integer >= 0, got {token.decode(errors='replace')!r}"
            )
    raise AssertionError("no bad value found")  # pragma: no cover


def _window(start_s: float, duration_s: float | None) -> tuple[float, float]:
    if not (math.isfinite(start_s) and start_s >= 0):
        raise ValueError(f"start_s must be a finite number >= 0, got {start_s!r}")
    if duration_s is None:
        return float(start_s), math.inf
    if not (math.isfinite(duration_s) and duration_s > 0):
        raise ValueError(f"duration_s must be a positive number or None, got {duration_s!r}")
    return float(start_s), float(start_s + duration_s)


def _window_ints(start_s: float, duration_s: float | None) -> tuple[int, float]:
    start, end = _window(start_s, duration_s)
    return int(start), (math.inf if end == math.inf else int(start) + math.ceil(end - start))


def _pods_horizon(pods: Sequence[PodSpec]) -> float:
    last = max(max(p.start_s, p.end_s or 0.0) for p in pods)
    return last + HORIZON_MARGIN_S


def _open_text(path: Path) -> Any:
    try:
        return open(path, newline="", encoding="utf-8")
    except OSError as exc:
        raise TraceError(f"{path}: cannot open: {exc.strerror or exc}") from exc


def _read_header(path: Path, reader: Iterator[list[str]], expected: Sequence[str]) -> list[str]:
    for row in reader:
        if row:
            return [c.strip() for c in row]
    raise TraceError(f"{path}: empty file, expected the header {','.join(expected)!r}")


def _bad(where: str, field: str, expected: str, got: str) -> NoReturn:
    raise TraceError(f"{where}, field {field}: expected {expected}, got {got!r}")


def _finite(where: str, field: str, cell: str, minimum: float | None = None) -> float:
    text = cell.strip()
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or (minimum is not None and value < minimum):
        _bad(where, field, "a finite number" + ("" if minimum is None else f" >= {_num(minimum)}"), cell)
    return value


def _positive_int(where: str, field: str, cell: str) -> int:
    try:
        value = int(cell.strip())
    except ValueError:
        value = 0
    if value <= 0:
        _bad(where, field, "a positive integer", cell)
    return value


def _nonneg_int(where: str, field: str, cell: str) -> int:
    try:
        value = int(cell.strip())
    except ValueError:
        value = -1
    if value < 0:
        _bad(where, field, "an integer >= 0", cell)
    return value


def _num(x: float) -> str:
    """A number as text, exactly: 12 for 12.0, else the shortest repr that reads back the same."""
    x = float(x)
    return str(int(x)) if x.is_integer() else repr(x)
