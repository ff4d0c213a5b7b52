"""Judging Prometheus' answers (pure): a value that cannot be trusted is None ("unknown"), never zero.

The reason names the query: an HTTP or PromQL error, an empty answer, NaN or ±Inf, or a sample
older than PROMETHEUS_STALENESS_S before `now`. Prometheus itself returns a series up to its
lookback delta (5 minutes by default) after its last sample; the freshness query of each default
query (the `timestamp()` of the raw series behind it) tells a current sample from one that is
minutes old. An overridden query has no freshness query (the adapter cannot know which series are
behind it), so only Prometheus' lookback delta limits its age.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from autoscaler.adapters.prometheus.queries import DEMAND_RESOURCES, FRESHNESS_SUFFIX, Query, QueryError
from autoscaler.config.prometheus import MARKER_LABEL
from autoscaler.forecast import DemandHistory

FUTURE_TOLERANCE_S = 60.0
"""A freshness timestamp this far after `now` is impossible (queries evaluate at `now`): unknown."""
_MAX_LISTED = 5


@dataclass
class Outcome:
    """What one query's answer gave: its value, and why some or all of it is unknown."""

    value: Any
    """float, dict of key -> float, or None (unknown)."""
    reasons: list[str] = field(default_factory=list)


_Samples = list[tuple[dict[str, str], float]]


def failed(q: Query, reason: str) -> Outcome:
    return Outcome(None, [f"{q.name}: {reason}"])


def _samples(data: Mapping[str, Any]) -> list[tuple[dict[str, str], float]]:
    if data.get("resultType") != "vector":
        raise QueryError(f"expected an instant vector, got {data.get('resultType')!r}", query_level=True)
    result = data.get("result")
    if result is None:
        result = []
    if not isinstance(result, list):
        raise QueryError("malformed answer: result is not a list", query_level=False)
    found = []
    for item in result:
        metric = item.get("metric") if isinstance(item, Mapping) else None
        metric = {} if metric is None else metric
        if (
            not isinstance(item, Mapping)
            or not isinstance(metric, Mapping)
            or not all(isinstance(v, str) for v in metric.values())
        ):
            raise QueryError("malformed answer: a series is not {metric: {label: string}, value}", query_level=False)
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


def judge_vector(q: Query, data: Mapping[str, Any], now: float, staleness_s: float, *, marked: bool = True) -> Outcome:
    """`marked`: the answer is a batch whose series carry MARKER_LABEL; else all are `q`'s values."""
    try:
        samples = _samples(data)
    except QueryError as e:
        return failed(q, e.reason)
    values: _Samples = []
    fresh: _Samples = []
    for labels, value in samples:
        marker = labels.pop(MARKER_LABEL, None) if marked else q.name
        if marker == q.name:
            values.append((labels, value))
        elif marker == q.name + FRESHNESS_SUFFIX:
            fresh.append((labels, value))
    if not q.keys:
        return _judge_one(q, values, fresh, now, staleness_s)
    return _judge_keyed(q, values, fresh, now, staleness_s)


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


def _judge_one(q: Query, values: _Samples, fresh: _Samples, now: float, limit: float) -> Outcome:
    if q.freshness is not None:
        problem = _age_problem(fresh[0][1] if len(fresh) == 1 else None, now, limit)
        if problem is not None:
            return failed(q, problem)
    if not values:
        return failed(q, "empty result")
    if len(values) > 1:
        return failed(q, f"{len(values)} series where one was expected")
    value = values[0][1]
    problem = _number_problem(value)
    if problem is not None:
        return failed(q, problem)
    return Outcome(value)


def _judge_keyed(q: Query, values: _Samples, fresh: _Samples, now: float, limit: float) -> Outcome:
    if q.global_freshness and q.freshness is not None:
        problem = _age_problem(fresh[0][1] if len(fresh) == 1 else None, now, limit)
        if problem is not None:
            return failed(q, problem)
    if not values:
        return Outcome({}) if q.empty_ok else Outcome({}, [f"{q.name}: empty result"])
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
        return Outcome(None, reasons)
    return Outcome(found, reasons)


def judge_custom(q: Query, data: Mapping[str, Any]) -> Outcome:
    kind = data.get("resultType")
    if kind == "scalar":
        value = _value(data.get("result"))
    elif kind == "vector":
        try:
            result = _samples(data)
        except QueryError as e:
            return failed(q, e.reason)
        if not result:
            return failed(q, "empty result")
        if len(result) > 1:
            return failed(q, f"{len(result)} series where one was expected (aggregate them, e.g. sum(...))")
        value = result[0][1]
    else:
        return failed(q, f"expected a scalar or a one-sample vector, got {kind!r}")
    problem = _number_problem(value)
    return failed(q, problem) if problem is not None else Outcome(value)


def judge_demand(data: Mapping[str, Any], now: float, step_s: float) -> DemandHistory:
    """The forecast's history from `queries.demand_expr`'s range answer: each point of a series
    marked `<resource>@<lag>` is the demand at its time less the lag. A time is kept when every
    resource has a finite value there and it is not after `now` (a lag-0 point past `now` is
    Prometheus' lookback repeating the newest sample). Raises QueryError on a malformed answer."""
    if data.get("resultType") != "matrix":
        raise QueryError(f"expected a range matrix, got {data.get('resultType')!r}", query_level=True)
    result = data.get("result") or []
    if not isinstance(result, list):
        raise QueryError("malformed answer: result is not a list", query_level=False)
    factors = dict(DEMAND_RESOURCES)
    by_time: dict[float, dict[str, float]] = {}
    for item in result:
        metric = item.get("metric") if isinstance(item, Mapping) else None
        values = item.get("values") if isinstance(item, Mapping) else None
        if not isinstance(metric, Mapping) or not isinstance(values, list):
            raise QueryError("malformed answer: a series is not {metric, values}", query_level=False)
        resource, _, lag = str(metric.get(MARKER_LABEL, "")).partition("@")
        if resource not in factors or not lag.isdigit():
            continue
        for pair in values:
            t, value = _time(pair), _value(pair)
            if t is None or not math.isfinite(value) or t - float(lag) > now:
                continue
            by_time.setdefault(t - float(lag), {})[resource] = value * factors[resource]
    samples = tuple((t, v["cpu"], v["memory"]) for t, v in sorted(by_time.items()) if v.keys() == factors.keys())
    return DemandHistory(samples, step_s)


def _time(pair: object) -> float | None:
    if not isinstance(pair, list) or len(pair) != 2 or isinstance(pair[0], bool):
        return None
    t = pair[0]
    return float(t) if isinstance(t, int | float) and math.isfinite(t) else None
