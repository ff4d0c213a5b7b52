"""The Metrics port over Prometheus, by job: `queries` (the PromQL catalogue and the batch),
`transport` (HTTP: retries, deadline, credentials), `judging` (pure: which answers can be trusted)
and `metrics` (the adapter that asks and judges). The options are `autoscaler.config.prometheus`'s."""

from autoscaler.adapters.prometheus.metrics import PrometheusMetrics, PrometheusReading
from autoscaler.adapters.prometheus.queries import ALL_QUERIES, Query, batch_expr, default_queries, effective_queries
from autoscaler.config.prometheus import MARKER_LABEL, OVERRIDE_ENV, PrometheusAuth, PrometheusOptions

__all__ = [
    "ALL_QUERIES",
    "MARKER_LABEL",
    "OVERRIDE_ENV",
    "PrometheusAuth",
    "PrometheusMetrics",
    "PrometheusOptions",
    "PrometheusReading",
    "Query",
    "batch_expr",
    "default_queries",
    "effective_queries",
]
