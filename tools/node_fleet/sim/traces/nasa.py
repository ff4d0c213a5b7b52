"""NASA-HTTP 1995: a bzip2 tar holding `workload.txt`, one integer requests/second per second."""

from __future__ import annotations

import re
import tarfile
from pathlib import Path
from typing import IO, NoReturn

from node_fleet.sim.workload import TraceError, Workload

from .defaults import TRACE_DEFAULTS
from .rates import ServiceModel, check_replicas, rates_to_workload
from .reading import window_ints

_CHUNK_BYTES = 1 << 20
"""How much of the NASA archive's text is read at a time."""


_TOKEN = re.compile(rb"\S+")


def read_nasa(path: Path, start: int, stop: float) -> list[int]:
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
    start, stop = window_ints(start_s, duration_s)
    values = read_nasa(path, start, stop)
    if not values:
        raise TraceError(f"{path}: window start_s={start_s} is past the end of the trace")
    step = model.step_s
    times: list[float] = []
    rates: list[float] = []
    for i in range(0, len(values), step):
        chunk = values[i : i + step]
        times.append(float(i))
        rates.append(sum(chunk) / len(chunk))
    check_replicas(path, model, rates)
    return rates_to_workload(
        "nasa",
        times,
        rates,
        model,
        horizon_s=float(len(values)),
        description=f"NASA-HTTP 1995 requests/s from {path}, seconds {start}..{start + len(values)}",
    )
