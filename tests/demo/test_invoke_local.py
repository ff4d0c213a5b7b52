"""`node-fleet invoke FUNCTION --event FILE --local`: one function against an embedded stack started
for the call, in a subprocess as a user runs it (the result on stdout, the handler's logs on stderr).
Skipped, saying why, when Prometheus is not installed."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from demo_process import ROOT, alive, cmdline, command, environ

from node_fleet import exits
from node_fleet.stack.prometheus import INSTALL_HINT, binaries

pytestmark = pytest.mark.skipif(binaries() is None, reason=f"--local runs a real Prometheus: {INSTALL_HINT}")


def all_prometheus() -> set[int]:
    """Every live prometheus process on the machine."""
    found = set()
    for entry in Path("/proc").glob("[0-9]*"):
        args = cmdline(int(entry.name))
        if args and args[0].endswith("prometheus") and alive(int(entry.name)):
            found.add(int(entry.name))
    return found


def invoke_local(function: str, event: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command("invoke", function, "--event", f"events/{event}", "--local", *extra),
        cwd=ROOT,
        env=environ(),
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def test_a_schedule_tick_runs_one_cycle_against_the_embedded_stack():
    before = all_prometheus()
    done = invoke_local("AutoscalerFunction", "schedule_tick.json")
    assert not all_prometheus() - before, "the stack's Prometheus outlived the call"
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)
    assert result["status"] == "acted", result
    assert result["action"] == "none" and result["reasons"], result
    assert "metrics_unknown" not in [r["code"] for r in result["reasons"]], "Prometheus was waited for"
    assert '"message":"decision"' in done.stderr, "the handler's log line goes to stderr"


def test_the_invalid_manual_event_is_rejected_naming_the_field():
    done = invoke_local("AutoscalerFunction", "manual_invalid_count.json")
    assert done.returncode == exits.ANSWER_FAILED, done.stderr[-3000:]
    result = json.loads(done.stdout)
    assert result["status"] == "rejected" and "detail.count" in result["error"], result


def test_the_webhook_event_is_signed_with_the_stacks_key_and_accepted(tmp_path):
    env_vars = tmp_path / "env.json"
    env_vars.write_text(json.dumps({"GitopsHookFunction": {"WEBHOOK_MAX_AGE_S": "60"}}))
    done = invoke_local("GitopsHookFunction", "gitops_webhook_progressing.json", "--env-vars", str(env_vars))
    assert done.returncode == 0, done.stderr[-3000:]
    assert "re-signed" in done.stderr
    answer = json.loads(done.stdout)
    assert answer["statusCode"] == 202, answer
    assert json.loads(answer["body"])["blocked"] is True, "a Progressing event holds scale-down"


def test_parameter_overrides_are_honoured_against_the_embedded_stack():
    done = invoke_local("AutoscalerFunction", "schedule_tick.json", "--parameter-overrides", "MinNodes=3")
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)
    assert result["action"] == "scale_up" and "below_min" in [r["code"] for r in result["reasons"]], result


def test_parameter_overrides_of_what_the_stack_sets_are_refused_in_one_line():
    done = invoke_local("AutoscalerFunction", "schedule_tick.json", "--parameter-overrides", "K8sApiUrl=https://x:6443")
    assert done.returncode == exits.FAILED, done.stderr[-3000:]
    assert done.stdout == ""
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("local invoke: --parameter-overrides cannot change K8S_API_URL with --local"), last
    assert "Traceback" not in done.stderr
