"""`node-fleet demo` end to end, in a subprocess as `make demo` runs it, and its Ctrl-C cleanup.

The run is the slowest test of the suite (about two and a half minutes: a launch that never joins is
only terminated after MAX_NODE_PROVISION_TIME_S, whose minimum is 60 s). Skipped, saying why, when
Prometheus is not installed.
"""

from __future__ import annotations

import json
import re
import signal
from pathlib import Path

import pytest
from demo_process import CYCLE_LINE, STACK_UP, Running, alive, cmdline, prometheus_children, refuses

from node_fleet.stack.prometheus import INSTALL_HINT, binaries

pytestmark = pytest.mark.skipif(binaries() is None, reason=f"the demo runs a real Prometheus: {INSTALL_HINT}")

DEMO_TIMEOUT_S = 420


@pytest.mark.slow
def test_the_demo_runs_the_scenario_and_meets_its_expectations(tmp_path):
    plot, log = tmp_path / "demo.png", tmp_path / "demo.log"
    demo = Running("demo", "--plot", str(plot), "--log", str(log))
    try:
        up = demo.wait_for(STACK_UP, 60)
        demo.wait_for(CYCLE_LINE, 90)
        started = prometheus_children(demo.process.pid)
        assert len(started) == 1, "the stack runs one Prometheus, a child of the demo"
        code = demo.finish(DEMO_TIMEOUT_S)
    finally:
        demo.kill()
    out = demo.output
    assert code == 0, out[-4000:]

    # The live timeline: one line per cycle, with the story's events between them.
    cycles = [line for line in demo.lines if CYCLE_LINE.search(line)]
    assert len(cycles) >= 30, out
    timeline = "\n".join(cycles)
    for shown in ("scale_up", "unschedulable_pods", "gitops_hold", "held (Kustomization apps in progress)"):
        assert shown in timeline, f"{shown!r} not in the timeline:\n{timeline}"
    for shown in ("scale_down", "empty_node", "unjoined_instance", "backing_off", "open"):
        assert shown in timeline, f"{shown!r} not in the timeline:\n{timeline}"
    events = [line for line in demo.lines if ">>>" in line]
    story = ("flash sale", "sale served", "the quiet", "Flux reconcile starts", "Flux reconcile done")
    for event in (*story, "canary analysis starts", "canary promoted"):
        assert any(event in line for line in events), f"no {event!r} event: {events}"
    assert any("unjoined instance terminated" in line for line in events), events

    # The order of the story: held while Flux reconciles, nodes removed only after it ended.
    held_at = [_seconds(line) for line in cycles if "gitops_hold" in line]
    removed_at = [_seconds(line) for line in cycles if re.search(r"\bscale_down \d", line)]
    done_at = next(_seconds(line) for line in events if "Flux reconcile done" in line)
    assert held_at and removed_at and min(held_at) < done_at <= min(removed_at)
    # And while Flagger analysed the revision the reconcile applied, until its promotion.
    canary_at = [_seconds(line) for line in cycles if "held (Canary demo-app in progress)" in line]
    promoted_at = next(_seconds(line) for line in events if "canary promoted" in line)
    assert canary_at and done_at <= min(canary_at) and max(canary_at) < promoted_at <= min(removed_at)

    # The summary.
    summary = out[out.index("summary:") :]
    for figure in (
        "launches",
        "terminations",
        "max workers",
        "pending-pod-seconds",
        "sale -> all pods bound",
        "GitOps holds observed",
    ):
        assert figure in summary, summary
    assert re.search(r"max workers\s+6\b", summary), summary
    assert re.search(r"scale-down after the reconcile: yes", summary), summary
    assert re.search(r"canary analysis\s+[1-9]\d* cycles held .* scale-down after its promotion: yes", summary), summary
    assert re.search(r"unjoined instance cleaned\s+yes: i-[0-9a-f]+ terminated", summary), summary
    assert "all expectations met" in out

    # The PNG, and the handlers' own output kept out of the terminal.
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and plot.stat().st_size > 20_000
    decisions = [json.loads(line) for line in log.read_text().splitlines() if '"message":"decision"' in line]
    assert {d["action"] for d in decisions} >= {"scale_up", "scale_down", "none"}
    assert not any(line.startswith('{"level"') for line in demo.lines), "handler logs leaked to the terminal"

    # Everything it started is gone.
    assert not any(alive(pid) for pid in started)
    moto, kube, prometheus = up.groups()
    assert refuses(moto) and refuses(kube) and refuses(prometheus)


def test_ctrl_c_stops_every_process_and_server_the_demo_started(tmp_path):
    demo = Running("demo", "--quick", "--plot", str(tmp_path / "demo.png"), "--log", str(tmp_path / "demo.log"))
    try:
        up = demo.wait_for(STACK_UP, 60)
        demo.wait_for(CYCLE_LINE, 90)  # the scenario runs
        started = prometheus_children(demo.process.pid)
        assert len(started) == 1
        data = next(arg.split("=", 1)[1] for arg in cmdline(started[0]) if arg.startswith("--storage.tsdb.path="))
        assert Path(data).is_dir()

        demo.process.send_signal(signal.SIGINT)  # the demo only: Prometheus must be stopped by it
        code = demo.finish(60)
    finally:
        demo.kill()
    assert code == 130, demo.output[-3000:]
    assert "interrupted" in demo.output
    assert not any(alive(pid) for pid in started), "Prometheus outlived the demo"
    moto, kube, prometheus = up.groups()
    assert refuses(moto), "moto's server still answers"
    assert refuses(kube), "the fake API server still answers"
    assert refuses(prometheus)
    assert not Path(data).exists(), "the stack's temporary directory was left behind"
    assert not (tmp_path / "demo.png").exists(), "an interrupted run writes no plot"


def _seconds(line: str) -> float:
    return float(line.split("s", 1)[0])
