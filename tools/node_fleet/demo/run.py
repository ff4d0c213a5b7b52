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
import json
import signal
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from node_fleet.demo import scenario as sc
from node_fleet.demo.functions import AUTOSCALER, HOOK, Functions, logs_to, tick
from node_fleet.demo.record import ALIVE, GONE, Cycle, Record, Sample, View
from node_fleet.demo.render import cycle_line, gate_text, header, summary
from node_fleet.demo.scenario import STORY, Phase
from node_fleet.demo.timing import NORMAL, QUICK, Timing

SAMPLE_EVERY_S = 0.5
PROMETHEUS_HINT = (
    "the embedded stack runs a real Prometheus, and the Debian package `prometheus` is not installed "
    "(no prometheus and promtool on PATH). Install it with:\n\n    sudo apt-get install prometheus\n"
)


class Demo:
    """One run of the scenario on a started stack; `say` prints a line (flushed)."""

    def __init__(self, stack: Any, timing: Timing, functions: Functions, say: Callable[[str], None]) -> None:
        from node_fleet.demo.flux import FakeFlux

        self.stack = stack
        self.timing = timing
        self.functions = functions
        self.say = say
        self.flux = FakeFlux(stack.kube)
        self.record = Record(timing)
        self.phase = Phase.WARM
        self.wave = 0
        self.last_wave_at = 0.0
        self._t0 = time.monotonic()
        self._gate_blocked = False
        self._gate = ""
        self.stop_after: int | None = None

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
            if self.stop_after is not None and len(self.record.cycles) >= self.stop_after:
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

    @property
    def kubelets(self) -> Any:
        return self.stack.kubelets

    def advance(self, view: View) -> None:
        """Move the story on from what the cluster shows now (see node_fleet.demo.scenario)."""
        for phase, step in STORY:
            if self.phase is phase:
                step(self, view)


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


def run_demo(
    plot: Path, log: Path, quick: bool = False, say: Callable[[str], None] | None = None, as_json: bool = False
) -> int:
    """See the module docstring; returns the exit status. With `as_json` the live lines go to stderr
    and stdout gets one JSON object of the run (`Record.to_json`)."""
    from node_fleet.stack.stack import EmbeddedStack

    def out(line: str) -> None:
        print(line, file=sys.stderr if as_json else sys.stdout, flush=True)

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
                f"settings: tick {timing.tick_s:g}s (production: 10s by default), "
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
    if as_json:
        print(json.dumps({**record.to_json(), "plot": str(plot), "log": str(log)}), flush=True)
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
    say(
        "all expectations met: the sale was served, scale-down waited for Flux and the canary, the unjoined instance is gone"
    )
    return 0
