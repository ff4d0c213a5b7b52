"""Pod-unschedulable -> RunInstances latency, on the schedule path and the alarm path, in the demo stack.

    .venv/bin/python bench/latency.py [--reps 5] [--interval 60]

The embedded stack of `make demo` (moto's server, the fake Kubernetes API server with simulated
kubelets and scheduler, a real Prometheus), and the real autoscaler handler resolved from
template.yaml (`node_fleet.demo.functions`). Each repetition starts from a freshly seeded cluster
(two empty workers of 2000m) and a warm container (one tick already served), then adds 3 pods of
1500m: the scheduler binds two and marks the third PodScheduled=False/Unschedulable.

- t0, the transition: the moment the fake API server stores the pod with PodScheduled=False (its
  `add`, wrapped here, is what the simulated scheduler writes through).
- the invocation: made at once from that moment (the main thread waits on it), with
  - schedule path: a schedule tick (events/schedule_tick.json, fresh);
  - alarm path: a CloudWatch alarm state change to ALARM for the alarm the template's default
    ALARM_ACTIONS maps to a scale-up (events/alarm_state_alarm.json, fresh).
- the launch call: botocore's `before-call.ec2.RunInstances` event on the default boto3 session,
  which the autoscaler's EC2 client is created from (the first call of the cycle counts).

Figures, median and max over the repetitions: `in-cycle` is handler entry -> RunInstances (the
Lambda's own share), `from unschedulable` is t0 -> RunInstances with the invocation made at once.
On the schedule path a pod waits for the next tick, uniformly within the tick interval: expected
latency = interval / 2 + in-cycle (worst: interval + in-cycle). Not measured here: the time for a
real CloudWatch alarm to go to ALARM (its period times the datapoints to alarm) and EventBridge's
delivery, which come before the alarm path's invocation, and a real API server's and EC2's latency.
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from node_fleet.demo.functions import AUTOSCALER, Functions, alarm, logs_to, tick

BURST_REPLICAS, BURST_CPU_M = 3, 1500
SETTINGS = {
    "MIN_NODES": "1",
    "MAX_NODES": "20",
    # Only pending pods drive these launches.
    "CPU_HIGH_WINDOW_S": "3600",
}


class Transition:
    """Timestamps the first PodScheduled=False/Unschedulable write of a pod labelled app=`app`
    to the fake API server (wrapping its `add`, which the simulated scheduler writes through)."""

    def __init__(self, kube: Any) -> None:
        self.kube = kube
        self._add = kube.add
        self.app: str | None = None
        self.at: float | None = None
        self.seen = threading.Event()
        kube.add = self._observed_add

    def arm(self, app: str) -> None:
        self.app, self.at = app, None
        self.seen.clear()

    def close(self) -> None:
        self.kube.add = self._add

    def _observed_add(self, *objs: Any) -> None:
        self._add(*objs)
        now = time.perf_counter()
        if self.at is not None or self.app is None:
            return
        for obj in objs:
            if obj.get("kind", "Pod") != "Pod" or (obj.get("metadata", {}).get("labels") or {}).get("app") != self.app:
                continue
            conditions = (obj.get("status") or {}).get("conditions") or ()
            if any(c.get("type") == "PodScheduled" and c.get("reason") == "Unschedulable" for c in conditions):
                self.at = now
                self.seen.set()
                return


class Clock:
    """Handler entry and RunInstances call times of the current repetition."""

    def __init__(self) -> None:
        self.entry: float | None = None
        self.run_instances: list[float] = []

    def reset(self) -> None:
        self.entry, self.run_instances = None, []

    def before_handler(self, logical_id: str, event: Any) -> None:
        self.entry = time.perf_counter()

    def before_run_instances(self, **kwargs: Any) -> None:
        self.run_instances.append(time.perf_counter())


def one(stack: Any, functions: Functions, transition: Transition, clock: Clock, event: Callable[[], dict], rep: int):
    """One repetition: fresh cluster, warm container, burst, invocation at the transition."""
    stack.reset()
    functions.refresh()
    functions.call(AUTOSCALER, tick())  # the container is warm from here
    app = f"burst-{rep}"
    transition.arm(app)
    stack.kubelets.add_workload(app, BURST_REPLICAS, BURST_CPU_M)
    if not transition.seen.wait(10):
        raise RuntimeError("no pod went Unschedulable within 10 s")
    clock.reset()
    answer = functions.call(AUTOSCALER, event())
    if not clock.run_instances or clock.entry is None or transition.at is None:
        raise RuntimeError(f"no RunInstances call: {answer}")
    first = clock.run_instances[0]
    return first - clock.entry, first - transition.at, answer


def line(path: str, what: str, median: str, top: str) -> str:
    return f"{path:<9} {what:<56} {median:>9} {top:>9}"


def ms(values: list[float]) -> tuple[str, str]:
    return f"{statistics.median(values) * 1000:.1f} ms", f"{max(values) * 1000:.1f} ms"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5, help="repetitions per path (default 5)")
    parser.add_argument("--interval", type=float, default=60.0, help="the schedule's tick interval in s (template: 60)")
    args = parser.parse_args()

    import boto3

    from node_fleet.stack.prometheus import INSTALL_HINT, binaries
    from node_fleet.stack.stack import EmbeddedStack

    if binaries() is None:
        print(f"bench/latency.py needs a real Prometheus: {INSTALL_HINT}", file=sys.stderr)
        return 2
    clock = Clock()
    results: dict[str, tuple[list[float], list[float]]] = {"schedule": ([], []), "alarm": ([], [])}
    sink = io.StringIO()
    stack = EmbeddedStack(workers=2, settings=SETTINGS, log_level="WARNING")
    with stack, stack.applied(), logs_to(sink):
        boto3.setup_default_session()
        boto3.DEFAULT_SESSION.events.register("before-call.ec2.RunInstances", clock.before_run_instances)
        functions = Functions(stack, sink=sink, before_call=clock.before_handler)
        transition = Transition(stack.kube)
        try:
            for rep in range(args.reps):
                for path, event in (("schedule", tick), ("alarm", alarm)):
                    in_cycle, from_unschedulable, answer = one(
                        stack, functions, transition, clock, event, rep * 2 + (path == "alarm")
                    )
                    if answer.get("action") != "scale_up":
                        raise RuntimeError(f"{path}: expected a scale-up, got {answer}")
                    results[path][0].append(in_cycle)
                    results[path][1].append(from_unschedulable)
                    sink.seek(0)
                    sink.truncate()
        finally:
            transition.close()
    sched_in, sched_from = results["schedule"]
    alarm_in, alarm_from = results["alarm"]
    print(f"pod unschedulable -> RunInstances call, demo stack, warm container, {args.reps} repetitions per path\n")
    print(line("path", "measured", "median", "max"))
    print("-" * 86)
    print(line("schedule", "tick start -> RunInstances (in-cycle)", *ms(sched_in)))
    print(line("schedule", "PodScheduled=False -> RunInstances (tick at once)", *ms(sched_from)))
    mean_wait = statistics.median(args.interval / 2 + v for v in sched_in)
    worst = max(args.interval + v for v in sched_in)
    print(line("schedule", f"expected at rate {args.interval:g}s: interval/2 + in-cycle", f"{mean_wait:.2f} s", ""))
    print(line("", "  (worst: interval + in-cycle)", "", f"{worst:.2f} s"))
    print(line("alarm", "alarm event start -> RunInstances (in-cycle)", *ms(alarm_in)))
    print(line("alarm", "PodScheduled=False -> RunInstances (event at once)", *ms(alarm_from)))
    print(
        "\nThe alarm path's real latency adds the CloudWatch alarm's evaluation (period x datapoints to alarm)\n"
        "and EventBridge's delivery before the invocation; neither runs here."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
