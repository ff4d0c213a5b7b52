"""Trace readers and the request-rate service model, on tiny synthetic files written to tmp_path."""

from __future__ import annotations

import io
import math
import re
import tarfile
from pathlib import Path

import pytest

from node_fleet.sim import traces
from node_fleet.sim.traces import (
    FORMATS,
    HORIZON_MARGIN_S,
    TRACE_DEFAULTS,
    ServiceModel,
    from_alibaba,
    from_azure,
    from_elb,
    from_nasa,
    load,
    load_pods_csv,
    rates_to_workload,
    write_pods_csv,
)
from node_fleet.sim.workload import DEFAULT_USAGE, PodSpec, TraceError, Workload

HEADER = "name,start_s,end_s,cpu_m,mem_mib,usage,owner_kind"


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def live_at(w: Workload, t: float) -> int:
    return sum(1 for p in w.pods if p.start_s <= t and (p.end_s is None or p.end_s > t))


# --------------------------------------------------------------------------------------------------
# Pod CSV


def test_pods_csv_reads_pods_defaults_and_horizon(tmp_path):
    path = write(
        tmp_path,
        "mix.csv",
        f"{HEADER}\nweb-1,0,600,500,1024,0.25,\nweb-2,30.5,,250,512,,ReplicaSet\n\nbatch-1,100,1200.5,1000,2048,1,Job\n",
    )
    w = load_pods_csv(path)
    assert w.name == "mix"
    assert w.pods == (
        PodSpec("web-1", 0.0, 600.0, 500, 1024, 0.25),
        PodSpec("web-2", 30.5, None, 250, 512, DEFAULT_USAGE),
        PodSpec("batch-1", 100.0, 1200.5, 1000, 2048, 1.0, owner_kind="Job"),
    )
    assert w.horizon_s == 1200.5 + HORIZON_MARGIN_S


def test_pods_csv_owner_kind_column_is_optional(tmp_path):
    w = load_pods_csv(write(tmp_path, "p.csv", "name,start_s,end_s,cpu_m,mem_mib,usage\na,0,,100,200,0.5\n"))
    assert [p.owner_kind for p in w.pods] == ["ReplicaSet"]


def test_pods_csv_usage_column_is_optional(tmp_path):
    path = write(tmp_path, "p.csv", "name,start_s,end_s,cpu_m,mem_mib\na,0,,100,200\nb,5000,,100,200\n")
    w = load_pods_csv(path)
    assert [p.usage for p in w.pods] == [DEFAULT_USAGE, DEFAULT_USAGE]
    assert w.horizon_s == 5000 + HORIZON_MARGIN_S  # no end: the last start counts


@pytest.mark.parametrize(
    ("row", "line_field", "expected"),
    [
        pytest.param(",0,,100,200,0.5,", "line 3, field name", "a non-empty name", id="empty name"),
        pytest.param("a,0,,100,200,0.5,", "line 3, field name", "unique name (already on line 2)", id="duplicate"),
        pytest.param("b,-1,,100,200,0.5,", "line 3, field start_s", "finite number >= 0", id="negative start"),
        pytest.param("b,soon,,100,200,0.5,", "line 3, field start_s", "got 'soon'", id="start not a number"),
        pytest.param("b,nan,,100,200,0.5,", "line 3, field start_s", "finite number", id="start nan"),
        pytest.param("b,inf,,100,200,0.5,", "line 3, field start_s", "finite number", id="start inf"),
        pytest.param("b,10,10,100,200,0.5,", "line 3, field end_s", "a number > start_s (10)", id="end = start"),
        pytest.param("b,10,5,100,200,0.5,", "line 3, field end_s", "> start_s", id="end before start"),
        pytest.param("b,10,later,100,200,0.5,", "line 3, field end_s", "got 'later'", id="end not a number"),
        pytest.param("b,0,,abc,200,0.5,", "line 3, field cpu_m", "positive integer, got 'abc'", id="cpu abc"),
        pytest.param("b,0,,0,200,0.5,", "line 3, field cpu_m", "positive integer, got '0'", id="cpu zero"),
        pytest.param("b,0,,1.5,200,0.5,", "line 3, field cpu_m", "positive integer, got '1.5'", id="cpu fraction"),
        pytest.param("b,0,,100,-4,0.5,", "line 3, field mem_mib", "positive integer, got '-4'", id="mem negative"),
        pytest.param("b,0,,100,200,1.5,", "line 3, field usage", "a number in [0, 1], got '1.5'", id="usage > 1"),
        pytest.param("b,0,,100,200,-0.1,", "line 3, field usage", "[0, 1]", id="usage < 0"),
        pytest.param("b,0,,100,200,most,", "line 3, field usage", "got 'most'", id="usage not a number"),
        pytest.param(
            "b,0,,100,200,0.5,CronJob", "line 3, field owner_kind", "ReplicaSet, Job or empty, got 'CronJob'", id="kind"
        ),
        pytest.param("b,0,,100", "line 3", "expected 7 fields, got 4", id="short row"),
    ],
)
def test_pods_csv_bad_row_names_file_line_field(tmp_path, row, line_field, expected):
    path = write(tmp_path, "pods.csv", f"{HEADER}\na,0,,100,200,0.5,\n{row}\n")
    with pytest.raises(TraceError) as err:
        load_pods_csv(path)
    message = str(err.value)
    assert f"pods.csv {line_field}" in message
    assert expected in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            "", "empty file, expected the header 'name,start_s,end_s,cpu_m,mem_mib,usage,owner_kind'", id="empty"
        ),
        pytest.param("\n\n", "empty file", id="blank lines only"),
        pytest.param("name,start,end,cpu,mem\na,0,,1,1\n", "line 1: expected the header", id="wrong header"),
        pytest.param("start_s,name,end_s,cpu_m,mem_mib,usage\n", "got 'start_s,name,", id="reordered header"),
        pytest.param(f"{HEADER}\n", "no pods after the header", id="header only"),
    ],
)
def test_pods_csv_bad_file(tmp_path, text, expected):
    path = write(tmp_path, "pods.csv", text)
    with pytest.raises(TraceError, match=re.escape("pods.csv")) as err:
        load_pods_csv(path)
    assert expected in str(err.value)


def test_missing_file_is_a_trace_error(tmp_path):
    with pytest.raises(TraceError, match=re.escape("nope.csv: cannot open")):
        load_pods_csv(tmp_path / "nope.csv")


def test_pods_csv_round_trip(tmp_path):
    pods = (
        PodSpec("a", 0.0, 60.0, 250, 512, 0.6),
        PodSpec("b,with comma", 1.0 / 3.0, None, 1000, 2048, 0.123456789),
        PodSpec('c"quoted', 12.25, 7200.125, 750, 1536, 0.0),
        PodSpec("d", 86399.0, None, 1, 1, 1.0, owner_kind="Job"),
    )
    path = tmp_path / "out.csv"
    write_pods_csv(Workload("w", pods, 9e4), path)
    assert path.read_text().splitlines()[0] == HEADER
    assert "a,0,60,250,512,0.6,ReplicaSet" in path.read_text().splitlines()
    again = load_pods_csv(path)
    assert again.pods == pods
    assert again.horizon_s == 86399.0 + HORIZON_MARGIN_S


# --------------------------------------------------------------------------------------------------
# Service model and rates_to_workload


def unit_model(**kw) -> ServiceModel:
    """1 replica per request/s: 1000 m per request/s, 1000 m pods, target 1.0."""
    params = dict(
        cost_m_per_rps=1000.0,
        pod_cpu_m=1000,
        pod_mem_mib=2048,
        target_utilization=1.0,
        min_replicas=1,
        step_s=60,
        scale_down_stabilization_s=0,
    )
    params.update(kw)
    return ServiceModel(**params)


@pytest.mark.parametrize(
    ("model", "rate", "expected"),
    [
        pytest.param(unit_model(), 0.0, 1, id="floor of min replicas"),
        pytest.param(unit_model(min_replicas=0), 0.0, 0, id="zero min"),
        pytest.param(unit_model(), 3.0, 3, id="exact fit needs no extra replica"),
        pytest.param(unit_model(), 3.01, 4, id="a little more rounds up"),
        pytest.param(ServiceModel(40.0, 500, 1024, 0.7, 6), 100.0, 12, id="4000 m at 350 m a pod"),
        pytest.param(ServiceModel(500.0, 500, 1024, 0.7, 0), 0.7, 1, id="float noise at exactly 1"),
    ],
)
def test_desired_replicas(model, rate, expected):
    assert model.desired_replicas(rate) == expected


@pytest.mark.parametrize(
    "kw",
    [
        pytest.param({"cost_m_per_rps": 0.0}, id="zero cost"),
        pytest.param({"cost_m_per_rps": math.nan}, id="nan cost"),
        pytest.param({"pod_cpu_m": 0}, id="zero pod cpu"),
        pytest.param({"pod_mem_mib": 1.5}, id="fractional pod memory"),
        pytest.param({"target_utilization": 0.0}, id="zero target"),
        pytest.param({"target_utilization": 1.2}, id="target above 1"),
        pytest.param({"min_replicas": -1}, id="negative min"),
        pytest.param({"step_s": 0}, id="zero step"),
        pytest.param({"scale_down_stabilization_s": -60}, id="negative stabilization"),
    ],
)
def test_service_model_rejects_nonsense(kw):
    with pytest.raises(ValueError, match=next(iter(kw))):
        ServiceModel(**kw)


def test_rates_to_workload_replicas_follow_the_rate():
    rates = [1, 3, 3, 2, 5, 0, 1]
    times = [60.0 * i for i in range(len(rates))]
    w = rates_to_workload("svc", times, rates, unit_model())
    assert [live_at(w, t) for t in times] == [1, 3, 3, 2, 5, 1, 1]
    assert w.horizon_s == 7 * 60
    assert all(p.cpu_m == 1000 and p.mem_mib == 2048 for p in w.pods)
    assert "1000 m per request/s" in w.description


def test_rates_to_workload_ends_the_newest_pods_first():
    w = rates_to_workload("svc", [0.0, 60.0, 120.0, 180.0, 240.0], [1, 2, 3, 2, 1], unit_model())
    lives = [(p.name, p.start_s, p.end_s) for p in w.pods]
    assert lives == [
        ("svc-00000", 0.0, None),
        ("svc-00001", 60.0, 240.0),  # older: ends last
        ("svc-00002", 120.0, 180.0),  # newest: ends first
    ]


def test_rates_to_workload_one_podspec_per_replica_life():
    # Up, down, up again: the second rise makes new pods, it does not revive old ones.
    w = rates_to_workload("svc", [0.0, 60.0, 120.0, 180.0], [1, 2, 1, 2], unit_model(), horizon_s=300.0)
    assert [(p.start_s, p.end_s) for p in w.pods] == [(0.0, None), (60.0, 120.0), (180.0, None)]
    assert len({p.name for p in w.pods}) == 3
    assert w.horizon_s == 300.0


@pytest.mark.parametrize(
    ("window_s", "expected"),
    [
        pytest.param(0, [1, 3, 3, 1, 1, 1, 1, 2, 2], id="no stabilization: drops at once"),
        pytest.param(120, [1, 3, 3, 3, 3, 1, 1, 2, 2], id="120 s: drops after 2 lower minutes"),
        pytest.param(300, [1, 3, 3, 3, 3, 3, 3, 3, 2], id="300 s: drops once lower for 300 s"),
    ],
)
def test_rates_to_workload_scale_down_stabilization(window_s, expected):
    rates = [1, 3, 3, 1, 1, 1, 1, 2, 2]  # lower than 3 from t=180 on
    times = [60.0 * i for i in range(len(rates))]
    w = rates_to_workload("svc", times, rates, unit_model(scale_down_stabilization_s=window_s))
    assert [live_at(w, t) for t in times] == expected


def test_rates_to_workload_stabilization_holds_the_window_maximum():
    # Desired 4, 2, 3, 1, 1, 1 with a 120 s window: 4 until t=120 is past, then the max of the last 120 s.
    rates = [4, 2, 3, 1, 1, 1]
    times = [60.0 * i for i in range(len(rates))]
    w = rates_to_workload("svc", times, rates, unit_model(scale_down_stabilization_s=120))
    assert [live_at(w, t) for t in times] == [4, 4, 4, 3, 3, 1]


def test_rates_to_workload_usage_is_the_time_weighted_load_share():
    # One replica (min 1), rate 0.5 then 1.0 for a minute each: usage 0.5 then 1.0, mean 0.75.
    w = rates_to_workload("svc", [0.0, 60.0], [0.5, 1.0], unit_model())
    assert len(w.pods) == 1
    assert w.pods[0].usage == pytest.approx(0.75)
    # Two replicas at a 0.5 target for rate 1: each used at 50 %.
    w = rates_to_workload("svc", [0.0], [1.0], unit_model(target_utilization=0.5))
    assert [p.usage for p in w.pods] == [0.5, 0.5]
    # Min replicas above the need: usage below the target.
    w = rates_to_workload("svc", [0.0], [1.0], unit_model(min_replicas=4))
    assert [p.usage for p in w.pods] == [0.25] * 4


@pytest.mark.parametrize(
    ("times", "rates", "match"),
    [
        pytest.param([], [], "at least one", id="empty"),
        pytest.param([0.0, 60.0], [1.0], "as many rates as times", id="length mismatch"),
        pytest.param([0.0, 60.0, 60.0], [1.0, 1.0, 1.0], "increase strictly", id="repeated time"),
        pytest.param([0.0, 60.0], [1.0, -1.0], r"rates\[1\]", id="negative rate"),
        pytest.param([0.0], [math.inf], r"rates\[0\]", id="infinite rate"),
    ],
)
def test_rates_to_workload_rejects_bad_series(times, rates, match):
    with pytest.raises(ValueError, match=match):
        rates_to_workload("svc", times, rates, unit_model())


# --------------------------------------------------------------------------------------------------
# NASA


def make_tbz2(path: Path, text: str, member: str = "workload.txt") -> Path:
    data = text.encode()
    with tarfile.open(path, "w:bz2") as tar:
        info = tarfile.TarInfo(member)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return path


def test_nasa_means_per_step_and_window(tmp_path):
    # 10 seconds of requests/s; a 2 s model step gives rates 1, 3, 5, 7, 9.
    path = make_tbz2(tmp_path / "nasa.tbz2", "0 2 2 4\n4 6 6 8 8 10\n")
    model = unit_model(step_s=2)
    w = from_nasa(path, model)
    assert w.horizon_s == 10.0
    assert [live_at(w, t) for t in range(0, 10, 2)] == [1, 3, 5, 7, 9]
    # Seconds 3..7 (values 4 4 6 6 8): steps of 2 s from the window start, the last one partial.
    w = from_nasa(path, model, start_s=3, duration_s=5)
    assert w.horizon_s == 5.0
    assert [live_at(w, t) for t in (0, 2, 4)] == [4, 6, 8]
    assert "seconds 3..8" in w.description


def test_nasa_streams_across_chunk_boundaries(tmp_path, monkeypatch):
    values = [i % 17 for i in range(500)]
    path = make_tbz2(tmp_path / "nasa.tbz2", " ".join(map(str, values)) + "\n")
    monkeypatch.setattr(traces.nasa, "_CHUNK_BYTES", 7)  # splits numbers between reads
    assert traces.nasa.read_nasa(path, 0, math.inf) == values
    assert traces.nasa.read_nasa(path, 123, 321) == values[123:321]


def test_nasa_window_past_the_end(tmp_path):
    path = make_tbz2(tmp_path / "nasa.tbz2", "1 2 3\n")
    with pytest.raises(TraceError, match="past the end"):
        from_nasa(path, unit_model(), start_s=3)
    w = from_nasa(path, unit_model(), start_s=1, duration_s=100)  # clipped to the trace
    assert w.horizon_s == 2.0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            "1 2\n3 x 4\n", "line 2, value 4, field requests_per_s: expected an integer >= 0, got 'x'", id="word"
        ),
        pytest.param("1 2 3 -4\n", "line 1, value 4, field requests_per_s", id="negative"),
        pytest.param("1\n2\n3\n4.5\n", "line 4, value 4", id="fraction, one per line"),
    ],
)
def test_nasa_bad_value(tmp_path, text, expected):
    path = make_tbz2(tmp_path / "nasa.tbz2", text)
    with pytest.raises(TraceError, match=re.escape("nasa.tbz2")) as err:
        from_nasa(path, unit_model())
    assert expected in str(err.value)


def test_nasa_checks_only_the_window(tmp_path):
    path = make_tbz2(tmp_path / "nasa.tbz2", "1 1 x\n")
    assert len(from_nasa(path, unit_model(), start_s=0, duration_s=2).pods) == 1


def test_nasa_archive_problems(tmp_path):
    with pytest.raises(TraceError, match=re.escape("no workload.txt")):
        from_nasa(make_tbz2(tmp_path / "other.tbz2", "1 2", member="other.txt"), unit_model())
    bogus = write(tmp_path, "bogus.tbz2", "not an archive")
    with pytest.raises(TraceError, match=re.escape("bogus.tbz2: cannot read as a bzip2 tar archive")):
        from_nasa(bogus, unit_model())


# --------------------------------------------------------------------------------------------------
# ELB


def test_elb_counts_per_five_minutes_become_rates(tmp_path):
    path = write(
        tmp_path,
        "elb.csv",
        "timestamp,value\n"
        "2014-04-10 00:04:00,300.0\n"
        "2014-04-10 00:09:00,600\n"
        "2014-04-10 00:19:00,900\n",  # 00:14 is missing: 600 holds for 10 minutes
    )
    w = from_elb(path, unit_model())
    assert w.horizon_s == 20 * 60
    minutes = [live_at(w, 60.0 * m) for m in range(20)]
    assert minutes == [1] * 5 + [2] * 10 + [3] * 5
    # Windows resampled to 5-minute time-weighted means, times relative to the window start.
    w = from_elb(path, unit_model(step_s=300), start_s=300, duration_s=600)
    assert [live_at(w, t) for t in (0, 300)] == [2, 2]
    w = from_elb(path, unit_model(step_s=300), start_s=420, duration_s=600)
    assert [live_at(w, t) for t in (0, 300)] == [2, 3]  # (3 min at 2 + 2 at 3) / 5 = 2.4 -> 3
    w = from_elb(path, unit_model(step_s=300), start_s=720, duration_s=6000)
    assert w.horizon_s == 480.0  # clipped to the end of the last period
    assert [live_at(w, t) for t in (0, 300)] == [3, 3]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("", "elb.csv: empty file, expected the header 'timestamp,value'", id="empty"),
        pytest.param("time,count\n", "elb.csv line 1: expected the header 'timestamp,value'", id="wrong header"),
        pytest.param("timestamp,value\n", "no samples", id="header only"),
        pytest.param(
            "timestamp,value\n2014-04-10 00:04:00,1\nyesterday,2\n",
            "elb.csv line 3, field timestamp: expected a time like",
            id="bad timestamp",
        ),
        pytest.param(
            "timestamp,value\n2014-04-10 00:04:00,1\n2014-04-10 00:04:00,2\n",
            "elb.csv line 3, field timestamp: expected a time after the previous row's",
            id="repeated timestamp",
        ),
        pytest.param(
            "timestamp,value\n2014-04-10 00:04:00,-3\n",
            "elb.csv line 2, field value: expected a finite number >= 0, got '-3'",
            id="negative value",
        ),
        pytest.param("timestamp,value\n2014-04-10 00:04:00\n", "elb.csv line 2: expected 2 fields", id="short row"),
    ],
)
def test_elb_bad_file(tmp_path, text, expected):
    with pytest.raises(TraceError) as err:
        from_elb(write(tmp_path, "elb.csv", text), unit_model())
    assert expected in str(err.value)


# --------------------------------------------------------------------------------------------------
# Azure


def azure_text(rows: list[list[int]]) -> str:
    minutes = len(rows[0])
    head = "HashFunction,HashApp,HashOwner," + ",".join(f"minute_{i}" for i in range(1, minutes + 1))
    body = "".join(f"f{k},app,owner," + ",".join(map(str, r)) + "\n" for k, r in enumerate(rows))
    return head + "\n" + body


def test_azure_sums_functions_per_minute(tmp_path):
    # Per minute: 60, 180, 300 invocations -> 1, 3, 5 requests/s.
    path = write(tmp_path, "inv.csv", azure_text([[60, 120, 0], [0, 60, 300]]))
    w = from_azure(path, unit_model())
    assert w.horizon_s == 180.0
    assert [live_at(w, t) for t in (0, 60, 120)] == [1, 3, 5]
    assert "2 functions summed" in w.description
    w = from_azure(path, unit_model(), start_s=60, duration_s=60)
    assert w.horizon_s == 60.0
    assert live_at(w, 0) == 3


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("", "empty file", id="empty"),
        pytest.param("HashFunction,HashApp,HashOwner,minute_2\n", "line 1: expected the header", id="minutes not 1.."),
        pytest.param("HashFunction,HashApp,HashOwner\n", "line 1: expected the header", id="no minutes"),
        pytest.param(
            azure_text([[1, 2]]).replace("f0,app,owner,1,2", "f0,app,owner,1,two"),
            "inv.csv line 2, field minute_2: expected an integer >= 0, got 'two'",
            id="bad count",
        ),
        pytest.param(azure_text([[1, 2], [3, -1]]), "inv.csv line 3, field minute_2", id="negative count"),
        pytest.param(azure_text([[1, 2]]) + "f9,app,owner,1\n", "inv.csv line 3: expected 5 fields", id="short row"),
        pytest.param(azure_text([[1, 2]]).split("\n")[0] + "\n", "no functions", id="header only"),
    ],
)
def test_azure_bad_file(tmp_path, text, expected):
    with pytest.raises(TraceError) as err:
        from_azure(write(tmp_path, "inv.csv", text), unit_model())
    assert expected in str(err.value)


# --------------------------------------------------------------------------------------------------
# Alibaba

ALI_HEADER = (
    "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,creation_time,deletion_time,scheduled_time"
)


def ali_row(name: str, cpu: int | str, mem: int | str, created: int | str, deleted: int | str) -> str:
    return f"{name},{cpu},{mem},1,1000,,LS,Running,{created},{deleted},{created}"


def test_alibaba_scales_and_drops_pods_that_do_not_fit(tmp_path):
    rows = [
        ali_row("small", 12000, 40000, 0, 500),  # -> 600 m, 2000 MiB
        ali_row("odd", 3152, 5601, 10, 0),  # -> 158 m (rounded up), 281 MiB; 0: runs to the end
        ali_row("edge", 40000, 153600, 20, ""),  # exactly one worker after / 20
        ali_row("wide", 40020, 1000, 30, 900),  # 2001 m: dropped
        ali_row("tall", 1000, 153601, 30, 900),  # 7681 MiB: dropped
        ali_row("no-memory", 1000, 0, 40, 100),  # 0 MiB -> at least 1
        ali_row("instant", 1000, 1000, 50, 50),  # 0 s: skipped
        ali_row("never", 1000, 1000, "", ""),  # no creation time: skipped
    ]
    path = write(tmp_path, "ali.csv", ALI_HEADER + "\n" + "\n".join(rows) + "\n")
    w = from_alibaba(path)
    assert w.pods == (
        PodSpec("small", 0.0, 500.0, 600, 2000, DEFAULT_USAGE),
        PodSpec("odd", 10.0, None, 158, 281, DEFAULT_USAGE),
        PodSpec("edge", 20.0, None, 2000, 7680, DEFAULT_USAGE),
        PodSpec("no-memory", 40.0, 100.0, 50, 1, DEFAULT_USAGE),
    )
    assert w.horizon_s == 500.0 + HORIZON_MARGIN_S
    assert "divided by 20" in w.description
    assert "dropped 2 pods larger than a 2000 m / 7680 MiB worker" in w.description
    assert "skipped 1 zero-length pods and 1 without a creation_time" in w.description
    # A bigger factor fits them all; a smaller worker drops more.
    assert len(from_alibaba(path, scale=40).pods) == 6
    assert len(from_alibaba(path, scale=20, node_cpu_m=500).pods) == 2


def test_alibaba_window_is_relative_and_clips(tmp_path):
    rows = [
        ali_row("before", 2000, 2000, 0, 900),  # gone before the window
        ali_row("across-start", 2000, 2000, 500, 1500),  # running at the start: starts at 0
        ali_row("inside", 2000, 2000, 1200, 1800),
        ali_row("across-end", 2000, 2000, 1900, 2500),  # still running at the end: end None
        ali_row("forever", 2000, 2000, 100, 0),
        ali_row("after", 2000, 2000, 2000, 2100),  # starts at the window end: outside
    ]
    path = write(tmp_path, "ali.csv", ALI_HEADER + "\n" + "\n".join(rows) + "\n")
    w = from_alibaba(path, scale=1, start_s=1000, duration_s=1000)
    assert [(p.name, p.start_s, p.end_s) for p in w.pods] == [
        ("across-start", 0.0, 500.0),
        ("inside", 200.0, 800.0),
        ("across-end", 900.0, None),
        ("forever", 0.0, None),
    ]
    assert w.horizon_s == 1000.0
    late = from_alibaba(path, scale=1, start_s=5000, duration_s=10)
    assert [(p.name, p.start_s, p.end_s) for p in late.pods] == [("forever", 0.0, None)]
    path = write(tmp_path, "ali.csv", ALI_HEADER + "\n" + "\n".join(rows[:4]) + "\n")
    with pytest.raises(TraceError, match="no pods in the window"):
        from_alibaba(path, scale=1, start_s=5000, duration_s=10)


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        pytest.param(
            ali_row("b", "x", 1, 0, 1), "line 3, field cpu_milli: expected an integer >= 0, got 'x'", id="cpu"
        ),
        pytest.param(ali_row("b", 1, -5, 0, 1), "line 3, field memory_mib: expected an integer >= 0", id="memory"),
        pytest.param(
            ali_row("b", 1, 1, "t0", 1), "line 3, field creation_time: expected a finite number", id="created"
        ),
        pytest.param(
            ali_row("b", 1, 1, 50, 10), "line 3, field deletion_time: expected a time >= creation", id="order"
        ),
        pytest.param(ali_row("a", 1, 1, 0, 1), "line 3, field name: expected a unique name", id="duplicate"),
        pytest.param(ali_row("", 1, 1, 0, 1), "line 3, field name: expected a non-empty name", id="no name"),
        pytest.param("b,1,1", "line 3: expected 11 fields, got 3", id="short row"),
    ],
)
def test_alibaba_bad_row(tmp_path, row, expected):
    path = write(tmp_path, "ali.csv", ALI_HEADER + "\n" + ali_row("a", 1, 1, 0, 1) + "\n" + row + "\n")
    with pytest.raises(TraceError, match=re.escape("ali.csv")) as err:
        from_alibaba(path)
    assert expected in str(err.value)


def test_alibaba_header_must_have_the_columns(tmp_path):
    path = write(tmp_path, "ali.csv", "name,cpu_milli,memory_mib\na,1,1\n")
    with pytest.raises(TraceError, match=re.escape("ali.csv line 1: expected a header with the columns")) as err:
        from_alibaba(path)
    assert "creation_time" in str(err.value)


# --------------------------------------------------------------------------------------------------
# Dispatch and defaults


def test_load_dispatches_with_defaults_and_overrides(tmp_path):
    pods = write(tmp_path, "p.csv", f"{HEADER}\na,0,60,100,100,0.5,Job\n")
    assert load(pods, "pods") == load_pods_csv(pods)
    inv = write(tmp_path, "inv.csv", azure_text([[600, 1200, 60]]))
    assert load(inv, "azure") == from_azure(inv, TRACE_DEFAULTS["azure"]["model"])
    assert load(inv, "azure", model=unit_model(), start_s=60) == from_azure(inv, unit_model(), start_s=60)


def test_load_unknown_format_lists_the_formats(tmp_path):
    with pytest.raises(
        ValueError, match="unknown trace format 'parquet': expected one of pods, nasa, elb, azure, alibaba"
    ):
        load(tmp_path / "x", "parquet")


def test_trace_defaults_cover_every_format_with_short_windows():
    assert set(TRACE_DEFAULTS) == set(FORMATS) == {"pods", "nasa", "elb", "azure", "alibaba"}
    for fmt in ("nasa", "elb", "alibaba"):
        assert 0 < TRACE_DEFAULTS[fmt]["duration_s"] <= 2 * 86400
    for fmt in ("nasa", "elb", "azure"):
        assert isinstance(TRACE_DEFAULTS[fmt]["model"], ServiceModel)


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        pytest.param({"start_s": -1}, "start_s", id="negative start"),
        pytest.param({"duration_s": 0}, "duration_s", id="zero duration"),
        pytest.param({"scale": 0}, "scale", id="zero scale"),
    ],
)
def test_bad_window_arguments(tmp_path, kw, match):
    path = write(tmp_path, "ali.csv", ALI_HEADER + "\n" + ali_row("a", 1, 1, 0, 1) + "\n")
    with pytest.raises(ValueError, match=match):
        from_alibaba(path, **kw)
