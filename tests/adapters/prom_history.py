"""The history the Prometheus tests query: 30 minutes of node-exporter CPU counters and memory
gauges for three nodes with known idle shares, a fourth node whose series stop four minutes early,
kube-state-metrics series for pending and running pods, and custom metrics; backfilled with
`promtool tsdb create-blocks-from openmetrics` into a real Prometheus on a free 127.0.0.1 port
by conftest.py's `prom` fixture."""

from __future__ import annotations

from dataclasses import dataclass, replace

from autoscaler.adapters.prometheus import PrometheusOptions
from node_fleet.stack.prometheus import OpenMetrics

STEP_S = 15
HISTORY_S = 30 * 60
STALE_GAP_S = 240
"""node-d's series stop this long before the end: past the 180 s staleness limit, inside
Prometheus' 5 minute lookback, so Prometheus still returns them."""
GIB = 2**30

# node -> idle share of each of its two CPUs; the usage ratio is 1 - their mean.
IDLE = {"node-a": (0.20, 0.30), "node-b": (0.50, 0.50), "node-c": (0.85, 0.95), "node-d": (0.10, 0.10)}
# node -> (MemTotal, MemAvailable for the last 10 minutes) in GiB; before that 90% is available.
MEMORY = {"node-a": (8, 2), "node-b": (8, 6), "node-c": (16, 8), "node-d": (4, 4)}
FRESH_NODES = ("node-a", "node-b", "node-c")
EXPECTED_NODE_CPU = {"node-a": 0.75, "node-b": 0.50, "node-c": 0.10}
EXPECTED_CLUSTER_CPU = 1 - (0.20 + 0.30 + 0.50 + 0.50 + 0.85 + 0.95) / 6  # 0.45: node-d left out
EXPECTED_NODE_MEM = {"node-a": 0.75, "node-b": 0.25, "node-c": 0.50}
EXPECTED_CLUSTER_MEM = 1 - (2 + 6 + 8) / (8 + 8 + 16)  # 0.5: node-d left out
# pod -> (created seconds before the end, unschedulable?, phase)
PODS = {
    "web-1": (600, True, "Pending"),
    "web-2": (120, True, "Pending"),
    "api-0": (1700, False, "Running"),
}
QUEUE_DEPTH = 42.0
TOLERANCE = 1e-6


@dataclass(frozen=True)
class Prom:
    url: str
    end: float
    """Timestamp of the newest sample of every fresh series."""

    @property
    def now(self) -> float:
        """The `now` the tests sample at: just after the end of the history."""
        return self.end + 5

    def options(self, **changes: object) -> PrometheusOptions:
        return replace(PrometheusOptions(url=self.url), **changes)


def history(end: float) -> str:
    om = OpenMetrics()
    start = end - HISTORY_S
    for t in range(int(start), int(end) + 1, STEP_S):
        elapsed = t - start
        for node, idles in IDLE.items():
            if node == "node-d" and t > end - STALE_GAP_S:
                continue
            labels = {"instance": node, "nodename": f"{node}.internal", "job": "node-exporter"}
            for cpu, idle in enumerate(idles):
                for mode, share in (("idle", idle), ("user", (1 - idle) * 0.7), ("system", (1 - idle) * 0.3)):
                    series = {**labels, "cpu": str(cpu), "mode": mode}
                    # A counter growing by `share` CPU-seconds per second.
                    om.add("node_cpu_seconds", "counter", "node_cpu_seconds_total", series, t, 1000.0 + share * elapsed)
            total, available = MEMORY[node]
            recent = t > end - 600
            om.add("node_memory_MemTotal_bytes", "gauge", "node_memory_MemTotal_bytes", labels, t, total * GIB)
            om.add(
                "node_memory_MemAvailable_bytes",
                "gauge",
                "node_memory_MemAvailable_bytes",
                labels,
                t,
                (available if recent else 0.9 * total) * GIB,
            )
        for pod, (age, unschedulable, phase) in PODS.items():
            created = end - age
            if t < created:
                continue
            labels = {"namespace": "default", "pod": pod, "uid": f"uid-{pod}", "job": "kube-state-metrics"}
            om.add("kube_pod_created", "gauge", "kube_pod_created", labels, t, created)
            for each in ("Pending", "Running", "Succeeded", "Failed", "Unknown"):
                value = 1.0 if each == phase else 0.0
                om.add("kube_pod_status_phase", "gauge", "kube_pod_status_phase", {**labels, "phase": each}, t, value)
            if unschedulable:
                om.add("kube_pod_status_unschedulable", "gauge", "kube_pod_status_unschedulable", labels, t, 1.0)
        depth = QUEUE_DEPTH if t > end - 300 else 5.0
        om.add("queue_depth", "gauge", "queue_depth", {"queue": "jobs"}, t, depth)
        om.add("queue_depth", "gauge", "queue_depth", {"queue": "mail"}, t, 1.0)
        om.add("queue_latency_seconds", "gauge", "queue_latency_seconds", {"queue": "jobs"}, t, float("nan"))
    return om.text()
