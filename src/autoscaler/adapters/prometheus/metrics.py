"""The Metrics port over Prometheus' HTTP API: one cycle asks Prometheus as few times as it can.

- Every vector query (CPU and memory, cluster and per node, unschedulable pods) and its freshness
  query go in ONE instant query (`queries.batch_expr`), sent as one POST.
- The operator's CUSTOM_METRIC_QUERY, when set, goes in a second POST on the same keep-alive
  connection: it may answer a scalar (`scalar(...)`), which cannot be folded into a vector batch.
- Only when the batch is refused as a query error (400 `bad_data`, 422 `execution`), which means
  an override is broken, is each query asked on its own, so the reason names the broken one and
  the others still count.
- Once the transport has failed, nothing else is asked in that cycle.

Why one combined query rather than one POST per query on a reused session: each request costs a
round trip to Prometheus (and, in the deployed setup, through the nginx proxy in front of it), and
the cycle's Lambda time. Every query is evaluated at `time=now`, so the figures belong to the same
instant either way, and a test can fix `now`.

Nothing secret (token, password, CA) appears in a log line, an exception, a reason or a repr.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import requests
from aws_lambda_powertools import Logger

from autoscaler.adapters.prometheus.judging import Outcome, failed, judge_custom, judge_demand, judge_vector
from autoscaler.adapters.prometheus.queries import (
    ALL_QUERIES,
    VIEW_QUERIES,
    Query,
    QueryError,
    batch_expr,
    demand_expr,
    effective_queries,
)
from autoscaler.adapters.prometheus.transport import Transport
from autoscaler.config.prometheus import (
    CLUSTER_CPU,
    CLUSTER_MEM,
    CUSTOM,
    NODE_CPU,
    NODE_MEM,
    UNSCHEDULABLE,
    PrometheusAuth,
    PrometheusOptions,
)
from autoscaler.forecast import DemandHistory, HistoryRead
from autoscaler.model import MetricsView

logger = Logger(child=True)


@dataclass(frozen=True)
class PrometheusReading:
    """Everything one read found: the MetricsView, and the unschedulable-pods cross-check."""

    view: MetricsView
    unschedulable: Mapping[str, float] | None
    """Seconds unschedulable by "namespace/pod"; None when unknown."""
    unschedulable_reason: str | None
    round_trips: int


class PrometheusMetrics:
    """The Metrics port over Prometheus. Build one per Lambda container and reuse it.

    `auth` and `ca_pem` (a PEM bundle the server certificate must chain to; the system store
    otherwise) come from SSM through the caller. `session` is for tests and sharing; the adapter
    mounts its retrying transport for the Prometheus URL on it.
    """

    def __init__(
        self,
        options: PrometheusOptions,
        auth: PrometheusAuth | None = None,
        ca_pem: str | None = None,
        session: requests.Session | None = None,
    ) -> None:
        self._options = options
        self._queries = effective_queries(options)
        self._auth_kind = auth.kind if auth is not None else "none"
        self._transport = Transport(options, auth, ca_pem, session)

    def __repr__(self) -> str:
        return f"PrometheusMetrics(url={self._options.url!r}, auth={self._auth_kind})"

    def close(self) -> None:
        self._transport.close()

    # -- the port ----------------------------------------------------------------------------

    def sample(self, now: float) -> MetricsView:
        """CPU and memory usage (and the custom metric), each None when it cannot be trusted."""
        outcomes, _ = self._evaluate(now, [n for n in VIEW_QUERIES if n in self._queries])
        return _view(outcomes)

    def demand(self, now: float, read: HistoryRead) -> DemandHistory | None:
        """The forecast's history: one range query over every lag (`queries.demand_expr`); None,
        with a warning, when it cannot be read."""
        deadline = time.monotonic() + self._options.deadline_s
        try:
            data = self._transport.range(
                demand_expr(read.lags_s), now - read.before_s, now + read.after_s, read.step_s, deadline
            )
            return judge_demand(data, now, read.step_s)
        except QueryError as e:
            logger.warning("prometheus: demand history unknown", extra={"reason": e.reason})
            return None

    def unschedulable(self, now: float) -> dict[str, float] | None:
        """Seconds each pod has been unschedulable, by "namespace/pod" (kube-state-metrics): a
        cross-check of the Kubernetes API. None when unknown. One round trip."""
        outcomes, _ = self._evaluate(now, [UNSCHEDULABLE])
        return outcomes[UNSCHEDULABLE].value

    def read(self, now: float) -> PrometheusReading:
        """sample() and unschedulable() in one go (one round trip, two with a custom query)."""
        outcomes, trips = self._evaluate(now, [n for n in ALL_QUERIES if n in self._queries])
        uns = outcomes[UNSCHEDULABLE]
        return PrometheusReading(_view(outcomes), uns.value, _join(uns.reasons), trips)

    # -- asking ------------------------------------------------------------------------------

    def _evaluate(self, now: float, names: Sequence[str]) -> tuple[dict[str, Outcome], int]:
        queries = [self._queries[n] for n in names]
        vector = [q for q in queries if q.name != CUSTOM]
        deadline = time.monotonic() + self._options.deadline_s
        outcomes: dict[str, Outcome] = {}
        trips = 0
        down: str | None = None  # a transport failure: no point asking again this cycle
        if len(vector) == 1:
            trips += 1
            try:
                outcomes[vector[0].name] = self._ask_one(vector[0], now, deadline)
            except QueryError as e:
                outcomes[vector[0].name] = failed(vector[0], e.reason)
                down = None if e.query_level else e.reason
        elif vector:
            trips += 1
            try:
                data = self._transport.instant(batch_expr(vector), now, deadline)
            except QueryError as e:
                if e.query_level:
                    # Some query is broken (an override): ask each alone to learn which.
                    for q in vector:
                        if down is not None:
                            outcomes[q.name] = failed(q, down)
                            continue
                        trips += 1
                        try:
                            outcomes[q.name] = self._ask_one(q, now, deadline)
                        except QueryError as e2:
                            outcomes[q.name] = failed(q, e2.reason)
                            down = None if e2.query_level else e2.reason
                else:
                    down = e.reason
                    for q in vector:
                        outcomes[q.name] = failed(q, e.reason)
            else:
                for q in vector:
                    outcomes[q.name] = judge_vector(q, data, now, self._options.staleness_s)
        custom = self._queries.get(CUSTOM)
        if custom is not None and CUSTOM in names:
            if down is not None:
                outcomes[CUSTOM] = failed(custom, down)
            else:
                trips += 1
                try:
                    outcomes[CUSTOM] = judge_custom(custom, self._transport.instant(custom.expr, now, deadline))
                except QueryError as e:
                    outcomes[CUSTOM] = failed(custom, e.reason)
        for outcome in outcomes.values():
            for reason in outcome.reasons:
                logger.warning("prometheus: query unknown", extra={"reason": reason})
        logger.debug("prometheus: asked", extra={"round_trips": trips, "queries": list(names)})
        return outcomes, trips

    def _ask_one(self, q: Query, now: float, deadline: float) -> Outcome:
        """One vector query on its own. An override is sent as written, so that a PromQL error
        points into the operator's own text; a default goes with its freshness query."""
        if q.freshness is None:
            return judge_vector(
                q, self._transport.instant(q.expr, now, deadline), now, self._options.staleness_s, marked=False
            )
        return judge_vector(q, self._transport.instant(batch_expr([q]), now, deadline), now, self._options.staleness_s)


def _view(outcomes: Mapping[str, Outcome]) -> MetricsView:
    def one(name: str) -> float | None:
        outcome = outcomes.get(name)
        return outcome.value if outcome is not None else None

    def per_node(name: str) -> dict[str, float]:
        outcome = outcomes.get(name)
        return dict(outcome.value) if outcome is not None and outcome.value else {}

    reasons = [r for name in VIEW_QUERIES if name in outcomes for r in outcomes[name].reasons]
    return MetricsView(
        cluster_cpu=one(CLUSTER_CPU),
        node_cpu=per_node(NODE_CPU),
        cluster_mem=one(CLUSTER_MEM),
        node_mem=per_node(NODE_MEM),
        custom=one(CUSTOM),
        unknown_reason=_join(reasons),
    )


def _join(reasons: Sequence[str]) -> str | None:
    return "; ".join(reasons) if reasons else None
