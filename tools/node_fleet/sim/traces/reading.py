"""What every trace reader shares: opening, headers, checked cells that name the file, line and
field, windows."""

from __future__ import annotations

import csv
import functools
import math
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn

from node_fleet.sim.workload import PodSpec, TraceError, Workload

HORIZON_MARGIN_S = 900.0
"""Replay time added after the last pod event of a pod-level file, so the scale-down that follows
(10 minutes unneeded plus a drain, Cluster-Autoscaler-like) shows in the replay."""


def names_the_file(loader: Callable[..., Workload]) -> Callable[..., Workload]:
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


def window_bounds(start_s: float, duration_s: float | None) -> tuple[float, float]:
    if not (math.isfinite(start_s) and start_s >= 0):
        raise ValueError(f"start_s must be a finite number >= 0, got {start_s!r}")
    if duration_s is None:
        return float(start_s), math.inf
    if not (math.isfinite(duration_s) and duration_s > 0):
        raise ValueError(f"duration_s must be a positive number or None, got {duration_s!r}")
    return float(start_s), float(start_s + duration_s)


def window_ints(start_s: float, duration_s: float | None) -> tuple[int, float]:
    start, end = window_bounds(start_s, duration_s)
    return int(start), (math.inf if end == math.inf else int(start) + math.ceil(end - start))


def pods_horizon(pods: Sequence[PodSpec]) -> float:
    last = max(max(p.start_s, p.end_s or 0.0) for p in pods)
    return last + HORIZON_MARGIN_S


def open_text(path: Path) -> Any:
    try:
        return open(path, newline="", encoding="utf-8")
    except OSError as exc:
        raise TraceError(f"{path}: cannot open: {exc.strerror or exc}") from exc


def read_header(path: Path, reader: Iterator[list[str]], expected: Sequence[str]) -> list[str]:
    for row in reader:
        if row:
            return [c.strip() for c in row]
    raise TraceError(f"{path}: empty file, expected the header {','.join(expected)!r}")


def rows(path: Path, reader: Any, width: int) -> Iterator[tuple[str, list[str]]]:
    """The non-empty rows of a csv `reader` after its header, each with where it stands (file and
    line); a row of another width than the header's is a TraceError."""
    for row in reader:
        if not row:
            continue
        where = f"{path} line {reader.line_num}"
        if len(row) != width:
            raise TraceError(f"{where}: expected {width} fields, got {len(row)}")
        yield where, row


def bad(where: str, field: str, expected: str, got: str) -> NoReturn:
    raise TraceError(f"{where}, field {field}: expected {expected}, got {got!r}")


def finite(where: str, field: str, cell: str, minimum: float | None = None) -> float:
    text = cell.strip()
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or (minimum is not None and value < minimum):
        bad(where, field, "a finite number" + ("" if minimum is None else f" >= {num(minimum)}"), cell)
    return value


def positive_int(where: str, field: str, cell: str) -> int:
    try:
        value = int(cell.strip())
    except ValueError:
        value = 0
    if value <= 0:
        bad(where, field, "a positive integer", cell)
    return value


def nonneg_int(where: str, field: str, cell: str) -> int:
    try:
        value = int(cell.strip())
    except ValueError:
        value = -1
    if value < 0:
        bad(where, field, "an integer >= 0", cell)
    return value


def num(x: float) -> str:
    """A number as text, exactly: 12 for 12.0, else the shortest repr that reads back the same."""
    x = float(x)
    return str(int(x)) if x.is_integer() else repr(x)
