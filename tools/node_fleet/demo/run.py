"""`node-fleet demo`: the scenario of `node_fleet.demo.scenario` on the embedded stack, live.

    run_demo(plot=Path("out/demo.png"), log=Path("out/demo.log"), quick=False) -> exit code

It starts the EmbeddedStack (moto's server, the fake API server with simulated kubelets, a real
Prometheus scraping them), seeds the cluster and the Flux objects, then runs the real handlers,
`autoscaler.handler.lambda_handler` and `gitops_hooks.handler.lambda_handler`, as template.yaml
deploys them (`node_fleet.demo.functions`), each getting a schedule tick every `tick_s` (the hook
first, then the autoscaler, as two schedules a few milliseconds apart would). Between ticks it
watches the cluster (every half second) and moves the story on.

On the terminal: one line per cycle (seconds since the first tick, EC2 workers, Ready worker nodes,
pending pods, the decision with what it did and its main reason, and the gate as the hook last
wrote it), the story's events as they happen, then a summary. The handlers' own output (JSON log
lines, EMF metrics) goes to `log`. Exit status: 0 when the expectations were met (the sale was
served, scale-down came after the GitOps hold, the instance that never joined was terminated), 1
otherwise (each unmet one is printed), 2 when Prometheus is not installed, 130 on Ctrl-C. Whatever
happens, every process and thread the stack started is stopped before it returns.
"""

from __future__ import annotations

import contextlib
import enum
import signal
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from node_fleet.demo import scenario as sc
from node_fleet.demo.functions import AUTOSCALER, HOOK, Functions, logs_to, tick
from node_fleet.demo.scenario import NORMAL, QUICK, Timing

ALIVE = ("pending", "running")
GONE = ("shutting-down", "terminated")
SAMPLE_EVERY_S = 0.5
PROMETHEUS_HINT = (
    "the embedded stack runs a real Prometheus, and the Debian package `prometheus` is not installed "
    "(no prometheus and promtool on PATH). Install it with:\n\n    sudo apt-get install prometheus\n"
)

# Which reason to show when a decision has several: the first one present wins.
MAIN_REASONS = {
    "scale_up": ("unschedulable_pods", "below_min", "cpu_high", "custom_metric_high", "requested"),
    "scale_down": ("empty_node", "node_unneeded", "requested"),
    "none": (
        "gitops_hold",
        "gitops_hold_capped",
        "unjoined_instance",
        "backing_off",
        "capacity_in_flight",
        "launch_in_flight",
        "drain_in_progress",
        "pending_pods",
        "cooldown_after_add",
        "cooldown_after_failure",
        "metrics_unknown",
        "orphan_node",
        "paused",
        "at_min",
        "at_max",
        "no_candidate",
        "steady",
    ),
}


class Phase(enum.Enum):
    WARM = "warm"
    SALE = "flash sale"
    QUIET = "quiet"
    RECONCILING = "Flux reconcile"
    SCALING_DOWN = "scale-down"
    BATCH = "batch (never joins)"
    DONE = "done"


@dataclass(frozen=True)
class View:
    """One look at the cluster."""

    t: float
    instances: dict[str, str]
    """Worker instance id -> EC2 state (all states)."""
    ready: frozenset[str]
    """Ready worker nodes."""
    cordoned: frozenset[str]
    pending: int
    """Pods not bound to a node (and not terminating)."""
    bound: dict[str, int]
    """Workload (app label) -> pods bound."""

    @property
    def workers(self) -> int:
        return sum(1 for state in self.instances.values() if state in ALIVE)


@dataclass(frozen=True)
class Sample:
    t: float
    workers: int
    ready: int
    pending: int


@dataclass
class Cycle:
    """One tick of both functions, and what it changed."""

    t: float
    workers: int
    ready: int
    pending: int
    status: str = ""
    action: str = ""
    launches: int = 0
    """Workers the decision launches."""
    remove: list[str] = field(default_factory=list)
    """Nodes the decision starts removing (an empty one goes at once, a drain takes cycles)."""
    reasons: list[tuple[str, str]] = field(default_factory=list)
    launched: list[str] = field(default_factory=list)
    terminated: list[str] = field(default_factory=list)
    gate_blocked: bool = False
    gate: str = ""
    error: str = ""
    seconds: float = 0.0

    @property
    def codes(self) -> list[str]:
        return [code for code, _ in self.reasons]

    def main_reason(self) -> tuple[str, str]:
        for wanted in MAIN_REASONS.get(self.action, MAIN_REASONS["none"]):
            for code, detail in self.reasons:
                if code == wanted:
                    return code, detail
        return self.reasons[0] if self.reasons else ("", "")


@dataclass
class Record:
    """Everything a run saw: the samples, the cycles, the story's marks and its facts."""

    timing: Timing
    samples: list[Sample] = field(default_factory=list)
    cycles: list[Cycle] = field(default_factory=list)
    marks: list[tuple[float, str]] = field(default_factory=list)
    sale_at: float | None = None
    sale_bound_at: float | None = None
    quiet_at: float | None = None
    reconcile_started: float | None = None
    reconcile_ended: float | None = None
    batch_at: float | None = None
    broken: str | None = None
    broken_launched_at: float | None = None
    broken_gone_at: float | None = None
    batch_bound_at: float | None = None
    end: float = 0.0
    wall_s: float = 0.0
    failures: list[str] = field(default_factory=list)
    verdict: str = "running"

    # -- figures ---------------------------------------------------------------------------------------

    def pending_pod_seconds(self, start: float | None = None, stop: float | None = None) -> float:
        lo = -1e18 if start is None else start
        hi = 1e18 if stop is None else stop
        total = 0.0
        for a, b in zip(self.samples, self.samples[1:], strict=False):
            left, right = max(a.t, lo), min(b.t, hi)
            if right > left:
                total += a.pending * (right - left)
        return total

    @property
    def launched(self) -> list[str]:
        return [i for c in self.cycles for i in c.launched]

    @property
    def terminated(self) -> list[str]:
        return [i for c in self.cycles for i in c.terminated]

    @property
    def held_cycles(self) -> list[Cycle]:
        return [c for c in self.cycles if "gitops_hold" in c.codes]

    @property
    def removal_cycles(self) -> list[Cycle]:
        return [c for c in self.cycles if c.remove]

    def check(self) -> list[str]:
        """The expectations the run did not meet (empty: all met)."""
        failed = list(self.failures)
        if self.sale_bound_at is None:
            failed.append("the flash sale was not served: its pods were never all bound")
        if not self.held_cycles:
            failed.append("no scale-down was held by the GitOps gate during the Flux reconcile")
        removals = self.removal_cycles
        if not removals:
            failed.append("no scale-down happened in the quiet")
        elif self.reconcile_ended is None or removals[0].t < self.reconcile_ended:
            failed.append(f"a node was removed at {removals[0].t:.1f}s, before the Flux reconcile ended")
        scale_down_terminations = [i for i in self.terminated if i != self.broken]
        if removals and not scale_down_terminations:
            failed.append("scale-down chose nodes but terminated none")
        if self.broken is None:
            failed.append("no instance that never joins was launched")
        elif self.broken_gone_at is None or self.broken not in self.terminated:
            failed.append(f"the instance that never joined ({self.broken}) was not terminated")
        elif not any("unjoined_instance" in c.codes for c in self.cycles):
            failed.append("no cycle reported the unjoined instance")
        return failed


class Demo:
    """One run of the scenario on a started stack; `say` prints a line (flushed)."""

    def __init__(self, stack: Any, timing: Timing, functions: Functions, say: Callable[[str], None]) -> None:
        from node_fleet.demo.flux import FluxObjects

        self.stack = stack
        self.timing = timing
        self.functions = functions
        self.say = say
        self.flux = FluxObjects(stack.kube)
        self.record = Record(timing)
        self.phase = Phase.WARM
        self._wave = 0
        self._last_wave_at = 0.0
        self._t0 = time.monotonic()
        self._gate_blocked = False
        self._gate = ""
        self._stop_after: int | None = None

    # -- set-up -------------------------------------------------------------------------------------------

    def seed(self) -> None:
        """The Flux objects (Ready) and the shop on the seeded workers; wait until Prometheus reads them."""
        self.flux.seed()
        kubelets = self.stack.kubelets
        kubelets.add_workload(
            sc.SHOP, sc.SHOP_REPLICAS, sc.SHOP_CPU_M, sc.SHOP_MEM_MIB, nodes=self.stack.seeded_workers
        )
        self.stack.wait_for_metrics(timeout_s=60)

    # -- the run --------------------------------------------------------------------------------------------

    def now(self) -> float:
        return time.monotonic() - self._t0

    def run(self) -> Record:
        t = self.timing
        self._t0 = time.monotonic()
        self.say(header())
        next_tick = 0.0
        while True:
            view = self.observe()
            self.record.samples.append(Sample(view.t, view.workers, len(view.ready), view.pending))
            self.advance(view)
            if self._stop_after is not None and len(self.record.cycles) >= self._stop_after:
                break
            if view.t >= t.deadline_s:
                self.record.failures.append(
                    f"the scenario did not finish within {t.deadline_s:.0f}s (stuck in phase: {self.phase.value})"
                )
                break
            if view.t >= next_tick:
                self.cycle(view.t)
                next_tick = max(next_tick + t.tick_s, self.now())
                continue
            time.sleep(max(0.0, min(SAMPLE_EVERY_S, next_tick - self.now())))
        self.record.end = self.now()
        final = self.observe()
        self.record.samples.append(Sample(final.t, final.workers, len(final.ready), final.pending))
        return self.record

    def observe(self) -> View:
        t = self.now()
        instances = {i["InstanceId"]: i["State"]["Name"] for i in self.stack.instances(states=(*ALIVE, *GONE))}
        server = self.stack.server_node
        ready, cordoned = set(), set()
        for node in self.stack.kube.objects("nodes"):
            name = node["metadata"]["name"]
            if name == server:
                continue
            spec = node.get("spec") or {}
            if spec.get("unschedulable") or any(
                taint.get("key") == "node-fleet.io/draining" for taint in spec.get("taints") or ()
            ):
                cordoned.add(name)
            conditions = (node.get("status") or {}).get("conditions") or ()
            if any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions):
                ready.add(name)
        pending = 0
        bound: dict[str, int] = {}
        for pod in self.stack.kube.objects("pods"):
            if pod["metadata"].get("deletionTimestamp"):
                continue
            if pod["spec"].get("nodeName"):
                app = (pod["metadata"].get("labels") or {}).get("app", "")
                bound[app] = bound.get(app, 0) + 1
            else:
                pending += 1
        return View(t, instances, frozenset(ready), frozenset(cordoned), pending, bound)

    def cycle(self, started_at: float) -> Cycle:
        """Both functions' schedule ticks: the hook, then the autoscaler. The cycle's counts are what
        the cluster shows right before the autoscaler's tick (what it sees)."""
        c = Cycle(started_at, 0, 0, 0)
        try:
            hook = self.functions.call(HOOK, tick("gitops_schedule_tick.json"))
            if isinstance(hook, dict) and hook.get("status") == "ok":
                self._gate_blocked = bool(hook.get("blocked"))
                self._gate = gate_text(hook.get("reasons") or [])
            else:
                self._gate = f"hook answered {hook!r}"[:80]
        except Exception as exc:  # a failed poll is made again at the next tick, as deployed
            self._gate = f"hook failed: {type(exc).__name__}: {exc}"[:80]
        c.gate_blocked, c.gate = self._gate_blocked, self._gate

        view = self.observe()
        c.workers, c.ready, c.pending = view.workers, len(view.ready), view.pending
        before = view.instances
        started = time.monotonic()
        try:
            answer = self.functions.call(AUTOSCALER, tick())
        except Exception as exc:  # the invoker would deliver the tick again; the next one comes anyway
            c.error = f"{type(exc).__name__}: {exc}"
            answer = {}
        c.seconds = time.monotonic() - started
        after = self.instance_states()
        c.launched = [i for i, state in after.items() if i not in before and state in (*ALIVE, *GONE)]
        c.terminated = [i for i, state in after.items() if state in GONE and before.get(i) in ALIVE]
        if isinstance(answer, dict):
            c.status = str(answer.get("status", ""))
            c.action = str(answer.get("action") or c.status)
            c.remove = list(answer.get("remove") or ())
            c.launches = sum(int(n) for n in (answer.get("launches") or {}).values())
            c.reasons = [(str(r.get("code")), str(r.get("detail", ""))) for r in answer.get("reasons") or ()]
            if answer.get("status") in ("error", "rejected"):
                c.error = str(answer.get("error", ""))
        self.record.cycles.append(c)
        self.say(cycle_line(c))
        return c

    def instance_states(self) -> dict[str, str]:
        return {i["InstanceId"]: i["State"]["Name"] for i in self.stack.instances(states=(*ALIVE, *GONE))}

    def mark(self, t: float, label: str, detail: str = "") -> None:
        self.record.marks.append((t, label))
        self.say(f"{t:7.1f}s  >>> {label}{': ' + detail if detail else ''}")

    # -- the story -----------------------------------------------------------------------------------------

    def advance(self, view: View) -> None:
        """Move the story on from what the cluster shows now (see node_fleet.demo.scenario)."""
        t, r, timing, kubelets = view.t, self.record, self.timing, self.stack.kubelets
        if self.phase is Phase.WARM and t >= timing.sale_at_s:
            kubelets.add_workload(sc.SALE, sc.SALE_WAVES[0], sc.SALE_CPU_M, sc.SALE_MEM_MIB)
            self._wave, r.sale_at, self._last_wave_at, self.phase = 1, t, t, Phase.SALE
            self.mark(t, "flash sale", f"{sc.SALE_WAVES[0]} pods of {sc.SALE_CPU_M}m")
        if self.phase is Phase.SALE:
            assert r.sale_at is not None  # nosec B101  # set with the phase
            if self._wave < len(sc.SALE_WAVES) and t >= r.sale_at + self._wave * timing.wave_every_s:
                kubelets.scale(sc.SALE, sc.SALE_WAVES[self._wave])
                self._last_wave_at = t
                self.mark(t, "sale grows", f"{sc.SALE_WAVES[self._wave]} pods")
                self._wave += 1
            target = sc.SALE_WAVES[-1]
            if self._wave == len(sc.SALE_WAVES) and r.sale_bound_at is None and view.bound.get(sc.SALE, 0) >= target:
                r.sale_bound_at = t
                self.mark(
                    t,
                    "sale served",
                    f"all {target} sale pods bound, {t - r.sale_at:.1f}s after the sale began "
                    f"({t - self._last_wave_at:.1f}s after its last wave)",
                )
            if r.sale_bound_at is not None and t >= r.sale_at + timing.sale_for_s:
                kubelets.scale(sc.SALE, 0)
                kubelets.scale(sc.SHOP, sc.SHOP_QUIET_REPLICAS)
                r.quiet_at, self.phase = t, Phase.QUIET
                self.mark(t, "the quiet", f"sale over, shop scales in to {sc.SHOP_QUIET_REPLICAS} pods")
        if self.phase is Phase.QUIET and r.quiet_at is not None and t >= r.quiet_at + timing.reconcile_after_s:
            rev = self.flux.start_reconcile(sc.RECONCILED)
            r.reconcile_started, self.phase = t, Phase.RECONCILING
            self.mark(t, "Flux reconcile starts", f"Kustomization flux-system/{sc.RECONCILED} -> {rev[:18]}")
        if self.phase is Phase.RECONCILING:
            assert r.reconcile_started is not None  # nosec B101  # set with the phase
            held = [c for c in r.held_cycles if c.t >= r.reconcile_started]
            long_enough = t >= r.reconcile_started + timing.reconcile_min_s
            if (len(held) >= timing.hold_cycles and long_enough) or t >= r.reconcile_started + timing.reconcile_max_s:
                self.flux.finish_reconcile(sc.RECONCILED)
                r.reconcile_ended, self.phase = t, Phase.SCALING_DOWN
                self.mark(
                    t,
                    "Flux reconcile done",
                    f"{sc.RECONCILED} Ready; scale-down held {len(held)} cycles, settles {timing.settle_s}s",
                )
        if self.phase is Phase.SCALING_DOWN:
            assert r.reconcile_ended is not None  # nosec B101  # set with the phase
            settled = (
                view.workers == sc.MIN_NODES
                and len(view.ready) == sc.MIN_NODES
                and not view.cordoned
                and view.pending == 0
                and all(s in GONE for i, s in view.instances.items() if i in r.terminated)
            )
            late = t >= r.reconcile_ended + 120
            if settled or late:
                if late:
                    r.failures.append(f"scale-down did not reach {sc.MIN_NODES} worker(s) within 120s of the reconcile")
                kubelets.never_join(1)
                kubelets.add_workload(sc.BATCH, sc.BATCH_REPLICAS, sc.BATCH_CPU_M, sc.BATCH_MEM_MIB)
                r.batch_at, self.phase = t, Phase.BATCH
                self.mark(
                    t,
                    "batch job",
                    f"{sc.BATCH_REPLICAS} pods of {sc.BATCH_CPU_M}m; the next instance launched will never join",
                )
        if self.phase is Phase.BATCH:
            assert r.batch_at is not None  # nosec B101  # set with the phase
            if r.broken is None:
                for c in r.cycles:
                    if c.t >= r.batch_at and c.launched:
                        r.broken, r.broken_launched_at = c.launched[0], c.t
                        break
            if r.broken is not None and r.broken_gone_at is None and view.instances.get(r.broken) in GONE:
                r.broken_gone_at = t
                assert r.broken_launched_at is not None  # nosec B101  # set with broken
                self.mark(
                    t,
                    "unjoined instance terminated",
                    f"{r.broken}, {t - r.broken_launched_at:.0f}s after its launch",
                )
            if r.broken_gone_at is not None and view.bound.get(sc.BATCH, 0) >= sc.BATCH_REPLICAS:
                r.batch_bound_at, self.phase = t, Phase.DONE
                self.mark(t, "batch runs", "on the replacement worker")
                self._stop_after = len(r.cycles) + 1


# -- rendering ------------------------------------------------------------------------------------------------


def header() -> str:
    return (
        f"{'time':>8}  {'workers':>7} {'ready':>5} {'pending':>7}  {'decision':<13} {'EC2':<6} "
        f"{'main reason':<{REASON_WIDTH}} gate (as the hook last wrote it)"
    )


# A longer reason is shown whole and pushes the gate right: a cut reason hid what the planner meant.
REASON_WIDTH = 64


def cycle_line(c: Cycle) -> str:
    """time, workers, ready, pending, the decision (action and how many nodes it launches or removes),
    what EC2 saw this cycle (+launched -terminated), the main reason and the gate."""
    decision = c.action or "?"
    if c.launches:
        decision += f" {c.launches}"
    elif c.remove:
        decision += f" {len(c.remove)}"
    ec2 = " ".join(
        part
        for part in (f"+{len(c.launched)}" * bool(c.launched), f"-{len(c.terminated)}" * bool(c.terminated))
        if part
    )
    if c.error:
        reason = f"error: {c.error}"
    else:
        code, detail = c.main_reason()
        reason = f"{code}: {detail}" if detail else code
    gate = f"held ({c.gate})" if c.gate_blocked else ("open" if not c.gate.startswith("hook") else c.gate)
    return f"{c.t:7.1f}s  {c.workers:>7} {c.ready:>5} {c.pending:>7}  {decision:<13} {ec2:<6} {reason:<{REASON_WIDTH}} {gate}"


def gate_text(reasons: list[dict[str, Any]]) -> str:
    parts = []
    for r in reasons:
        if r.get("kind") == "SettleWindow":
            parts.append("settling")
        else:
            parts.append(f"{r.get('kind')} {r.get('name')} {str(r.get('state', '')).replace('_', ' ')}")
    return ", ".join(parts)


def summary(r: Record) -> list[str]:
    sale_launches = [i for c in r.cycles if c.launched and (r.batch_at is None or c.t < r.batch_at) for i in c.launched]
    batch_launches = [
        i for c in r.cycles if c.launched and r.batch_at is not None and c.t >= r.batch_at for i in c.launched
    ]
    scale_down = [i for i in r.terminated if i != r.broken]
    held = r.held_cycles
    sale_pps = r.pending_pod_seconds(r.sale_at, r.quiet_at) if r.sale_at is not None else 0.0
    batch_pps = r.pending_pod_seconds(r.batch_at) if r.batch_at is not None else 0.0
    served = "never"
    if r.sale_at is not None and r.sale_bound_at is not None:
        served = f"{r.sale_bound_at - r.sale_at:.1f} s ({sc.SALE_WAVES[-1]} pods in {len(sc.SALE_WAVES)} waves)"
    after_hold = (
        "yes"
        if held and r.removal_cycles and r.reconcile_ended is not None and (r.removal_cycles[0].t >= r.reconcile_ended)
        else "no"
    )
    gate_held_s = sum(b.t - a.t for a, b in zip(r.cycles, r.cycles[1:], strict=False) if a.gate_blocked)
    unjoined = "no launch that never joins"
    if r.broken is not None:
        if r.broken_gone_at is not None and r.broken_launched_at is not None:
            unjoined = f"yes: {r.broken} terminated {r.broken_gone_at - r.broken_launched_at:.0f} s after its launch"
        else:
            unjoined = f"no: {r.broken} is still there"
    batch = f"{len(batch_launches)} for the batch"
    if r.broken in batch_launches:
        batch += f": 1 never joined, {len(batch_launches) - 1} replacement"
    return [
        "",
        f"summary: {len(r.cycles)} cycles in {r.end:.0f} s (tick {r.timing.tick_s:g} s; {r.wall_s:.0f} s wall in all)",
        f"  launches                   {len(r.launched):>6}  ({len(sale_launches)} for the sale; {batch})",
        f"  terminations               {len(r.terminated):>6}  ({len(scale_down)} by scale-down, "
        f"{len(r.terminated) - len(scale_down)} unjoined)",
        f"  max workers                {max((s.workers for s in r.samples), default=0):>6}",
        f"  pending-pod-seconds        {r.pending_pod_seconds():>6.0f}  (sale {sale_pps:.0f}, batch {batch_pps:.0f})",
        f"  sale -> all pods bound     {served}",
        f"  GitOps holds observed      {len(held)} cycles held by the gate ({gate_held_s:.0f} s gate held); "
        f"scale-down after the reconcile: {after_hold}",
        f"  unjoined instance cleaned  {unjoined}",
    ]


# -- the command ------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def interrupts_ignored() -> Iterator[None]:
    """Let cleanup finish: a second Ctrl-C while stopping would leave processes behind."""
    try:
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def prometheus_installed() -> bool:
    from node_fleet.stack.prometheus import binaries

    return binaries() is not None


def run_demo(plot: Path, log: Path, quick: bool = False, say: Callable[[str], None] | None = None) -> int:
    """See the module docstring; returns the exit status."""
    from node_fleet.stack.stack import EmbeddedStack

    def out(line: str) -> None:
        print(line, flush=True)

    say = say or out
    if not prometheus_installed():
        print(f"node-fleet demo: {PROMETHEUS_HINT}", file=sys.stderr, flush=True)
        return 2
    timing = QUICK if quick else NORMAL
    started = time.monotonic()
    plot.parent.mkdir(parents=True, exist_ok=True)
    log.parent.mkdir(parents=True, exist_ok=True)
    stack = EmbeddedStack(
        workers=sc.SEEDED_WORKERS, boot_delay_s=timing.boot_delay_s, settings=timing.settings(), log_level="INFO"
    )
    record: Record | None = None
    with log.open("w", encoding="utf-8") as sink, logs_to(sink):
        try:
            say(f"node-fleet demo ({timing.name} timers): starting the embedded stack...")
            stack.start()
            say(
                f"stack up in {time.monotonic() - started:.1f}s: moto {stack.moto.endpoint}, "
                f"kube API {stack.kube.url}, prometheus {stack.prometheus.url}"
            )
            say(
                f"settings: tick {timing.tick_s:g}s (production: 60s), "
                + ", ".join(f"{k}={v}" for k, v in timing.settings().items())
            )
            with stack.applied():
                functions = Functions(stack, sink=sink)
                demo = Demo(stack, timing, functions, say)
                say(
                    "seeding: 2 workers with the shop (4 pods of 600m), Kustomizations flux-system, infrastructure, apps"
                )
                demo.seed()
                record = demo.run()
        except KeyboardInterrupt:
            with interrupts_ignored():
                say("interrupted: stopping the embedded stack...")
                stack.stop()
            say("stopped.")
            return 130
        except Exception as exc:  # the stack or the run broke: say so, keep the traceback in the log
            traceback.print_exc(file=sink)
            print(
                f"node-fleet demo: failed: {type(exc).__name__}: {exc} (traceback in {log})",
                file=sys.stderr,
                flush=True,
            )
            return 1
        finally:
            with interrupts_ignored():
                stack.stop()
    assert record is not None  # nosec B101  # set unless an exception left above
    record.wall_s = time.monotonic() - started
    failed = record.check()
    record.verdict = "expectations met" if not failed else f"{len(failed)} expectation(s) not met"
    for line in summary(record):
        say(line)
    try:
        from node_fleet.demo.plot import plot_demo

        plot_demo(record, plot)
        say(f"plot written to {plot}; the handlers' logs and metrics are in {log}")
    except ImportError as exc:
        say(f"no plot: matplotlib is not installed ({exc}); the handlers' logs are in {log}")
    if failed:
        say("")
        for why in failed:
            say(f"NOT MET: {why}")
        return 1
    say("all expectations met: the sale was served, scale-down waited for Flux, the unjoined instance is gone")
    return 0
