"""Where Prometheus is and how the Metrics adapter asks it, from the environment (`PrometheusOptions.from_env`),
and the credentials for it (`PrometheusAuth`, read from SSM by the caller)."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from autoscaler.config.environ import ConfigError, text

# The queries' names: each default can be replaced by the operator's PromQL (OVERRIDE_ENV).
CLUSTER_CPU = "cluster_cpu"
NODE_CPU = "node_cpu"
CLUSTER_MEM = "cluster_mem"
NODE_MEM = "node_mem"
UNSCHEDULABLE = "unschedulable"
CUSTOM = "custom"

MARKER_LABEL = "node_fleet_query"
"""The label the adapter's batch uses to tell the queries' series apart (must not appear in the data)."""

# Environment variables (the template sets them; the README documents them).
ENV_URL = "PROMETHEUS_URL"
ENV_TIMEOUT = "PROMETHEUS_TIMEOUT_S"
ENV_STALENESS = "PROMETHEUS_STALENESS_S"
ENV_RATE_WINDOW = "PROMETHEUS_RATE_WINDOW"
ENV_NODE_LABEL = "PROMETHEUS_NODE_LABEL"
ENV_RETRIES = "PROMETHEUS_RETRIES"
ENV_BACKOFF = "PROMETHEUS_BACKOFF_S"
ENV_DEADLINE = "PROMETHEUS_DEADLINE_S"
ENV_CUSTOM = "CUSTOM_METRIC_QUERY"
ENV_AUTH_PARAM = "PROMETHEUS_AUTH_PARAM"
OVERRIDE_ENV = {
    CLUSTER_CPU: "PROMETHEUS_QUERY_CLUSTER_CPU",
    NODE_CPU: "PROMETHEUS_QUERY_NODE_CPU",
    CLUSTER_MEM: "PROMETHEUS_QUERY_CLUSTER_MEM",
    NODE_MEM: "PROMETHEUS_QUERY_NODE_MEM",
    UNSCHEDULABLE: "PROMETHEUS_QUERY_UNSCHEDULABLE",
}

_DURATION = re.compile(r"^(\d+(ms|s|m|h|d|w|y))+$")
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


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

    @classmethod
    def from_secret(cls, credentials: str) -> PrometheusAuth:
        """The value of the SSM parameter PROMETHEUS_AUTH_PARAM names: `Bearer <token>` or `user:password`."""
        if credentials.startswith("Bearer "):
            return cls.bearer(credentials.removeprefix("Bearer ").strip())
        if ":" in credentials:
            user, password = credentials.split(":", 1)
            return cls.basic(user, password)
        raise ConfigError(f"{ENV_AUTH_PARAM} must hold 'user:password' or 'Bearer <token>'")

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
            expr = self.override(name)
            if expr is not None and not expr.strip():
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
            return text(environ, name)

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
            if (expr := get(env)) is not None:
                values[f"query_{name}"] = expr
        if (custom := get(ENV_CUSTOM)) is not None:
            values["custom_query"] = custom
        return cls(**values)

    def override(self, name: str) -> str | None:
        """The operator's PromQL for query `name`, or None to use the default."""
        return self.custom_query if name == CUSTOM else getattr(self, f"query_{name}")


def _number(env: str, raw: str, part: str, allowed: str) -> float:
    try:
        value = float(part)
    except ValueError:
        raise ConfigError(f"{env}={raw!r} is not a number: allowed {allowed}") from None
    if not math.isfinite(value):
        raise ConfigError(f"{env}={raw!r} is not a number: allowed {allowed}")
    return value
