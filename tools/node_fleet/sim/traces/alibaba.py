"""The Alibaba 2023 GPU cluster (openb) pod list: one row a pod, times in seconds."""

from __future__ import annotations

import csv
import math
from pathlib import Path

from node_fleet.sim.workload import DEFAULT_USAGE, PodSpec, TraceError, Workload

from .reading import (
    bad,
    finite,
    names_the_file,
    nonneg_int,
    num,
    open_text,
    pods_horizon,
    read_header,
    rows,
    window_bounds,
)

DEFAULT_NODE_CPU_M = 2000
DEFAULT_NODE_MEM_MIB = 7680

ALIBABA_SCALE = 20
"""Default divisor of the Alibaba pods' CPU and memory requests. The trace's pods are sized for big
GPU machines (median 11.3 cores / 40.6 GiB); divided by 20 the median becomes 565 m / 2078 MiB and
all but about 0.6 % of the pods fit a 2000 m / 7680 MiB worker (the rest are dropped and counted in
the workload's description)."""


@names_the_file
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
    w_start, w_end = window_bounds(start_s, duration_s)
    need = ("name", "cpu_milli", "memory_mib", "creation_time", "deletion_time")
    pods: list[PodSpec] = []
    seen: dict[str, int] = {}
    no_creation = zero_length = too_big = 0
    with open_text(path) as f:
        reader = csv.reader(f)
        header = [h.strip() for h in read_header(path, reader, need)]
        missing = [c for c in need if c not in header]
        if missing:
            columns = ",".join(need)
            raise TraceError(f"{path} line 1: expected a header with the columns {columns}, missing {missing}")
        col = {c: header.index(c) for c in need}
        for where, row in rows(path, reader, len(header)):
            line = reader.line_num
            name = row[col["name"]].strip()
            if not name:
                bad(where, "name", "a non-empty name", row[col["name"]])
            if name in seen:
                bad(where, "name", f"a unique name (already on line {seen[name]})", name)
            seen[name] = line
            cpu = nonneg_int(where, "cpu_milli", row[col["cpu_milli"]])
            mem = nonneg_int(where, "memory_mib", row[col["memory_mib"]])
            created_cell = row[col["creation_time"]].strip()
            if not created_cell:
                no_creation += 1
                continue
            created = finite(where, "creation_time", created_cell, minimum=0.0)
            deleted_cell = row[col["deletion_time"]].strip()
            deleted: float | None = None
            if deleted_cell:
                deleted = finite(where, "deletion_time", deleted_cell, minimum=0.0) or None
            if deleted is not None and deleted < created:
                bad(where, "deletion_time", f"a time >= creation_time ({created_cell}), 0 or empty", deleted_cell)
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
        raise TraceError(f"{path}: no pods in the window [{num(w_start)}, {num(w_end)}) s")
    horizon = w_end - w_start if duration_s is not None else pods_horizon(pods)
    window = f"[{num(w_start)}, {num(w_end)})" if duration_s is not None else f"from {num(w_start)}"
    description = (
        f"Alibaba 2023 openb pod list from {path}: {len(pods)} pods alive in the window {window} s, "
        f"CPU and memory divided by {num(scale)} (rounded up); dropped {too_big} pods larger than a "
        f"{node_cpu_m} m / {node_mem_mib} MiB worker after scaling; skipped {zero_length} zero-length "
        f"pods and {no_creation} without a creation_time"
    )
    return Workload(name="alibaba", pods=tuple(pods), horizon_s=horizon, description=description)
