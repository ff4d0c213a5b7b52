"""The Metrics port over Prometheus' HTTP API (instant queries with `requests`).

One cycle asks Prometheus as few times as it can:

- Every vector query (CPU and memory, cluster and per node, unschedulable pods) and the freshness
  query that goes with each is wrapped in `label_replace(..., "node_fleet_query", "<name>", "", "")`
  and the lot joined with `or` into ONE instant query, sent as one POST. The marker label sorts
  the answer back out. The marker values differ, so `or` keeps every series.
- The operator's CUSTOM_METRIC_QUERY, when set, goes in a second POST on the same keep-alive
  connection: it may answer a scalar (`scalar(...)`), which cannot be folded into a vector batch.
- Only when the batch is refused as a query error (400 `bad_data`, 422 `execution`), which means
  an override is broken, is each query asked on its own, so the reason names the broken one and
  the others still count.

Why one combined query rather than one POST per query on a reused session: each request costs a
round trip to Prometheus (and, in the deployed setup, through the nginx proxy in front of it), and
the cycle's Lambda time. Every query is evaluated at `time=now`, so the figures belong to the same
instant either way, and a test can fix `now`.

Retries (urllib3 `Retry` on the session's `HTTPAdapter`, POST included): connection failures and
HTTP 500/502/503/504, PROMETHEUS_RETRIES times with exponential back-off (PROMETHEUS_BACKOFF_S).
A read timeout is not retried (the answer would come too late for the cycle), nor is a 4xx.
Once the transport has failed, nothing else is asked in that cycle.

The read timeout bounds each socket read, not an answer: a server that drips its answer a byte at a
time would keep the cycle waiting for as long as it likes. So one deadline (PROMETHEUS_DEADLINE_S)
bounds all the requests of one read together: each request's timeouts are cut to the time left, the
answer is read a piece at a time with the deadline checked between pieces (so it is overrun by at most
one read timeout), and past it every answer not yet in is unknown.

A value that cannot be trusted is None ("unknown"), never zero, and the reason names the query:
a transport error (after the retries), an HTTP or PromQL error, an empty answer, NaN or ±Inf, or a
sample older than PROMETHEUS_STALENESS_S before `now`. Prometheus itself returns a series up to
its lookback delta (5 minutes by default) after its last sample; the freshness query of each
default query (the `timestamp()` of the raw series behind it) lets the adapter tell a current
sample from one that is minutes old. An overridden query has no freshness query (the adapter
cannot know which series are behind it), so only Prometheus' lookback delta limits its age.

Nothing secret (token, password, CA) appears in a log line, an exception, a reason or a repr.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from requests.auth import AuthBase, HTTPBasicAuth
from urllib3.exceptions import HTTPError, MaxRetryError
from urllib3.exceptions import ReadTimeoutError as RawReadTimeout
from urllib3.util.retry import Retry

from autoscaler.config import ConfigError
from autoscaler.model import MetricsView

logger = logging.getLogger(__name__)

CLUSTER_CPU = "cluster_cpu"
NODE_CPU = "node_cpu"
CLUSTER_MEM = "cluster_mem"
NODE_MEM = "node_mem"
UNSCHEDULABLE = "unschedulable"
CUSTOM = "custom"

VIEW_QUERIES = (CLUSTER_CPU, NODE_CPU, CLUSTER_MEM, NODE_MEM, CUSTOM)
"""The queries `sample()` asks (CUSTOM only when configured)."""
ALL_QUERIES = (*VIEW_QUERIES, UNSCHEDULABLE)

MARKER_LABEL = "node_fleet_query"
"""The label the batch uses to tell the queries' series apart (must not appear in the data)."""
_FRESHNESS_SUFFIX = "/freshness"

RETRY_STATUSES = (500, 502, 503, 504)
FUTURE_TOLERANCE_S = 60.0
"""A freshness timestamp this far after `now` is impossible (queries evaluate at `now`): unknown."""

# Environment variables (the template sets them; the lead documents them in the README).
ENV_URL = "PROMETHEUS_URL"
ENV_TIMEOUT = "PROMETHEUS_TIMEOUT_S"
ENV_STALENESS = "PROMETHEUS_STALENESS_S"
ENV_RATE_WINDOW = "PROMETHEUS_RATE_WINDOW"
ENV_NODE_LABEL = "PROMETHEUS_NODE_LABEL"
ENV_RETRIES = "PROMETHEUS_RETRIES"
ENV_BACKOFF = "PROMETHEUS_BACKOFF_S"
ENV_DEADLINE = "PROMETHEUS_DEADLINE_S"
ENV_CUSTOM = "CUSTOM_METRIC_QUERY"
OVERRIDE_ENV = {
    CLUSTER_CPU: "PROMETHEUS_QUERY_CLUSTER_CPU",
    NODE_CPU: "PROMETHEUS_QUERY_NODE_CPU",
    CLUSTER_MEM: "PROMETHEUS_QUERY_CLUSTER_MEM",
    NODE_MEM: "PROMETHEUS_QUERY_NODE_MEM",
    UNSCHEDULABLE: "PROMETHEUS_QUERY_UNSCHEDULABLE",
}

_DURATION = re.compile(r"^(\d+(ms|s|m|h|d|w|y))+$")
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_MAX_DETAIL = 200
_MAX_LISTED = 5
_READ_CHUNK = 64 * 1024


# --------------------------------------------------------------------------------------------
# Settings


@dataclass(frozen=True)
class PrometheusAuth:
    """Credentials for Prometheus (or the proxy in front of it), read from SSM by the caller.

    Either a bearer token or a basic-auth user and password. repr() shows only the kind.
    """

    bearer_token: str | None = field(default=None, repr=False)
    username: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        basic = self.username is not None or self.password is not None
        if self.bearer_token is not None and basic:
            raise ValueError("PrometheusAuth: give a bearer token or a username and password, not both")
        if self.bearer_token is not None and not self.bearer_token:
            raise ValueError("PrometheusAuth: the bearer token is empty")
        if basic and not (self.username and self.password is not None):
            raise ValueError("PrometheusAuth: basic auth needs both a username and a password")
        if self.bearer_token is None and not basic:
            raise ValueError("PrometheusAuth: give a bearer token or a username and password")

    @classmethod
    def bearer(cls, token: str) -> PrometheusAuth:
        return cls(bearer_token=token)

    @classmethod
    def basic(cls, username: str, password: str) -> PrometheusAuth:
        return cls(username=username, password=password)

    @property
    def kind(self) -> str:
        return "bearer" if self.bearer_token is not None else "basic"

    def __repr__(self) -> str:
        return f"PrometheusAuth({self.kind})"

    __str__ = __repr__


@dataclass(frozen=True)
class PrometheusOptions:
    """Where Prometheus is and how to ask it; see `from_env` for the variables."""

    url: str
    connect_timeout_s: float = 2.0
    read_timeout_s: float = 5.0
    staleness_s: float = 180.0
    rate_window: str = "5m"
    node_label: str = "instance"
    retries: int = 2
    backoff_s: float = 0.25
    deadline_s: float = 10.0
    """All the requests of one read (retries included) end by then."""
    query_cluster_cpu: str | None = None
    query_node_cpu: str | None = None
    query_cluster_mem: str | None = None
    query_node_mem: str | None = None
    query_unschedulable: str | None = None
    custom_query: str | None = None

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"{ENV_URL} must be an http:// or https:// URL with a host, e.g. http://10.0.1.5:30090")
        if parts.username is not None or parts.password is not None:
            raise ConfigError(f"{ENV_URL} must not carry credentials: pass them as PrometheusAuth (from SSM)")
        if parts.query or parts.fragment:
            raise ConfigError(f"{ENV_URL} must not have a query string or fragment")
        if not (0 < self.connect_timeout_s <= 60 and 0 < self.read_timeout_s <= 60):
            raise ConfigError(
                f"{ENV_TIMEOUT}={self.connect_timeout_s:g},{self.read_timeout_s:g} is out of range: "
                "allowed 'READ' or 'CONNECT,READ' seconds, each in (0, 60]"
            )
        if not 1 <= self.staleness_s <= 3600:
            raise ConfigError(f"{ENV_STALENESS}={self.staleness_s:g} is out of range: allowed 1..3600")
        if not _DURATION.match(self.rate_window):
            raise ConfigError(
                f"{ENV_RATE_WINDOW}={self.rate_window!r} is not a PromQL duration: allowed e.g. '2m', '5m', '1m30s'"
            )
        if not _LABEL_NAME.match(self.node_label) or self.node_label == MARKER_LABEL:
            raise ConfigError(
                f"{ENV_NODE_LABEL}={self.node_label!r} is not a label name: allowed [a-zA-Z_][a-zA-Z0-9_]*"
            )
        if not 0 <= self.retries <= 10:
            raise ConfigError(f"{ENV_RETRIES}={self.retries} is out of range: allowed 0..10")
        if not 0 <= self.backoff_s <= 10:
            raise ConfigError(f"{ENV_BACKOFF}={self.backoff_s:g} is out of range: allowed 0..10")
        if not 0 < self.deadline_s <= 60:
            raise ConfigError(f"{ENV_DEADLINE}={self.deadline_s:g} is out of range: allowed (0, 60] seconds")
        for name, env in (*OVERRIDE_ENV.items(), (CUSTOM, ENV_CUSTOM)):
            text = self._override(name)
            if text is not None and not text.strip():
                raise ConfigError(f"{env} is blank: leave it unset to use the default")

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> PrometheusOptions:
        """Read the options from `environ`; an empty variable counts as unset.

        PROMETHEUS_URL (required), PROMETHEUS_TIMEOUT_S ('READ' or 'CONNECT,READ', default 2,5),
        PROMETHEUS_STALENESS_S (180), PROMETHEUS_RATE_WINDOW (5m), PROMETHEUS_NODE_LABEL (instance),
        PROMETHEUS_RETRIES (2), PROMETHEUS_BACKOFF_S (0.25), PROMETHEUS_DEADLINE_S (10), the overrides PROMETHEUS_QUERY_CLUSTER_CPU,
        PROMETHEUS_QUERY_NODE_CPU, PROMETHEUS_QUERY_CLUSTER_MEM, PROMETHEUS_QUERY_NODE_MEM,
        PROMETHEUS_QUERY_UNSCHEDULABLE, and CUSTOM_METRIC_QUERY.
        """

        def get(name: str) -> str | None:
            raw = environ.get(name)
            return raw.strip() if raw is not None and raw.strip() else None

        url = get(ENV_URL)
        if url is None:
            raise ConfigError(
                f"{ENV_URL} is required: the base URL of Prometheus' HTTP API, e.g. http://10.0.1.5:30090"
            )
        values: dict[str, Any] = {"url": url}
        timeout = get(ENV_TIMEOUT)
        if timeout is not None:
            parts = [p.strip() for p in timeout.split(",")]
            numbers = [_number(ENV_TIMEOUT, timeout, p, "'READ' or 'CONNECT,READ' seconds") for p in parts]
            if len(numbers) == 1:
                values["connect_timeout_s"] = values["read_timeout_s"] = numbers[0]
            elif len(numbers) == 2:
                values["connect_timeout_s"], values["read_timeout_s"] = numbers
            else:
                raise ConfigError(f"{ENV_TIMEOUT}={timeout!r} is not valid: allowed 'READ' or 'CONNECT,READ' seconds")
        staleness = get(ENV_STALENESS)
        if staleness is not None:
            values["staleness_s"] = _number(ENV_STALENESS, staleness, staleness, "seconds, 1..3600")
        retries = get(ENV_RETRIES)
        if retries is not None:
            try:
                values["retries"] = int(retries)
            except ValueError:
                raise ConfigError(f"{ENV_RETRIES}={retries!r} is not a valid int: allowed 0..10") from None
        backoff = get(ENV_BACKOFF)
        if backoff is not None:
            values["backoff_s"] = _number(ENV_BACKOFF, backoff, backoff, "seconds, 0..10")
        if (deadline := get(ENV_DEADLINE)) is not None:
            values["deadline_s"] = _number(ENV_DEADLINE, deadline, deadline, "seconds, (0, 60]")
        if (window := get(ENV_RATE_WINDOW)) is not None:
            values["rate_window"] = window
        if (label := get(ENV_NODE_LABEL)) is not None:
            values["node_label"] = label
        for name, env in OVERRIDE_ENV.items():
            if (text := get(env)) is not None:
                values[f"query_{name}"] = text
        if (custom := get(ENV_CUSTOM)) is not None:
            values["custom_query"] = custom
        return cls(**values)

    def _override(self, name: str) -> str | None:
        return self.custom_query if name == CUSTOM else getattr(self, f"query_{name}")

    def queries(self) -> dict[str, Query]:
        """The effective queries by name: the defaults, with the overrides in their place."""
        found = {}
        for q in default_queries(self):
            override = self._override(q.name)
            found[q.name] = (
                q if override is None else Query(q.name, override, None, q.keys, q.empty_ok, q.global_freshness)
            )
        if self.custom_query is not None:
            found[CUSTOM] = Query(CUSTOM, self.custom_query, None, ())
        return found


def _number(env: str, raw: str, part: str, allowed: str) -> float:
    try:
        value = float(part)
    except ValueError:
        raise ConfigError(f"{env}={raw!r} is not a number: allowed {allowed}") from None
    if not math.isfinite(value):
        raise ConfigError(f"{env}={raw!r} is not a number: allowed {allowed}")
    return value


# --------------------------------------------------------------------------------------------
# Default queries


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


def batch_expr(queries: Iterable[Query]) -> str:
    """One PromQL expression answering every query (and its freshness), each series marked."""
    parts = []
    for q in queries:
        parts.append(_marked(q.expr, q.name))
        if q.freshness is not None:
            parts.append(_marked(q.freshness, q.name + _FRESHNESS_SUFFIX))
    return "\n or ".join(parts)


def _marked(expr: str, name: str) -> str:
    return f'label_replace(({expr}), "{MARKER_LABEL}", "{name}", "", "")'


# --------------------------------------------------------------------------------------------
# The adapter


@dataclass(frozen=True)
class PrometheusReading:
    """Everything one read found: the MetricsView, and the unschedulable-pods cross-check."""

    view: MetricsView
    unschedulable: Mapping[str, float] | None
    """Seconds unschedulable by "namespace/pod"; None when unknown."""
    unschedulable_reason: str | None
    round_trips: int


@dataclass
class _Outcome:
    value: Any
    """float, dict of key -> float, or None (unknown)."""
    reasons: list[str] = field(default_factory=list)


class _QueryError(Exception):
    """A request that got no usable answer. `query_level`: Prometheus refused the PromQL itself."""

    def __init__(self, reason: str, *, query_level: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.query_level = query_level


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
        self._queries = options.queries()
        self._endpoint = options.url.rstrip("/") + "/api/v1/query"
        self._auth_kind = auth.kind if auth is not None else "none"
        self._auth = _request_auth(auth)
        self._verify: bool | str = _ca_file(ca_pem) if ca_pem is not None else True
        self._session = session if session is not None else requests.Session()
        retry = Retry(
            total=options.retries,
            connect=options.retries,
            # A slow Prometheus is not asked again: its answer would come too late for the cycle.
            # False (not 0) re-raises the read timeout as itself instead of as "max retries".
            read=False,
            status=options.retries,
            other=0,
            status_forcelist=RETRY_STATUSES,
            allowed_methods=frozenset({"GET", "POST"}),
            backoff_factor=options.backoff_s,
            raise_on_status=False,
            # A Retry-After of minutes would outlast the Lambda; back off by our own schedule only.
            respect_retry_after_header=False,
        )
        self._session.mount(options.url.rstrip("/") + "/", HTTPAdapter(max_retries=retry))

    def __repr__(self) -> str:
        return f"PrometheusMetrics(url={self._options.url!r}, auth={self._auth_kind})"

    def close(self) -> None:
        self._session.close()

    # -- the port ----------------------------------------------------------------------------

    def sample(self, now: float) -> MetricsView:
        """CPU and memory usage (and the custom metric), each None when it cannot be trusted."""
        outcomes, _ = self._evaluate(now, [n for n in VIEW_QUERIES if n in self._queries])
        return _view(outcomes)

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

    def _evaluate(self, now: float, names: Sequence[str]) -> tuple[dict[str, _Outcome], int]:
        queries = [self._queries[n] for n in names]
        vector = [q for q in queries if q.name != CUSTOM]
        deadline = time.monotonic() + self._options.deadline_s
        outcomes: dict[str, _Outcome] = {}
        trips = 0
        down: str | None = None  # a transport failure: no point asking again this cycle
        if len(vector) == 1:
            trips += 1
            try:
                outcomes[vector[0].name] = self._ask_one(vector[0], now, deadline)
            except _QueryError as e:
                outcomes[vector[0].name] = _failed(vector[0], e.reason)
                down = None if e.query_level else e.reason
        elif vector:
            trips += 1
            try:
                data = self._instant(batch_expr(vector), now, deadline)
            except _QueryError as e:
                if e.query_level:
                    # Some query is broken (an override): ask each alone to learn which.
                    for q in vector:
                        if down is not None:
                            outcomes[q.name] = _failed(q, down)
                            continue
                        trips += 1
                        try:
                            outcomes[q.name] = self._ask_one(q, now, deadline)
                        except _QueryError as e2:
                            outcomes[q.name] = _failed(q, e2.reason)
                            down = None if e2.query_level else e2.reason
                else:
                    down = e.reason
                    for q in vector:
                        outcomes[q.name] = _failed(q, e.reason)
            else:
                for q in vector:
                    outcomes[q.name] = _judge_vector(q, data, now, self._options)
        custom = self._queries.get(CUSTOM)
        if custom is not None and CUSTOM in names:
            if down is not None:
                outcomes[CUSTOM] = _failed(custom, down)
            else:
                trips += 1
                try:
                    outcomes[CUSTOM] = _judge_custom(custom, self._instant(custom.expr, now, deadline))
                except _QueryError as e:
                    outcomes[CUSTOM] = _failed(custom, e.reason)
        for outcome in outcomes.values():
            for reason in outcome.reasons:
                logger.warning("prometheus: %s", reason)
        logger.debug("prometheus: %d round trip(s) for %s", trips, ", ".join(names))
        return outcomes, trips

    def _ask_one(self, q: Query, now: float, deadline: float) -> _Outcome:
        """One vector query on its own. An override is sent as written, so that a PromQL error
        points into the operator's own text; a default goes with its freshness query."""
        if q.freshness is None:
            return _judge_vector(q, self._instant(q.expr, now, deadline), now, self._options, marked=False)
        return _judge_vector(q, self._instant(batch_expr([q]), now, deadline), now, self._options)

    def _instant(self, expr: str, now: float, deadline: float) -> dict[str, Any]:
        """POST one instant query evaluated at `now`, answered by `deadline` (monotonic); the answer's
        `data`, or _QueryError."""
        o = self._options
        left = deadline - time.monotonic()
        if left <= 0:
            raise _QueryError(self._past_deadline(), query_level=False)
        try:
            with self._session.post(
                self._endpoint,
                data={"query": expr, "time": f"{now:.3f}", "timeout": f"{min(o.read_timeout_s, left):.3f}"},
                timeout=(min(o.connect_timeout_s, left), min(o.read_timeout_s, left)),
                auth=self._auth,
                verify=self._verify,
                allow_redirects=False,
                stream=True,
            ) as response:
                content = self._content(response, deadline)
        except requests.exceptions.SSLError:
            raise _QueryError("TLS handshake or certificate verification failed", query_level=False) from None
        except requests.exceptions.ConnectTimeout:
            raise _QueryError(
                f"connect timeout ({o.connect_timeout_s:g}s) after {o.retries} retries", query_level=False
            ) from None
        except requests.exceptions.ReadTimeout:
            raise _QueryError(self._timed_out(deadline), query_level=False) from None
        except requests.exceptions.ConnectionError as e:
            if e.args and isinstance(e.args[0], MaxRetryError):
                raise _QueryError(f"cannot connect (after {o.retries} retries)", query_level=False) from None
            raise _QueryError("connection lost before an answer", query_level=False) from None
        except requests.exceptions.RetryError:
            raise _QueryError(f"server errors after {o.retries} retries", query_level=False) from None
        except requests.exceptions.RequestException as e:
            raise _QueryError(f"request failed ({type(e).__name__})", query_level=False) from None
        try:
            body = json.loads(content)
        except (ValueError, RecursionError):  # not JSON, or nested too deep to read
            body = None
        if not isinstance(body, dict):
            body = {}
        if response.status_code != 200 or body.get("status") != "success":
            error_type, error = body.get("errorType"), body.get("error")
            detail = f"{error_type}: {_clip(error)}" if error_type else _clip(error) if error else "no error message"
            if response.status_code in (400, 422) and error_type:
                raise _QueryError(detail, query_level=True)
            retried = _retries_used(response)
            after = f" after {retried} retries" if retried else ""
            raise _QueryError(f"HTTP {response.status_code}{after} ({detail})", query_level=False)
        data = body.get("data")
        if not isinstance(data, dict):
            raise _QueryError("answer without data", query_level=False)
        return data

    def _content(self, response: requests.Response, deadline: float) -> bytes:
        """The answer's body, read a piece at a time until it ends or the deadline passes."""
        pieces = []
        try:
            while piece := response.raw.read1(_READ_CHUNK, decode_content=True):
                pieces.append(piece)
                if time.monotonic() > deadline:
                    raise _QueryError(self._past_deadline(), query_level=False)
        except RawReadTimeout:
            raise _QueryError(self._timed_out(deadline), query_level=False) from None
        except HTTPError:
            raise _QueryError("connection lost before an answer", query_level=False) from None
        return b"".join(pieces)

    def _past_deadline(self) -> str:
        return f"no answer within the deadline of all this cycle's requests ({self._options.deadline_s:g}s)"

    def _timed_out(self, deadline: float) -> str:
        """Why a read timed out: its own timeout, or the deadline it was cut to."""
        if time.monotonic() >= deadline:
            return self._past_deadline()
        return f"no answer within the read timeout ({self._options.read_timeout_s:g}s)"


def _request_auth(auth: PrometheusAuth | None) -> AuthBase | None:
    if auth is None:
        return None
    if auth.bearer_token is not None:
        return _Bearer(auth.bearer_token)
    assert auth.username is not None and auth.password is not None  # nosec B101  # narrows types; __post_init__ checked
    return HTTPBasicAuth(auth.username, auth.password)


class _Bearer(AuthBase):
    def __init__(self, token: str) -> None:
        self._token = token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self._token}"
        return request

    def __repr__(self) -> str:
        return "_Bearer()"


def _ca_file(ca_pem: str) -> str:
    """requests verifies against a file: write the PEM once per content (0600, in the temp dir)."""
    if "-----BEGIN CERTIFICATE-----" not in ca_pem:
        raise ValueError("ca_pem is not a PEM certificate bundle")
    digest = hashlib.sha256(ca_pem.encode()).hexdigest()[:16]
    path = Path(tempfile.gettempdir()) / f"node-fleet-prometheus-ca-{digest}.pem"
    if not path.exists():
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".node-fleet-ca-")
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(ca_pem)
        os.replace(tmp, path)
    return str(path)


def _retries_used(response: requests.Response) -> int:
    retries = getattr(response.raw, "retries", None)
    history = getattr(retries, "history", ()) or ()
    return len(history)


def _clip(text: object) -> str:
    flat = " ".join(str(text).split())
    return flat if len(flat) <= _MAX_DETAIL else flat[: _MAX_DETAIL - 1] + "…"


# --------------------------------------------------------------------------------------------
# Judging the answers


_Samples = list[tuple[dict[str, str], float]]


def _failed(q: Query, reason: str) -> _Outcome:
    return _Outcome(None, [f"{q.name}: {reason}"])


def _samples(data: Mapping[str, Any]) -> list[tuple[dict[str, str], float]]:
    if data.get("resultType") != "vector":
        raise _QueryError(f"expected an instant vector, got {data.get('resultType')!r}", query_level=True)
    result = data.get("result")
    if result is None:
        result = []
    if not isinstance(result, list):
        raise _QueryError("malformed answer: result is not a list", query_level=False)
    found = []
    for item in result:
        metric = item.get("metric") if isinstance(item, Mapping) else None
        metric = {} if metric is None else metric
        if (
            not isinstance(item, Mapping)
            or not isinstance(metric, Mapping)
            or not all(isinstance(v, str) for v in metric.values())
        ):
            raise _QueryError("malformed answer: a series is not {metric: {label: string}, value}", query_level=False)
        found.append((dict(metric), _value(item.get("value"))))
    return found


def _value(pair: object) -> float:
    """The value of a [time, "value"] pair; NaN for anything else (a wrong type is never a number)."""
    if not isinstance(pair, list) or len(pair) != 2:
        return math.nan
    value = pair[1]
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return math.nan
    try:
        return float(value)
    except (ValueError, OverflowError):
        return math.nan


def _judge_vector(
    q: Query, data: Mapping[str, Any], now: float, o: PrometheusOptions, *, marked: bool = True
) -> _Outcome:
    """`marked`: the answer is a batch whose series carry MARKER_LABEL; else all are `q`'s values."""
    try:
        samples = _samples(data)
    except _QueryError as e:
        return _failed(q, e.reason)
    values: _Samples = []
    fresh: _Samples = []
    for labels, value in samples:
        marker = labels.pop(MARKER_LABEL, None) if marked else q.name
        if marker == q.name:
            values.append((labels, value))
        elif marker == q.name + _FRESHNESS_SUFFIX:
            fresh.append((labels, value))
    if not q.keys:
        return _judge_one(q, values, fresh, now, o.staleness_s)
    return _judge_keyed(q, values, fresh, now, o.staleness_s)


def _age_problem(ts: float | None, now: float, limit: float) -> str | None:
    if ts is None or not math.isfinite(ts):
        return "no current sample"
    age = now - ts
    if age < -FUTURE_TOLERANCE_S:
        return f"newest sample {-age:.0f}s in the future"
    if age > limit:
        return f"stale: newest sample {age:.0f}s old (limit {limit:g}s)"
    return None


def _number_problem(value: float) -> str | None:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return None


def _judge_one(q: Query, values: _Samples, fresh: _Samples, now: float, limit: float) -> _Outcome:
    if q.freshness is not None:
        problem = _age_problem(fresh[0][1] if len(fresh) == 1 else None, now, limit)
        if problem is not None:
            return _failed(q, problem)
    if not values:
        return _failed(q, "empty result")
    if len(values) > 1:
        return _failed(q, f"{len(values)} series where one was expected")
    value = values[0][1]
    problem = _number_problem(value)
    if problem is not None:
        return _failed(q, problem)
    return _Outcome(value)


def _judge_keyed(q: Query, values: _Samples, fresh: _Samples, now: float, limit: float) -> _Outcome:
    if q.global_freshness and q.freshness is not None:
        problem = _age_problem(fresh[0][1] if len(fresh) == 1 else None, now, limit)
        if problem is not None:
            return _failed(q, problem)
    if not values:
        return _Outcome({}) if q.empty_ok else _Outcome({}, [f"{q.name}: empty result"])
    fresh_by_key = {tuple(labels.get(k, "") for k in q.keys): ts for labels, ts in fresh}
    found: dict[str, float] = {}
    problems: list[str] = []
    unlabelled = 0
    for labels, value in values:
        key = tuple(labels.get(k, "") for k in q.keys)
        if not all(key):
            unlabelled += 1
            continue
        name = "/".join(key)
        problem = _number_problem(value)
        if problem is None and q.freshness is not None and not q.global_freshness:
            problem = _age_problem(fresh_by_key.get(key), now, limit)
        if problem is not None:
            problems.append(f"{name} {problem}")
            continue
        found[name] = value
    reasons = [f"{q.name}: {p}" for p in sorted(problems)[:_MAX_LISTED]]
    if len(problems) > _MAX_LISTED:
        reasons.append(f"{q.name}: {len(problems) - _MAX_LISTED} more unknown")
    if unlabelled:
        reasons.append(f"{q.name}: {unlabelled} series without the label(s) {', '.join(q.keys)}")
    if not found and q.empty_ok:
        # Every pod's series was dropped: that is not "none are unschedulable".
        return _Outcome(None, reasons)
    return _Outcome(found, reasons)


def _judge_custom(q: Query, data: Mapping[str, Any]) -> _Outcome:
    kind = data.get("resultType")
    if kind == "scalar":
        value = _value(data.get("result"))
    elif kind == "vector":
        try:
            result = _samples(data)
        except _QueryError as e:
            return _failed(q, e.reason)
        if not result:
            return _failed(q, "empty result")
        if len(result) > 1:
            return _failed(q, f"{len(result)} series where one was expected (aggregate them, e.g. sum(...))")
        value = result[0][1]
    else:
        return _failed(q, f"expected a scalar or a one-sample vector, got {kind!r}")
    problem = _number_problem(value)
    return _failed(q, problem) if problem is not None else _Outcome(value)


def _view(outcomes: Mapping[str, _Outcome]) -> MetricsView:
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
]
