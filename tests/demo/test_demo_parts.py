"""The demo's parts without a stack: the Flux object set under the real gate, the webhook signature
under the real hook, the expectations, the timeline line, the plot, the env-vars merge, and what the
commands say when Prometheus is missing. No sockets."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from pytest_socket import disable_socket, enable_socket

from autoscaler.config import Settings
from autoscaler.gitops.flux import State, verdict
from autoscaler.gitops.gate import evaluate
from gitops_hooks import handler as hook_handler
from node_fleet import exits
from node_fleet.cli import main
from node_fleet.demo import functions, local
from node_fleet.demo.flux import FakeFlux
from node_fleet.demo.plot import plot_demo, spans
from node_fleet.demo.record import Cycle, Record, Sample
from node_fleet.demo.render import cycle_line, gate_text, summary
from node_fleet.demo.timing import NORMAL, QUICK
from node_fleet.local_invoke import LocalInvokeError, env_vars_for
from node_fleet.stack.kube_api import FLUX_KINDS, FakeKube


@pytest.fixture(autouse=True)
def _no_sockets():
    disable_socket(allow_unix_socket=False)
    yield
    enable_socket()


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def flux_set(clock: Clock) -> tuple[FakeKube, FakeFlux]:
    kube = FakeKube()  # the in-memory store only: never started, no socket
    kube.install(*FLUX_KINDS)
    flux = FakeFlux(kube, clock)
    flux.seed()
    return kube, flux


def test_the_flux_set_is_ready_then_holds_while_apps_reconciles_then_settles():
    clock = Clock(1_800_000_000.0)
    kube, flux = flux_set(clock)

    def objects():
        return kube.objects("kustomizations", "kustomize.toolkit.fluxcd.io")

    assert [verdict(o).state for o in objects()] == [State.READY] * 3
    assert [o["metadata"]["name"] for o in objects()] == ["apps", "flux-system", "infrastructure"]
    first = evaluate(objects(), clock.now, None, settle_s=6)
    assert not first.blocked, "the seeded revisions were applied long ago: no settle window"

    flux.start_reconcile("apps")
    apps = flux.get("apps")
    assert verdict(apps).state is State.IN_PROGRESS and "Progressing" in verdict(apps).detail
    clock.now += 2
    during = evaluate(objects(), clock.now, first.memory, settle_s=6)
    assert during.blocked and [v.name for v in during.holding] == ["apps"]

    clock.now += 10
    flux.finish_reconcile("apps")
    apps = flux.get("apps")
    assert verdict(apps).state is State.READY and verdict(apps).changed_at == pytest.approx(clock.now, abs=1)
    assert apps["status"]["lastAppliedRevision"] == apps["status"]["lastAttemptedRevision"]
    after = evaluate(objects(), clock.now, during.memory, settle_s=6)
    assert after.blocked and after.settle_until is not None, "the settle window follows the reconcile"
    settled = evaluate(objects(), clock.now + 7, after.memory, settle_s=6)
    assert not settled.blocked


class _Objects:
    def list_custom(self, group, version, plural):
        return []


class _Store:
    def __init__(self):
        self.saved = None

    def load(self):
        return self.saved

    def save(self, record, observed_at):
        self.saved = record

    def first_use(self, digest, expires_at):
        return True


def test_the_signed_webhook_passes_the_hooks_own_check_and_a_wrong_key_does_not():
    event = functions.event_file("gitops_webhook_progressing.json")
    assert functions.is_function_url_request(event)
    assert not functions.is_function_url_request(functions.tick())
    signed = functions.signed_webhook(event, "the-key")
    assert json.loads(signed["body"])["timestamp"] != json.loads(event["body"])["timestamp"]
    assert signed["headers"]["content-length"] == str(len(signed["body"].encode()))

    wiring = hook_handler.HookWiring(_Objects(), _Store(), b"the-key")
    answer = hook_handler.webhook(signed, wiring, Settings(), 300)
    assert answer["statusCode"] == 202 and json.loads(answer["body"])["blocked"] is True
    forged = hook_handler.webhook(signed, hook_handler.HookWiring(_Objects(), _Store(), b"other"), Settings(), 300)
    assert forged["statusCode"] == 401


def test_fresh_events_get_a_new_id_and_time():
    a, b = functions.tick(), functions.tick()
    assert a["id"] != b["id"] and a["detail-type"] == "Scheduled Event"
    assert functions.tick("gitops_schedule_tick.json")["source"] == "aws.events"
    alarm = functions.alarm()
    assert alarm["detail"]["alarmName"] == "node-fleet-scale-cpu-high" and alarm["detail"]["state"]["value"] == "ALARM"


def _story(**changes) -> Record:
    """A record of a run that met every expectation; `changes` spoil it."""
    r = Record(NORMAL)
    r.samples = [
        Sample(t, w, w, p) for t, w, p in ((0, 2, 0), (4, 2, 6), (8, 4, 0), (60, 6, 0), (70, 1, 2), (140, 2, 0))
    ]
    r.cycles = [
        Cycle(4, 2, 2, 6, "acted", "scale_up", 2, reasons=[("unschedulable_pods", "6 pods")], launched=["i-1", "i-2"]),
        Cycle(46, 6, 6, 0, "acted", "none", reasons=[("gitops_hold", "apps in progress")], gate_blocked=True),
        Cycle(
            54,
            6,
            6,
            0,
            "acted",
            "none",
            reasons=[("gitops_hold", "Canary apps/demo-app in_progress")],
            gate_blocked=True,
        ),
        Cycle(60, 6, 6, 0, "acted", "scale_down", remove=["n1"], reasons=[("empty_node", "n1")], terminated=["i-1"]),
        Cycle(70, 1, 1, 2, "acted", "scale_up", 1, reasons=[("unschedulable_pods", "2 pods")], launched=["i-9"]),
        Cycle(132, 2, 1, 2, "acted", "none", reasons=[("unjoined_instance", "i-9")], terminated=["i-9"]),
    ]
    r.sale_at, r.sale_bound_at, r.quiet_at = 4, 18, 34
    r.reconcile_started, r.reconcile_ended = 37, 52
    r.canary_started, r.canary_ended = 52, 58
    r.batch_at, r.broken, r.broken_launched_at, r.broken_gone_at = 68, "i-9", 70, 132
    for name, value in changes.items():
        setattr(r, name, value)
    return r


@pytest.mark.parametrize(
    ("desc", "changes", "unmet"),
    [
        ("every expectation met", {}, []),
        ("the sale was never served", {"sale_bound_at": None}, ["flash sale was not served"]),
        ("a removal before the reconcile ended", {"reconcile_ended": 61}, ["before the Flux reconcile ended"]),
        ("a removal before the canary was promoted", {"canary_ended": 61}, ["before the canary was promoted"]),
        ("the canary never held", {"canary_started": 55}, ["held by the GitOps gate during the canary analysis"]),
        ("the unjoined instance stayed", {"broken_gone_at": None}, ["(i-9) was not terminated"]),
        ("no launch that never joins", {"broken": None}, ["no instance that never joins"]),
        ("a deadline missed", {"failures": ["the scenario did not finish"]}, ["did not finish"]),
    ],
)
def test_the_expectations(desc, changes, unmet):
    failed = _story(**changes).check()
    assert len(failed) == len(unmet), (desc, failed)
    for why, expected in zip(failed, unmet, strict=True):
        assert expected in why, (desc, why)


def test_no_hold_seen_is_an_unmet_expectation():
    r = _story()
    r.cycles = [c for c in r.cycles if "gitops_hold" not in c.codes]
    assert any("held by the GitOps gate" in why for why in r.check())


def test_pending_pod_seconds_integrate_the_samples():
    r = _story()
    # 6 pods for 4 s (sale), 2 pods for 70 s (batch)
    assert r.pending_pod_seconds() == pytest.approx(6 * 4 + 2 * 70)
    assert r.pending_pod_seconds(r.batch_at) == pytest.approx(2 * 70)


@pytest.mark.parametrize(
    ("desc", "cycle", "shown"),
    [
        (
            "a scale-up shows what it launched and why",
            Cycle(
                4.04, 2, 2, 6, "acted", "scale_up", 2, reasons=[("unschedulable_pods", "6 pods")], launched=["a", "b"]
            ),
            ["   4.0s", "scale_up 2", "+2", "unschedulable_pods: 6 pods", "open"],
        ),
        (
            "while backing off, the back-off is the reason, not the pods",
            Cycle(134, 1, 1, 2, "acted", "none", reasons=[("unschedulable_pods", "2"), ("backing_off", "4s")]),
            ["backing_off: 4s"],
        ),
        (
            "a hold names the gate",
            Cycle(
                46,
                6,
                6,
                0,
                "acted",
                "none",
                reasons=[("no_candidate", "x"), ("gitops_hold", "apps")],
                gate_blocked=True,
                gate="Kustomization apps in progress",
            ),
            ["gitops_hold: apps", "held (Kustomization apps in progress)"],
        ),
        (
            "a failed cycle says so",
            Cycle(10, 2, 2, 0, error="KubeError: 500"),
            ["error: KubeError: 500"],
        ),
    ],
)
def test_the_timeline_line(desc, cycle, shown):
    line = cycle_line(cycle)
    for part in shown:
        assert part in line, (desc, line)


def test_gate_text_names_holding_objects_and_the_settle_window():
    reasons = [{"kind": "Kustomization", "name": "apps", "state": "in_progress"}, {"kind": "SettleWindow"}]
    assert gate_text(reasons) == "Kustomization apps in progress, settling"


def test_spans_of_a_flag_over_time():
    assert spans([0, 1, 2, 3, 4], [False, True, True, False, True], 9) == [(1, 3), (4, 9)]
    assert spans([], [], 1) == []


def test_the_plot_is_a_png(tmp_path):
    r = _story()
    r.marks = [(4, "flash sale"), (37, "Flux reconcile starts")]
    r.verdict = "expectations met"
    plot_demo(r, tmp_path / "demo.png")
    assert (tmp_path / "demo.png").read_bytes()[:4] == b"\x89PNG"


def test_quick_timers_are_shorter_and_every_setting_is_valid():
    for timing in (NORMAL, QUICK):
        settings = Settings.from_env(timing.settings())
        assert settings.max_node_provision_time_s == 60 and settings.drain_timeout_s == 30
        assert settings.max_empty_bulk_delete == 1
    assert QUICK.tick_s < NORMAL.tick_s and QUICK.deadline_s < NORMAL.deadline_s


def test_the_users_env_vars_go_over_the_stacks(tmp_path):
    stack_file = tmp_path / "stack.json"
    stack_file.write_text(json.dumps({"AutoscalerFunction": {"MIN_NODES": "2", "A": "1"}, "Hook": {"A": "1"}}))
    user = tmp_path / "user.json"
    user.write_text(json.dumps({"Parameters": {"A": "p"}, "AutoscalerFunction": {"MIN_NODES": "3"}}))
    merged = {fn: env_vars_for([stack_file, user], fn) for fn in ("AutoscalerFunction", "Hook")}
    assert merged == {"AutoscalerFunction": {"MIN_NODES": "3", "A": "p"}, "Hook": {"A": "p"}}
    bad = tmp_path / "bad.json"
    bad.write_text("[1]")
    with pytest.raises(ValueError, match="must map"):
        env_vars_for([stack_file, bad], "Hook")


TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"


@pytest.fixture
def stack_env(tmp_path):
    """What the embedded stack's env-vars hold for the autoscaler: every variable, its endpoints its own."""
    from node_fleet.local_invoke import resolve_function

    env = resolve_function(TEMPLATE, "AutoscalerFunction", shell_environ={}).environment
    env.update(CLUSTER_NAME="node-fleet-local", K8S_API_URL="http://127.0.0.1:1", STATE_TABLE="t")
    path = tmp_path / "stack-env.json"
    path.write_text(json.dumps({"AutoscalerFunction": env}))
    return path


def test_parameter_overrides_with_local_are_honoured_over_the_stacks_values(stack_env):
    changed = local.honoured_overrides(TEMPLATE, "AutoscalerFunction", {"MinNodes": "3", "DryRun": "true"}, stack_env)
    assert changed == {"MIN_NODES": "3", "DRY_RUN": "true"}
    assert local.honoured_overrides(TEMPLATE, "AutoscalerFunction", {}, stack_env) == {}


def test_parameter_overrides_with_local_that_the_stack_sets_are_refused(stack_env):
    with pytest.raises(LocalInvokeError, match=r"cannot change K8S_API_URL with --local: the embedded stack sets"):
        local.honoured_overrides(TEMPLATE, "AutoscalerFunction", {"K8sApiUrl": "https://10.0.0.1:6443"}, stack_env)


@pytest.fixture
def no_prometheus(monkeypatch):
    from node_fleet.stack import prometheus

    monkeypatch.setattr(prometheus, "binaries", lambda: None)


@pytest.mark.parametrize(
    "argv",
    [
        ["demo", "--plot", "{tmp}/demo.png", "--log", "{tmp}/demo.log"],
        ["invoke", "AutoscalerFunction", "--event", "events/schedule_tick.json", "--local"],
    ],
)
def test_without_prometheus_the_commands_say_how_to_install_it(no_prometheus, argv, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(Path(__file__).resolve().parents[2])
    started = time.monotonic()
    assert main([a.format(tmp=tmp_path) for a in argv]) == 2
    err = capsys.readouterr().err
    assert "sudo apt-get install prometheus" in err
    assert time.monotonic() - started < 5, "it fails at once, before starting anything"
    assert not (tmp_path / "demo.png").exists()


def test_the_summary_names_every_figure():
    r = _story()
    r.end, r.wall_s = 142, 153
    text = "\n".join(summary(r))
    for figure in (
        "launches                        3  (2 for the sale; 1 for the batch: 1 never joined",
        "terminations                    2  (1 by scale-down, 1 unjoined)",
        "max workers                     6",
        "pending-pod-seconds           164  (sale 24, batch 140)",
        "sale -> all pods bound     14.0 s",
        "GitOps holds observed      2 cycles held by the gate",
        "scale-down after the reconcile: yes",
        "canary analysis            1 cycles held while Flagger analysed the new revision",
        "scale-down after its promotion: yes",
        "unjoined instance cleaned  yes: i-9 terminated 62 s after its launch",
    ):
        assert figure in text, text


def test_the_json_of_a_run_carries_the_verdict_the_summary_figures_and_every_cycle():
    r = _story()
    r.end, r.wall_s = 142, 153
    answer = json.loads(json.dumps(r.to_json()))
    assert answer["met"] is True and answer["not_met"] == []
    assert (answer["launched"], answer["terminated"], answer["unjoined_instance"]) == (
        ["i-1", "i-2", "i-9"],
        ["i-1", "i-9"],
        "i-9",
    )
    assert (answer["max_workers"], answer["pending_pod_seconds"], answer["sale_served_s"]) == (6, 164, 14.0)
    assert answer["gate_held_cycles"] == 2 and answer["canary_held_cycles"] == 1 and len(answer["cycles"]) == 6
    assert answer["cycles"][0]["reasons"] == [{"code": "unschedulable_pods", "detail": "6 pods"}]

    spoiled = _story(sale_bound_at=None).to_json()
    assert spoiled["met"] is False and spoiled["sale_served_s"] is None
    assert any("flash sale was not served" in why for why in spoiled["not_met"])


def test_a_stack_that_cannot_start_is_one_line_not_a_handler_failure(monkeypatch, capsys):
    from node_fleet.stack import prometheus
    from node_fleet.stack.stack import EmbeddedStack, StackError

    def broken(self):
        raise StackError("moto_server did not answer in 10 s")

    monkeypatch.setattr(prometheus, "binaries", lambda: ("prometheus", "promtool"))
    monkeypatch.setattr(EmbeddedStack, "start", broken)
    monkeypatch.setattr(EmbeddedStack, "stop", lambda self: None)
    monkeypatch.chdir(TEMPLATE.parent)
    assert main(["invoke", "AutoscalerFunction", "--event", "events/schedule_tick.json", "--local"]) == exits.FAILED
    out, err = capsys.readouterr()
    assert out == ""
    assert (
        err.splitlines()[-1]
        == "local invoke: the embedded stack failed: StackError: moto_server did not answer in 10 s"
    )
