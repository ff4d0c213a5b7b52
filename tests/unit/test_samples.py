"""What samples/ ships works on a fresh clone: `simulate` on each trace excerpt, `gate` on the Flux objects."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from node_fleet import exits
from node_fleet.cli import main

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
TRACES = SAMPLES / "traces"

# (file, format, extra arguments, replayed seconds)
TRACE_SAMPLES = [
    ("nasa-http-1995-jul12-13-rps.tbz2", "nasa", ["--start-s", "0"], 2 * 86_400),
    ("nab-aws-elb-request-count-2014-04-22-23.csv", "elb", ["--start-s", "0"], 2 * 86_400),
    ("azure-functions-2019-top30-invocations.csv", "azure", [], 86_400),
]


@pytest.mark.parametrize(("file", "fmt", "extra", "horizon_s"), TRACE_SAMPLES, ids=[t[1] for t in TRACE_SAMPLES])
def test_simulate_replays_each_shipped_trace(capsys, file, fmt, extra, horizon_s):
    argv = ["simulate", "--trace", str(TRACES / file), "--format", fmt, *extra, "--policy", "node-fleet", "--json"]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["horizon_s"] == horizon_s
    ours = out["policies"]["node-fleet"]
    assert ours["dollars"] > 0 and ours["pods"] > 0


def test_every_shipped_trace_is_in_the_table_of_sources_and_the_folder_stays_small():
    shipped = {p.name for p in TRACES.iterdir()} - {"README.md", "LICENSE-NAB.txt", "LICENSE-invitro.txt"}
    assert shipped == {file for file, *_ in TRACE_SAMPLES}
    readme = (TRACES / "README.md").read_text()
    assert all(f"`{name}`" in readme for name in shipped)
    assert sum(p.stat().st_size for p in TRACES.iterdir()) < 300_000


def test_the_format_window_past_an_excerpts_end_says_so(capsys):
    assert main(["simulate", "--trace", str(TRACES / TRACE_SAMPLES[0][0]), "--format", "nasa"]) == exits.FAILED
    assert "past the end of the trace" in capsys.readouterr().err


def test_a_window_needs_a_trace_that_has_one(capsys):
    assert main(["simulate", "--scenario", "batch", "--start-s", "0"]) == exits.FAILED
    assert "--start-s" in capsys.readouterr().err


def test_gate_reads_the_sample_flux_objects_and_holds_for_the_upgrade(capsys):
    assert main(["gate", "--objects", str(SAMPLES / "flux-objects.yaml")]) == exits.GATE_HOLDS
    out = json.loads(capsys.readouterr().out)
    assert out["blocked"] is True
    assert [(r["kind"], r["name"]) for r in out["reasons"]] == [("HelmRelease", "kube-prometheus-stack")]
