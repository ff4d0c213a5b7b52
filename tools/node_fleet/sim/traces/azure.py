"""Azure Functions 2019 invocations per function and minute, summed."""

from __future__ import annotations

import csv
from pathlib import Path

from node_fleet.sim.workload import TraceError, Workload

from .defaults import TRACE_DEFAULTS
from .rates import ServiceModel, series_workload
from .reading import names_the_file, nonneg_int, open_text, read_header, rows


@names_the_file
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
    with open_text(path) as f:
        reader = csv.reader(f)
        header = read_header(path, reader, ("HashFunction", "HashApp", "HashOwner", "minute_1"))
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
        for where, row in rows(path, reader, len(header)):
            try:
                counts = list(map(int, row[3:]))
                if min(counts) < 0:
                    raise ValueError
            except ValueError:
                for col, cell in zip(minutes, row[3:], strict=True):
                    nonneg_int(where, col, cell)
                raise  # pragma: no cover - the loop above always finds the bad cell
            totals = list(map(int.__add__, totals, counts))
            functions += 1
    if not functions:
        raise TraceError(f"{path}: no functions after the header")
    times = [60.0 * i for i in range(len(totals))]
    rates = [c / 60.0 for c in totals]
    label = f"Azure Functions 2019, {functions} functions summed"
    return series_workload("azure", path, times, rates, 60.0 * len(totals), model, start_s, duration_s, label)
