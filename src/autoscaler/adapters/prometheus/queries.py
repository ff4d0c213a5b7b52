"""The PromQL the Metrics adapter asks: the default catalogue, the operator's overrides, and the batch.

Every vector query and the freshness query that goes with it is wrapped in
`label_replace(..., "node_fleet_query", "<name>", "", "")` and the lot joined with `or` into ONE
instant query: the marker label sorts the answer back out, and since the marker values differ, `or`
keeps every series.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from autoscaler.config.prometheus import (
    CLUSTER_CPU,
    CLUSTER_MEM,
    CUSTOM,
    MARKER_LABEL,
    NODE_CPU,
    NODE_MEM,
    UNSCHEDULABLE,
    PrometheusOptions,
)

VIEW_QUERIES = (CLUSTER_CPU, NODE_CPU, CLUSTER_MEM, NODE_MEM, CUSTOM)
"""The queries `sample()` asks (CUSTOM only when configured)."""
ALL_QUERIES = (*VIEW_QUERIES, UNSCHEDULABLE)
FRESHNESS_SUFFIX = "/freshness"


@dataclass(frozen=True)
class Query:
    """One PromQL instant query the adapter asks."""

    name: str
    expr: str
    """PromQL answering an instant vector (CUSTOM may also answer a scalar)."""
    freshness: str | None
    """PromQL answering the newest (or, per key, oldest) sample time of the series behind `expr`;
    None when unknown (an override)."""
    keys: tuple[str, ...]
    """Labels that key the answer: () for one number, (node label,) per node, (namespace, pod)."""
    empty_ok: bool = False
    """An empty answer is a valid "none" (unschedulable pods), not unknown."""
    global_freshness: bool = False
    """`freshness` answers one sample for the whole query rather than one per key."""


class QueryError(Exception):
    """A query that got no usable answer. `query_level`: Prometheus refused the PromQL itself.

    Beside `Query` because both the transport and the (pure) judging raise it."""

    def __init__(self, reason: str, *, query_level: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.query_level = query_level


def default_queries(options: PrometheusOptions) -> tuple[Query, ...]:
    """The default PromQL, built from the rate window, the staleness limit and the node label.

    Per-node values are keyed by the value of `options.node_label` (PROMETHEUS_NODE_LABEL), which
    must hold the Kubernetes node name. kube-prometheus (jsonnet) relabels node-exporter's
    `instance` to the node name from `__meta_kubernetes_pod_node_name`; the kube-prometheus-stack
    Helm chart does NOT by default (`instance` is the exporter's `<host IP>:9100` there): add a
    relabeling `sourceLabels: [__meta_kubernetes_pod_node_name]` -> `targetLabel: node` under
    `prometheus-node-exporter.prometheus.monitor.relabelings` and set PROMETHEUS_NODE_LABEL=node (or
    target `instance`). A per-node value whose label is not a node name simply matches no node, and
    that node's usage stays unknown (no scale-down of it), never zero.

    All CPU and memory queries count every node that runs node-exporter (the server node too).
    """
    w, s, n = options.rate_window, f"{options.staleness_s:g}", options.node_label
    idle = 'node_cpu_seconds_total{mode="idle"}'
    avail, total = "node_memory_MemAvailable_bytes", "node_memory_MemTotal_bytes"
    return (
        # node-exporter `node_cpu_seconds_total` (counter, per cpu and mode): 1 - the idle share of
        # all CPUs over the rate window, weighted by CPU count. Series whose newest sample is older
        # than the staleness limit are left out (a removed or silent node), so the value is the
        # fresh nodes' usage; the freshness query (newest idle sample) makes it unknown when no
        # node is fresh.
        Query(
            CLUSTER_CPU,
            f"1 - avg(rate({idle}[{w}]) and (time() - timestamp({idle}) <= {s}))",
            f"max(timestamp({idle}))",
            (),
        ),
        # Per node: 1 - the mean idle share of its CPUs; freshness: its oldest idle sample.
        Query(
            NODE_CPU,
            f"1 - avg by ({n}) (rate({idle}[{w}]))",
            f"min by ({n}) (timestamp({idle}))",
            (n,),
        ),
        # node-exporter `node_memory_MemAvailable_bytes` and `node_memory_MemTotal_bytes` (gauges):
        # 1 - available / total summed over the fresh nodes (weighted by memory size).
        Query(
            CLUSTER_MEM,
            f"1 - sum({avail} and (time() - timestamp({avail}) <= {s}))"
            f" / sum({total} and (time() - timestamp({avail}) <= {s}))",
            f"max(timestamp({avail}))",
            (),
        ),
        # Per node: 1 - available / total (max dedupes a node scraped by two jobs).
        Query(
            NODE_MEM,
            f"max by ({n}) (1 - {avail} / {total})",
            f"min by ({n}) (timestamp({avail}))",
            (n,),
        ),
        # kube-state-metrics: pods with `kube_pod_status_unschedulable` == 1 (PodScheduled=False,
        # reason Unschedulable; the series exists only while that holds) that are still
        # `kube_pod_status_phase{phase="Pending"}`, valued by the seconds since `kube_pod_created`.
        # A pod is unschedulable from its first scheduling attempt until it is bound, so its age
        # approximates how long it has waited; the Kubernetes API's condition time is the
        # authority, this is a cross-check. No such pod is an empty answer, which is a valid
        # "none" as long as kube-state-metrics itself is current (freshness: newest
        # kube_pod_created sample).
        Query(
            UNSCHEDULABLE,
            "max by (namespace, pod) (time() - kube_pod_created)"
            " and on (namespace, pod) (max by (namespace, pod) (kube_pod_status_unschedulable) == 1)"
            ' and on (namespace, pod) (max by (namespace, pod) (kube_pod_status_phase{phase="Pending"}) == 1)',
            "max(timestamp(kube_pod_created))",
            ("namespace", "pod"),
            empty_ok=True,
            global_freshness=True,
        ),
    )


DEMAND_RESOURCES = (("cpu", 1000.0), ("memory", 1.0 / 2**20))
"""kube-state-metrics' resources and their factor to the forecast's units: cores to millicores,
bytes to MiB."""


def demand_expr(lags_s: Iterable[float]) -> str:
    """One PromQL expression for the forecast's history: per resource and per lag, the requests of the
    containers of pods Pending or Running (kube-state-metrics `kube_pod_container_resource_requests`
    and `kube_pod_status_phase`), less DaemonSet pods' (`kube_pod_owner`), as they were `lag`
    seconds before each evaluation time. Each series is marked `<resource>@<lag>`."""
    parts = []
    for lag in lags_s:
        at = f" offset {lag:.0f}s" if lag else ""
        for resource, _ in DEMAND_RESOURCES:
            expr = (
                f'sum(kube_pod_container_resource_requests{{resource="{resource}"}}{at}'
                " and on (namespace, pod) (max by (namespace, pod)"
                f' (kube_pod_status_phase{{phase=~"Pending|Running"}}{at}) == 1)'
                f' unless on (namespace, pod) kube_pod_owner{{owner_kind="DaemonSet"}}{at})'
            )
            parts.append(_marked(expr, f"{resource}@{lag:.0f}"))
    return "\n or ".join(parts)


def batch_expr(queries: Iterable[Query]) -> str:
    """One PromQL expression answering every query (and its freshness), each series marked."""
    parts = []
    for q in queries:
        parts.append(_marked(q.expr, q.name))
        if q.freshness is not None:
            parts.append(_marked(q.freshness, q.name + FRESHNESS_SUFFIX))
    return "\n or ".join(parts)


def _marked(expr: str, name: str) -> str:
    return f'label_replace(({expr}), "{MARKER_LABEL}", "{name}", "", "")'


def effective_queries(options: PrometheusOptions) -> dict[str, Query]:
    """The effective queries by name: the defaults, with the overrides in their place."""
    found = {}
    for q in default_queries(options):
        override = options.override(q.name)
        found[q.name] = q if override is None else Query(q.name, override, None, q.keys, q.empty_ok, q.global_freshness)
    if options.custom_query is not None:
        found[CUSTOM] = Query(CUSTOM, options.custom_query, None, ())
    return found
