"""The NAB AWS ELB request count: CSV `timestamp,value`, requests per 5 minutes."""

from __future__ import annotations

import csv
import math
from datetime import UTC, datetime
from pathlib import Path

from node_fleet.sim.workload import TraceError, Workload

from .defaults import TRACE_DEFAULTS
from .rates import ServiceModel, series_workload
from .reading import bad, finite, names_the_file, open_text, read_header, rows


@names_the_file
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
    with open_text(path) as f:
        reader = csv.reader(f)
        header = read_header(path, reader, ("timestamp", "value"))
        if header[:2] != ["timestamp", "value"]:
            raise TraceError(
                f"{path} line {reader.line_num}: expected the header 'timestamp,value', got {','.join(header)!r}"
            )
        for where, row in rows(path, reader, len(header)):
            try:
                stamp = datetime.fromisoformat(row[0].strip())
            except ValueError:
                bad(where, "timestamp", "a time like '2014-04-10 00:04:00'", row[0])
            if stamp.tzinfo is not None:  # the trace's times are UTC; an explicit offset must agree with the rest
                stamp = stamp.astimezone(UTC).replace(tzinfo=None)
            if first is None:
                first = stamp
            t = (stamp - first).total_seconds()
            if times and t <= times[-1]:
                bad(where, "timestamp", "a time after the previous row's", row[0])
            value = finite(where, "value", row[1].strip(), minimum=0.0)
            times.append(t)
            rates.append(value / period_s)
    if not times:
        raise TraceError(f"{path}: no samples after the header")
    return series_workload("elb", path, times, rates, times[-1] + period_s, model, start_s, duration_s, "NAB AWS ELB")
