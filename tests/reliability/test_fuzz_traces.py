"""Trace files, fuzzed: only TraceError escapes (ValueError for an unknown format), naming the file.
Profiles and shared strategies: fuzzing.py.
"""

from __future__ import annotations

import csv
import functools
import io
import math
import re
import tarfile
from datetime import UTC, datetime
from typing import Any

import pytest
from fuzzing import fuzz, note_outcome
from hypothesis import assume, given
from hypothesis import strategies as st

from node_fleet.sim import traces
from node_fleet.sim.workload import TraceError, Workload

ELB_MODEL = traces.ServiceModel(cost_m_per_rps=40.0)
RATE_CAP = 1e4
"""The fuzzing budget: a number above this in a request-rate file makes proportionally many pods
(up to the converters' replica cap), which is slow; files with one are left out."""
CELL_JUNK = st.sampled_from(
    (
        "",
        " ",
        "NaN",
        "nan",
        "inf",
        "-inf",
        "-1",
        "0",
        "-0",
        "1e309",
        "abc",
        "1.5",
        "1,5",
        '"',
        "0x10",
        "1_000",
        "٣",
        "2014-04-10",
        "2014-04-10 00:04:00",
        "2014-04-10T00:04:00+02:00",
        "9999-12-31 23:59:59",
        "\x00",
        "\t7\t",
    )
) | st.text(max_size=8)


def _stamp(minutes: int) -> str:
    return datetime.fromtimestamp(1_397_088_240 + 60 * minutes, UTC).strftime("%Y-%m-%d %H:%M:%S")


@st.composite
def _rows(draw: st.DrawFn, fmt: str) -> tuple[list[str], list[list[str]]]:
    """(header, rows) of a right-shaped file of the format."""
    n = draw(st.integers(min_value=0, max_value=6))
    small = st.integers(min_value=0, max_value=10_000)
    if fmt == "pods":
        header = ["name", "start_s", "end_s", "cpu_m", "mem_mib", "usage"]
        rows = []
        for i in range(n):
            start = draw(small)
            end = draw(st.sampled_from(("", str(start + draw(st.integers(min_value=1, max_value=5000))))))
            cpu, mem = draw(st.integers(min_value=1, max_value=4000)), draw(st.integers(min_value=1, max_value=16000))
            rows.append([f"web-{i}", str(start), end, str(cpu), str(mem), draw(st.sampled_from(("", "0", "0.6", "1")))])
        if not draw(st.integers(min_value=0, max_value=4)):
            header = header[:-1]
            rows = [r[:-1] for r in rows]
    elif fmt == "elb":
        header = ["timestamp", "value"]
        minutes = sorted(draw(st.sets(st.integers(min_value=0, max_value=90), max_size=n)))
        rows = [[_stamp(m), str(draw(small))] for m in minutes]
    elif fmt == "azure":
        width = draw(st.integers(min_value=1, max_value=5))
        header = ["HashFunction", "HashApp", "HashOwner", *(f"minute_{i}" for i in range(1, width + 1))]
        rows = [
            ["7aa0f8b2"] * 3 + [str(draw(st.integers(min_value=0, max_value=2000))) for _ in range(width)]
            for _ in range(n)
        ]
    else:
        header = ["name", "cpu_milli", "memory_mib", "num_gpu", "creation_time", "deletion_time"]
        rows = []
        for i in range(n):
            created = draw(st.sampled_from(("", "0", "100", "427061")))
            deleted = draw(
                st.sampled_from(("", "0", str(int(created or 0) + draw(st.integers(min_value=0, max_value=5000)))))
            )
            cpu, mem = (
                draw(st.integers(min_value=0, max_value=100_000)),
                draw(st.integers(min_value=0, max_value=200_000)),
            )
            rows.append([f"openb-pod-{i:04d}", str(cpu), str(mem), "1", created, deleted])
    return header, rows


@st.composite
def trace_files(draw: st.DrawFn) -> tuple[str, bytes]:
    """(the format it imitates, the file's bytes): a right-shaped file with cells, rows, the header or
    the encoding damaged, or random text or bytes."""
    fmt = draw(st.sampled_from(("pods", "elb", "azure", "alibaba")))
    choice = draw(st.integers(min_value=0, max_value=11))
    if choice == 0:
        return fmt, draw(st.binary(max_size=200))
    if choice == 1:
        return fmt, draw(st.text(max_size=200)).encode()
    header, rows = draw(_rows(fmt))
    table = [list(header), *rows]
    for _ in range(draw(st.integers(min_value=0 if choice > 5 else 1, max_value=4 if choice > 5 else 2))):
        target = draw(st.integers(min_value=0, max_value=len(table) - 1))
        op = draw(st.sampled_from(("cell", "cell", "cell", "drop cell", "add cell", "drop row", "dup row", "blank")))
        row = table[target]
        if op == "cell" and row:
            row[draw(st.integers(min_value=0, max_value=len(row) - 1))] = draw(CELL_JUNK)
        elif op == "drop cell" and row:
            row.pop(draw(st.integers(min_value=0, max_value=len(row) - 1)))
        elif op == "add cell":
            row.append(draw(CELL_JUNK))
        elif op == "drop row" and len(table) > 1:
            table.pop(target)
        elif op == "dup row":
            table.insert(target, list(row))
        elif op == "blank":
            table.insert(target, [])
    if draw(st.booleans()):
        out = io.StringIO()
        csv.writer(out, lineterminator=draw(st.sampled_from(("\n", "\r\n")))).writerows(table)
        text = out.getvalue()
    else:
        text = "".join(",".join(r) + "\n" for r in table)  # no quoting: commas and quotes in cells stay raw
    if draw(st.integers(min_value=0, max_value=19)) == 0:
        text = "\ufeff" + text
    return fmt, text.encode()


TRACE_CALLS: dict[str, Any] = {
    "load_pods_csv": traces.load_pods_csv,
    "from_elb(1 h)": lambda p: traces.from_elb(p, ELB_MODEL, start_s=0, duration_s=3600),
    "from_azure": lambda p: traces.from_azure(p, ELB_MODEL),
    "from_alibaba": traces.from_alibaba,
    "from_alibaba(window)": lambda p: traces.from_alibaba(p, start_s=50, duration_s=1000),
    **{f"load({fmt!r})": functools.partial(lambda fmt, p: traces.load(p, fmt), fmt) for fmt in traces.FORMATS},
}
RATES = {"elb", "azure", "nasa"}
"""The request-rate formats, whose numbers become replica counts."""
NATIVE = {
    "pods": ("load_pods_csv",),
    "elb": ("from_elb(1 h)",),
    "azure": ("from_azure",),
    "alibaba": ("from_alibaba", "from_alibaba(window)"),
}


@pytest.fixture(scope="module")
def trace_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("traces")


def check_workload(workload: Any) -> None:
    assert isinstance(workload, Workload) and workload.pods
    assert math.isfinite(workload.horizon_s) and workload.horizon_s > 0
    for pod in workload.pods:
        assert type(pod.cpu_m) is int and pod.cpu_m > 0 and type(pod.mem_mib) is int and pod.mem_mib > 0, pod
        assert math.isfinite(pod.start_s) and 0 <= pod.start_s < workload.horizon_s, pod
        assert pod.end_s is None or (math.isfinite(pod.end_s) and pod.start_s < pod.end_s <= workload.horizon_s), pod
        assert 0.0 <= pod.usage <= 1.0, pod


@fuzz(1200)
@given(file=trace_files(), call=st.sampled_from(sorted(TRACE_CALLS)), native=st.booleans())
def test_trace_files_load_or_raise_a_trace_error_naming_the_file(trace_dir, file, call, native):
    fmt, data = file
    if native and call not in NATIVE[fmt]:
        call = NATIVE[fmt][0]
    if RATES.intersection(call.split("'")) or call in ("from_elb(1 h)", "from_azure"):
        assume(_over_budget(data) is None)
    path = trace_dir / f"{fmt}-trace.csv"
    path.write_bytes(data)
    try:
        workload = TRACE_CALLS[call](path)
    except TraceError as exc:
        assert str(path) in str(exc), f"{exc} does not name the file"
        note_outcome(f"{call}: TraceError")
        return
    check_workload(workload)
    note_outcome(f"{call}: loaded")


@fuzz(300)
@given(
    tokens=st.lists(st.integers(min_value=0, max_value=10_000).map(str) | CELL_JUNK, max_size=30),
    sep=st.sampled_from((" ", "\n", "\t", "  \n")),
)
def test_nasa_archives_load_or_raise_a_trace_error_naming_the_file(trace_dir, tokens, sep):
    member = sep.join(tokens).encode()
    assume(_over_budget(member) is None)
    path = trace_dir / "nasa.tbz2"
    with tarfile.open(path, "w:bz2") as tar:
        info = tarfile.TarInfo("nasa/workload.txt")
        info.size = len(member)
        tar.addfile(info, io.BytesIO(member))
    try:
        workload = traces.from_nasa(path, ELB_MODEL, start_s=0, duration_s=600)
    except TraceError as exc:
        assert str(path) in str(exc)
        note_outcome("TraceError")
        return
    check_workload(workload)
    note_outcome("loaded")


@fuzz(200)
@given(fmt=st.text(max_size=10).filter(lambda f: f not in traces.FORMATS))
def test_an_unknown_trace_format_is_a_value_error(trace_dir, fmt):
    with pytest.raises(ValueError, match="unknown trace format") as err:
        traces.load(trace_dir / "any.csv", fmt)
    assert not isinstance(err.value, TraceError)


def _over_budget(data: bytes) -> str | None:
    """A number above RATE_CAP anywhere: a request-rate file would make that many pods (slow, not wrong)."""
    for token in re.split(rb"[\s,\"]+", data):
        try:
            value = float(token.decode())
        except (UnicodeDecodeError, ValueError, OverflowError):
            continue
        if not math.isfinite(value) or value > RATE_CAP:
            return f"{token[:20]!r} > {RATE_CAP:g}"
    return None


# --------------------------------------------------------------------------------------------------
# REGRESSIONS: shapes this fuzzing found breaking a loader, each with its minimal example.


TRACE_REGRESSIONS = [
    ("not UTF-8", traces.load_pods_csv, b"name,start_s,end_s,cpu_m,mem_mib\n\xff\xfe,0,,1,1\n"),
    (
        "a field over the csv limit",
        traces.load_pods_csv,
        b"name,start_s,end_s,cpu_m,mem_mib\n" + b"a" * 200_000 + b",0,,1,1\n",
    ),
    (
        "ELB times with and without an offset",
        TRACE_CALLS["from_elb(1 h)"],
        b"timestamp,value\n2014-04-10 00:04:00,94.0\n2014-04-10 00:09:00+00:00,56.0\n",
    ),
    (
        # With the ELB default model (15000 m per request/s) the replica count overflows to infinity.
        # Careful: with a cheaper model the same value is finite, and the converter allocates until
        # memory runs out (the unbounded replica count below).
        "ELB rate 1e308 overflows the replica count",
        lambda p: traces.from_elb(p, start_s=0, duration_s=3600),
        b"timestamp,value\n2014-04-10 00:04:00,1e308\n",
    ),
    (
        "Alibaba CPU of 400 digits",
        traces.from_alibaba,
        b"name,cpu_milli,memory_mib,creation_time,deletion_time\na," + b"9" * 400 + b",1,0,10\n",
    ),
    (
        "ELB rate 1e12 meets the replica cap",
        lambda p: traces.from_elb(p, start_s=0, duration_s=3600),
        b"timestamp,value\n2014-04-10 00:04:00,1e12\n",
    ),
]
"""A rate that is large but finite (an ELB value of 1e12) once asked rates_to_workload for ~10^13
replicas; the converters now refuse more than their replica cap with a TraceError."""


@pytest.mark.parametrize(("call", "data"), [c[1:] for c in TRACE_REGRESSIONS], ids=[c[0] for c in TRACE_REGRESSIONS])
def test_regression_traces(trace_dir, call, data):
    path = trace_dir / "bug.csv"
    path.write_bytes(data)
    try:
        workload = call(path)
    except TraceError as exc:
        assert str(path) in str(exc)
        return
    check_workload(workload)
