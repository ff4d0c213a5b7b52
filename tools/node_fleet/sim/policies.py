"""The policies a replay compares, each acting only through the ports.

- `node-fleet`: ours, `service.run_cycle` with the given Settings (the Lambda's code path).
- `ca-10s`, `ca-60s`: Cluster-Autoscaler-like: the same planner restricted to Cluster
  Autoscaler's signals and documented defaults (pending pods and requests only, 0.5
  requested-utilization threshold, 10 min unneeded, 10 min delay after add), at its tick.
- `target-tracking`: AWS Auto Scaling style on mean CPU usage: desired = ceil(n x cpu / target),
  out after 3 one-minute breaches, in after 15, new instances warm up before they count;
  scale-in terminates the least loaded worker (its pods are recreated elsewhere).
- `static-peak`: the peak of the fluid lower bound N*, booted at the start, never changed.
- `reactive-ideal`: sees the exact demand every tick (no metrics lag, no delay, no cool-down):
  launches at once what the pending pods need beyond the capacity on its way, and removes every
  empty node at once; it still pays the launch latency like everyone else.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from autoscaler.binpack import Bin, estimate_new_nodes
from autoscaler.config import Settings
from autoscaler.ports import Ports
from autoscaler.scale_up import spread
from autoscaler.service import run_cycle

Policy = Callable[[Ports, float], None]
"""One tick of a policy at time `now`."""

POLICY_NAMES = ("node-fleet", "ca-10s", "ca-60s", "target-tracking", "static-peak", "reactive-ideal")
FIXED_TICKS = {"ca-10s": 10.0, "ca-60s": 60.0}
LAMBDA_POLICIES = frozenset({"node-fleet"})
"""Policies that run as the autoscaler's Lambda function and pay for each tick's invocation. The
others pay nothing beyond their workers: Cluster Autoscaler runs as a pod on the K3s server node,
which every policy pays alike and the lower bound leaves out; AWS Auto Scaling's target tracking
costs nothing of its own; static-peak and reactive-ideal are yardsticks."""


def cluster_autoscaler_settings(settings: Settings) -> Settings:
    """Cluster Autoscaler's defaults on the same cluster shape and bounds; no usage signal."""
    return settings.replace(
        cpu_high=1.0,
        cpu_low=0.95,
        scale_down_utilization_threshold=0.5,
        scale_down_unneeded_time_s=600,
        scale_down_delay_after_add_s=600,
        scale_down_delay_after_failure_s=180,
        max_nodes_per_scale_up=settings.max_nodes,
        max_empty_bulk_delete=10,
        max_drains_in_parallel=1,
        new_pod_scale_up_delay_s=0,
        # Cluster Autoscaler has none of node-fleet's own levers.
        warm_pool_size=0,
        warm_pool_unneeded_time_s=600,
        tick_s=60,
        ramp_window_s=0,
        forecast_max_prewarm=0,
        forecast_unneeded_time_s=600,
        launch_late_after_s=settings.max_node_provision_time_s,
    )


def make_policy(name: str, settings: Settings) -> Policy:
    if name == "node-fleet":
        return _planner_policy(settings)
    if name in FIXED_TICKS:
        return _planner_policy(cluster_autoscaler_settings(settings))
    if name == "target-tracking":
        return TargetTracking(settings)
    if name == "static-peak":
        return lambda ports, now: None
    if name == "reactive-ideal":
        return ReactiveIdeal(settings)
    raise ValueError(f"unknown policy {name!r}: expected one of {', '.join(POLICY_NAMES)}")


def _planner_policy(settings: Settings) -> Policy:
    def tick(ports: Ports, now: float) -> None:
        run_cycle(ports, settings, now, token=f"cycle-{now:.0f}")

    return tick


@dataclass
class TargetTracking:
    settings: Settings
    target: float = 0.5
    out_breaches: int = 3
    in_breaches: int = 15
    warmup_s: float = 300.0
    scale_in_tolerance: float = 0.9
    _above: int = 0
    _below: int = 0
    _launched_at: dict[str, float] = field(default_factory=dict)

    def __call__(self, ports: Ports, now: float) -> None:
        cpu = ports.metrics.sample(now).cluster_cpu
        workers = list(ports.fleet.list_workers())
        n = len(workers)
        if n < self.settings.min_nodes:
            self._launch(ports, workers, self.settings.min_nodes - n, now)
            return
        if cpu is None:
            return
        self._above = self._above + 1 if cpu > self.target else 0
        self._below = self._below + 1 if cpu < self.target * self.scale_in_tolerance else 0
        warming = any(now - t < self.warmup_s for t in self._launched_at.values())
        desired = max(self.settings.min_nodes, min(self.settings.max_nodes, math.ceil(n * cpu / self.target)))
        if self._above >= self.out_breaches and desired > n and not warming:
            self._launch(ports, workers, desired - n, now)
            self._above = 0
        elif self._below >= self.in_breaches and desired < n:
            self._scale_in(ports, n - desired)
            self._below = 0

    def _launch(self, ports: Ports, workers: list, count: int, now: float) -> None:
        for az, k in spread(count, workers, ports.fleet.zones()).items():
            for iid in ports.fleet.launch(az, k, token=f"tt-{now:.0f}-{az}").instance_ids:
                self._launched_at[iid] = now

    def _scale_in(self, ports: Ports, count: int) -> None:
        load: dict[str, int] = {}
        for p in ports.cluster.list_pods():
            if p.node is not None:
                load[p.node] = load.get(p.node, 0) + p.cpu_m
        nodes = sorted(ports.cluster.list_nodes(), key=lambda n: (load.get(n.name, 0), n.name))
        for node in nodes[:count]:
            if node.instance_id:
                ports.fleet.terminate(node.instance_id)
                self._launched_at.pop(node.instance_id, None)


@dataclass
class ReactiveIdeal:
    settings: Settings

    def __call__(self, ports: Ports, now: float) -> None:
        s = self.settings
        pods = list(ports.cluster.list_pods())
        workers = list(ports.fleet.list_workers())
        nodes = list(ports.cluster.list_nodes())
        joined = {n.instance_id for n in nodes}
        for w in workers:
            if w.id not in joined and now - w.launched_at > s.max_node_provision_time_s:
                ports.fleet.terminate(w.id)
        workers = [w for w in workers if w.id in joined or now - w.launched_at <= s.max_node_provision_time_s]
        upcoming = [Bin(s.node_cpu_m, s.node_mem_mib) for w in workers if w.id not in joined]
        pending = [(p.cpu_m, p.mem_mib) for p in pods if p.node is None]
        need = estimate_new_nodes(pending, s.node_cpu_m, s.node_mem_mib, upcoming).new_nodes
        need = max(need, s.min_nodes - len(workers))
        if need > 0:
            count = min(need, s.max_nodes - len(workers))
            for az, k in spread(count, workers, ports.fleet.zones()).items():
                ports.fleet.launch(az, k, token=f"ideal-{now:.0f}-{az}")
            return
        if pending:
            return
        busy = {p.node for p in pods if p.node is not None}
        empty = [n for n in nodes if n.name not in busy and n.instance_id]
        for node in empty[: len(workers) - s.min_nodes]:
            ports.fleet.terminate(node.instance_id)
