"""A cluster's own history as a workload: the requests of its Pending and Running pods over the last days,
read from Prometheus (kube-state-metrics), for `node-fleet tune --prometheus`.

Each pod (namespace, name and uid) becomes one `PodSpec` a replay creates when the pod was first seen
Pending or Running and ends one step after it was last seen so (or never, if it still is), requesting
the most CPU and memory it ever requested. Pending pods count as demand, as benchmark.md defines it: the
replay, not the history, decides how long each one waits. Left out: DaemonSet pods and static pods (they
go with their node, and every worker the replay adds brings its own). Counted as worker demand although
they may not be: pods on the K3s server node. CPU usage is not read: every pod uses DEFAULT_USAGE of its
request, as pod CSV rows without a usage column do. A pod a Job owns (kube_pod_owner) is replayed as a
Job's, which starts its work over when the replay evicts it; every other as a replica.

How it asks: through the deployed adapter's `Transport` (its retries, timeouts, deadline and TLS; the
PROMETHEUS_* variables apply, no credentials, as for `node-fleet plan`), one query_range a day of history
and resource: a day at 60 s steps is 1,440 points a series, under Prometheus' 11,000. The demand is the
forecast's (`queries.demand_expr`: requests of Pending and Running pods, less DaemonSet pods'), kept
per pod instead of summed, and less static pods' too.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from autoscaler.config.prometheus import ENV_DEADLINE, ENV_TIMEOUT, PrometheusOptions
from node_fleet.sim.workload import JOB, REPLICA_SET, PodSpec, TraceError, Workload

if TYPE_CHECKING:
    from autoscaler.adapters.prometheus.transport import Transport

DAY_S = 86_400
MIB = 2**20
EXPECTED = (
    "kube-state-metrics' kube_pod_container_resource_requests (resource cpu and memory) and "
    'kube_pod_status_phase{phase=~"Pending|Running"}, as the kube-prometheus-stack in gitops/ scrapes them'
)
_LIVE = 'max by (namespace, pod, uid) (kube_pod_status_phase{phase=~"Pending|Running"}) == 1'
_NOT_PER_NODE = 'kube_pod_owner{owner_kind=~"DaemonSet|Node"}'
QUERIES = {
    resource: "sum by (namespace, pod, uid) (max by (namespace, pod, uid, container) "
    f'(kube_pod_container_resource_requests{{resource="{resource}"}}))'
    f" and on (namespace, pod, uid) ({_LIVE})"
    f" unless on (namespace, pod) {_NOT_PER_NODE}"
    for resource in ("cpu", "memory")
}
"""Per live pod, the sum of its containers' requests (cores; bytes); the max per container first, so a
kube-state-metrics scraped by two jobs is not counted twice. Init containers are left out, as
kube-state-metrics has them in a metric of their own."""
JOB_OWNED = f'max by (namespace, pod, uid) (kube_pod_owner{{owner_kind="{JOB}"}})'
"""The pods a Job owns."""
# Bulk reads of days of history take longer than one cycle's queries: the widest the options allow,
# unless the environment says otherwise.
_BULK_TIMEOUTS = {"connect_timeout_s": 10.0, "read_timeout_s": 60.0, "deadline_s": 60.0}


class HistoryError(TraceError):
    """Prometheus could not be read, or had no usable history; the message says what was expected."""


@dataclass(frozen=True)
class Window:
    end: float
    """Unix time of the newest step."""
    days: float
    step_s: int = 60

    def __post_init__(self) -> None:
        if not (math.isfinite(self.days) and 0 < self.days <= 90):
            raise ValueError(f"--days must be in (0, 90], got {self.days:g}")
        if not 10 <= self.step_s <= 3600:
            raise ValueError(f"--step-s must be in 10..3600, got {self.step_s}")

    def chunks(self) -> list[tuple[float, int]]:
        """(end, seconds) of each range query, oldest first, covering `days` up to `end`."""
        total = math.ceil(self.days * DAY_S / self.step_s) * self.step_s
        out, covered = [], 0
        while covered < total:
            span = min(DAY_S // self.step_s * self.step_s, total - covered)
            out.append((self.end - covered, span))
            covered += span
        return out[::-1]


def read_workload(url: str, window: Window, environ: Mapping[str, str]) -> Workload:
    """The pods of the history Prometheus at `url` holds for `window`, as a replayable workload."""
    # Imported here, so the window is checked without loading requests (urllib3 opens a socket at import).
    from autoscaler.adapters.prometheus.transport import Transport

    options = PrometheusOptions.from_env({**environ, "PROMETHEUS_URL": url})
    if environ.get(ENV_TIMEOUT) is None and environ.get(ENV_DEADLINE) is None:
        options = replace(options, **_BULK_TIMEOUTS)
    transport = Transport(options, None, None, None)
    try:
        samples = {
            resource: _read(transport, url, expr, window, options.deadline_s) for resource, expr in QUERIES.items()
        }
        jobs = frozenset(_read(transport, url, JOB_OWNED, window, options.deadline_s))
    finally:
        transport.close()
    return to_workload(samples, window, f"Prometheus at {url}", jobs)


def _read(
    transport: Transport, url: str, expr: str, window: Window, deadline_s: float
) -> dict[tuple[str, ...], dict[float, float]]:
    """Series key (namespace, pod, uid) -> {unix time: value}, over every chunk of the window (each
    chunk's query within `deadline_s`); a step on two chunks' edges counts once."""
    from autoscaler.adapters.prometheus.queries import QueryError

    series: dict[tuple[str, ...], dict[float, float]] = defaultdict(dict)
    for at, span in window.chunks():
        try:
            data = transport.range(expr, at - span, at, window.step_s, time.monotonic() + deadline_s)
        except QueryError as exc:
            raise HistoryError(f"Prometheus at {url}: {exc.reason} (expected {EXPECTED})") from None
        if data.get("resultType") != "matrix" or not isinstance(data.get("result"), list):
            raise HistoryError(f"Prometheus at {url}: expected a matrix answer, got {data.get('resultType')!r}")
        for item in data["result"]:
            labels, values = item.get("metric") or {}, item.get("values") or []
            key = (labels.get("namespace", ""), labels.get("pod", ""), labels.get("uid", ""))
            for t, raw in values:
                value = float(raw)
                if not (math.isfinite(value) and value >= 0):
                    raise HistoryError(
                        f"Prometheus at {url}: pod {key[0]}/{key[1]} requests {raw} at {t}: expected a finite "
                        "number >= 0 (kube_pod_container_resource_requests)"
                    )
                series[key][float(t)] = value
    return series


def to_workload(
    samples: Mapping[str, Mapping[tuple[str, ...], Mapping[float, float]]],
    window: Window,
    source: str,
    jobs: frozenset[tuple[str, ...]] = frozenset(),
) -> Workload:
    """Pods from each series' samples (see the module's docstring); `samples` maps "cpu" and "memory" to
    series key -> {unix time: cores or bytes}, and `jobs` holds the keys of the pods a Job owns. Times
    become seconds from the first sample of any pod."""
    cpu, mem = samples["cpu"], samples["memory"]
    keys = sorted(set(cpu) | set(mem))
    times = [t for k in keys for t in (*cpu.get(k, {}), *mem.get(k, {}))]
    if not times:
        raise HistoryError(
            f"{source}: no Pending or Running pod with requests in the last {window.days:g} days (expected {EXPECTED})"
        )
    origin, step = min(times), window.step_s
    last = max(times)
    pods: list[PodSpec] = []
    names: dict[str, int] = defaultdict(int)
    for key in keys:
        seen = sorted(set(cpu.get(key, {})) | set(mem.get(key, {})))
        for run in _runs(seen, step):
            cpu_m = max(round(cpu.get(key, {}).get(t, 0.0) * 1000) for t in run)
            mem_mib = max(math.ceil(mem.get(key, {}).get(t, 0.0) / MIB) for t in run)
            if cpu_m == 0 and mem_mib == 0:
                continue
            # A StatefulSet's pod keeps its name across uids, and a run may be split: names stay unique.
            name = f"{key[0]}/{key[1]}"
            names[name] += 1
            name += f"#{names[name]}" if names[name] > 1 else ""
            end = None if run[-1] >= last else run[-1] + step - origin
            owner_kind = JOB if key in jobs else REPLICA_SET
            pods.append(PodSpec(name, run[0] - origin, end, cpu_m, mem_mib, owner_kind=owner_kind))
    if not pods:
        raise HistoryError(f"{source}: every pod found requests nothing (expected {EXPECTED})")
    hours = (last + step - origin) / 3600
    return Workload(
        name="prometheus",
        pods=tuple(pods),
        horizon_s=last + step - origin,
        description=f"{len(pods)} pods over {hours:.1f} h from {source}, at {step} s steps",
    )


def _runs(times: list[float], step: int) -> list[list[float]]:
    """Consecutive steps, split where the pod was absent for a step or more (a restart under the same uid
    is rare; a gap means it was not Pending or Running then)."""
    runs: list[list[float]] = []
    for t in times:
        if runs and t - runs[-1][-1] <= step * 1.5:
            runs[-1].append(t)
        else:
            runs.append([t])
    return runs
