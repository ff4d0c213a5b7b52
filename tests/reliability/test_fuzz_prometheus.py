"""Prometheus answers, fuzzed (canned, through a requests transport adapter; no socket): `sample()`
always returns a MetricsView and a number only where the answer held a well-formed fresh sample.
Profiles and shared strategies: fuzzing.py.
"""

from __future__ import annotations

import io
import json
import logging
import math
from typing import Any
from urllib.parse import parse_qs

import pytest
import requests
import urllib3
from fuzzing import (
    NOW,
    fuzz,
    json_values,
    note_outcome,
)
from hypothesis import given
from hypothesis import strategies as st
from requests.adapters import BaseAdapter

from autoscaler.adapters.prometheus import MARKER_LABEL, PrometheusMetrics, PrometheusOptions
from autoscaler.model import MetricsView

PROM_URL = "http://prometheus.fuzz:9090"
STALENESS_S = 180.0
NODE_LABEL = "instance"
SCALAR_QUERIES = ("cluster_cpu", "cluster_mem")
KEYED_QUERIES = ("node_cpu", "node_mem")
MARKERS = (*SCALAR_QUERIES, *KEYED_QUERIES, "custom", "unschedulable")
MARKER_VALUES = (*MARKERS, *(f"{m}/freshness" for m in MARKERS), "", "CLUSTER_CPU")
NODE_NAMES = ("n0", "n1", "n2", "", "n0/x")
GOOD_VALUES = ("0", "0.42", "1", "0.999", "1e-3", "-0.5", "12345.678")
BAD_VALUES = ("NaN", "+Inf", "-Inf", "nan", "inf", "", " ", "abc", "0.4.2", "0x10", "1e999")
PROM_JSON = json_values(
    (*BAD_VALUES, *MARKER_VALUES, "success", "error", "vector", "scalar", "matrix"),
    ("metric", "value", MARKER_LABEL, NODE_LABEL, "status", "data", "resultType", "result"),
)


def _timestamps() -> st.SearchStrategy:
    """Freshness answers (the newest sample time, as a value string): fresh, stale, in the future, or junk."""
    fresh = st.floats(min_value=NOW - STALENESS_S + 1, max_value=NOW).map(repr)
    stale = st.floats(min_value=0, max_value=NOW - STALENESS_S - 1).map(repr)
    future = st.floats(min_value=NOW + 120, max_value=1e300).map(repr)
    return fresh | stale | future | st.sampled_from(BAD_VALUES) | PROM_JSON


@st.composite
def series(draw: st.DrawFn) -> Any:
    """One item of a vector result: usually right-shaped, with a marker, a node label and a value."""
    labels: Any = {}
    if draw(st.integers(min_value=0, max_value=7)):
        labels[MARKER_LABEL] = draw(st.sampled_from(MARKER_VALUES))
    if draw(st.booleans()):
        labels[NODE_LABEL] = draw(st.sampled_from(NODE_NAMES) | PROM_JSON)
    if draw(st.integers(min_value=0, max_value=9)) == 0:
        labels = draw(PROM_JSON | st.just([[MARKER_LABEL, "cluster_cpu"]]))
    freshness = str(labels.get(MARKER_LABEL, "")).endswith("/freshness") if isinstance(labels, dict) else False
    value = draw(_timestamps()) if freshness else draw(st.sampled_from(GOOD_VALUES + BAD_VALUES) | PROM_JSON)
    pair: Any = [draw(st.floats(min_value=NOW - 1e6, max_value=NOW + 1e6) | PROM_JSON), value]
    if draw(st.integers(min_value=0, max_value=9)) == 0:
        pair = draw(PROM_JSON | st.sampled_from(([NOW], [NOW, "0.5", "x"], "a5", {"1": "0.5"})))
    item: Any = {"metric": labels, "value": pair}
    if draw(st.integers(min_value=0, max_value=14)) == 0:
        item = draw(PROM_JSON)
    return item


@st.composite
def well_formed_series(draw: st.DrawFn) -> dict[str, Any]:
    """A right-shaped series for one of the queries, fresh, so that whole answers often are trustworthy."""
    marker = draw(st.sampled_from(MARKERS[:4]))
    fresh = draw(st.booleans())
    labels = {MARKER_LABEL: marker + ("/freshness" if fresh else "")}
    if marker in KEYED_QUERIES:
        labels[NODE_LABEL] = draw(st.sampled_from(NODE_NAMES[:3]))
    value = (
        draw(st.floats(min_value=NOW - STALENESS_S + 1, max_value=NOW).map(repr))
        if fresh
        else draw(st.sampled_from(GOOD_VALUES))
    )
    return {"metric": labels, "value": [NOW, value]}


@st.composite
def complete_bodies(draw: st.DrawFn) -> dict[str, Any]:
    """The answer a healthy Prometheus gives (every query, its freshness, three nodes), the freshness
    sometimes stale, then perhaps one series swapped for an odd one."""
    result = []
    for name in MARKERS[:4]:
        for node in NODE_NAMES[:3] if name in KEYED_QUERIES else (None,):
            extra = {} if node is None else {NODE_LABEL: node}
            value = draw(st.sampled_from(GOOD_VALUES))
            ts = draw(st.floats(min_value=NOW - 2 * STALENESS_S, max_value=NOW))
            result.append({"metric": {MARKER_LABEL: name, **extra}, "value": [NOW, value]})
            result.append({"metric": {MARKER_LABEL: f"{name}/freshness", **extra}, "value": [NOW, repr(ts)]})
    if draw(st.booleans()):
        result[draw(st.integers(min_value=0, max_value=len(result) - 1))] = draw(series())
    return {"status": "success", "data": {"resultType": "vector", "result": draw(st.permutations(result))}}


@st.composite
def vector_bodies(draw: st.DrawFn) -> Any:
    result: Any = draw(st.lists(well_formed_series() | series(), max_size=10))
    if draw(st.integers(min_value=0, max_value=9)) == 0:
        result = draw(PROM_JSON)
    data: Any = {
        "resultType": draw(st.sampled_from(("vector", "vector", "vector", "scalar", "matrix", "string")) | PROM_JSON),
        "result": result,
    }
    if draw(st.integers(min_value=0, max_value=9)) == 0:
        data = draw(PROM_JSON)
    body: Any = {"status": draw(st.sampled_from(("success", "success", "success", "error")) | PROM_JSON), "data": data}
    if draw(st.integers(min_value=0, max_value=4)) == 0:
        body["errorType"], body["error"] = draw(PROM_JSON), draw(PROM_JSON)
    if draw(st.integers(min_value=0, max_value=14)) == 0:
        body = draw(PROM_JSON)
    return body


@st.composite
def custom_bodies(draw: st.DrawFn) -> Any:
    kind = draw(st.sampled_from(("scalar", "vector", "other")))
    value = draw(st.sampled_from(GOOD_VALUES + BAD_VALUES) | PROM_JSON)
    if kind == "scalar":
        pair = [NOW, value] if draw(st.integers(min_value=0, max_value=5)) else draw(PROM_JSON)
        data: Any = {"resultType": "scalar", "result": pair}
    elif kind == "vector":
        items = draw(st.lists(st.just({"metric": {}, "value": [NOW, value]}) | series(), max_size=3))
        data = {"resultType": "vector", "result": items}
    else:
        data = draw(PROM_JSON)
    return {"status": draw(st.sampled_from(("success", "success", "error")) | PROM_JSON), "data": data}


TRANSPORT_ERRORS = (
    requests.exceptions.ConnectionError("refused"),
    requests.exceptions.ReadTimeout("slow"),
    requests.exceptions.ConnectTimeout("slow"),
    requests.exceptions.ChunkedEncodingError("cut"),
    requests.exceptions.ContentDecodingError("gzip"),
    requests.exceptions.TooManyRedirects("loop"),
    requests.exceptions.SSLError("bad certificate"),
)


@st.composite
def http_answers(draw: st.DrawFn, body: st.SearchStrategy) -> Any:
    """(status, raw body bytes), or a transport exception to raise."""
    choice = draw(st.integers(min_value=0, max_value=19))
    if choice == 0:
        return draw(st.sampled_from(TRANSPORT_ERRORS))
    status = 200 if choice > 3 else draw(st.sampled_from((200, 204, 302, 400, 401, 404, 422, 429, 500, 503)))
    if choice == 1:
        return status, draw(st.binary(max_size=64) | st.text(max_size=64).map(str.encode))
    return status, json.dumps(draw(body), allow_nan=True).encode()


CUSTOM_QUERY = "sum(queue_depth)"


class CannedAdapter(BaseAdapter):
    """A transport that answers the custom query with `custom` and every other query (the batch, or
    each query alone after a PromQL error) with `batch`; no socket."""

    def __init__(self, batch: Any, custom: Any) -> None:
        super().__init__()
        self.batch, self.custom = batch, custom
        self.sent: list[str] = []

    def send(self, request, stream=False, timeout=None, verify=True, cert=None, proxies=None):
        query = parse_qs(request.body or "").get("query", [""])[0]
        self.sent.append(query)
        answer = self.custom if query == CUSTOM_QUERY else self.batch
        if isinstance(answer, Exception):
            raise answer
        status, body = answer
        response = requests.Response()
        response.status_code = status
        # The adapter streams the body (to hold its deadline), so it reads the raw stream.
        response.raw = urllib3.HTTPResponse(io.BytesIO(body), status=status, preload_content=False)
        response.headers["content-type"] = "application/json"
        response.url = request.url
        response.request = request
        return response

    def close(self) -> None:
        pass


def prometheus(batch: Any, custom: Any = None) -> tuple[PrometheusMetrics, CannedAdapter]:
    """The adapter over canned answers; a custom query is configured when `custom` is given."""
    options = PrometheusOptions(
        url=PROM_URL,
        staleness_s=STALENESS_S,
        node_label=NODE_LABEL,
        retries=0,
        custom_query=CUSTOM_QUERY if custom is not None else None,
    )
    session = requests.Session()
    metrics = PrometheusMetrics(options, session=session)
    adapter = CannedAdapter(batch, custom)
    session.mount(PROM_URL + "/", adapter)  # in place of the retrying HTTPAdapter the constructor mounted
    return metrics, adapter


def _number(value: Any) -> float | None:
    """A sample value as Prometheus writes it (a string; a plain JSON number is tolerated) if finite."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    try:
        number = float(value)
    except (ValueError, OverflowError):
        return None
    return number if math.isfinite(number) else None


def _good_series(item: Any) -> tuple[dict[str, str], float] | None:
    """(labels, value) of a right-shaped vector item with a finite value; None for anything else."""
    if not isinstance(item, dict):
        return None
    labels = {} if item.get("metric") is None else item["metric"]  # a series without labels
    if not isinstance(labels, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in labels.items()):
        return None
    pair = item.get("value")
    if not isinstance(pair, list) or len(pair) != 2:
        return None
    value = _number(pair[1])
    return None if value is None else (labels, value)


def _success_data(answer: Any) -> dict[str, Any] | None:
    """The `data` of a 200 answer whose body says success; None for anything else."""
    if isinstance(answer, Exception) or answer[0] != 200:
        return None
    try:
        body = json.loads(answer[1])
    except ValueError:
        return None
    if not isinstance(body, dict) or body.get("status") != "success" or not isinstance(body.get("data"), dict):
        return None
    return body["data"]


def _trusted_vector(answer: Any) -> list[Any] | None:
    """The result list of a successful instant-vector answer; None when the answer as a whole is bad."""
    data = _success_data(answer)
    if data is None or data.get("resultType") != "vector" or not isinstance(data.get("result"), list):
        return None
    return data["result"]


def _fresh(ts: float) -> bool:
    return NOW - STALENESS_S <= ts <= NOW + 60


def expected_scalar(result: list[Any] | None, name: str) -> tuple[bool, float | None]:
    """(may the adapter give a number, and which one if it must): exactly one right-shaped series for
    `name` and exactly one right-shaped fresh freshness series."""
    if result is None:
        return False, None
    mine = [s for s in map(_good_series, result) if s and s[0].get(MARKER_LABEL) == name]
    fresh = [s for s in map(_good_series, result) if s and s[0].get(MARKER_LABEL) == f"{name}/freshness"]
    ok = len(mine) == 1 and len(fresh) == 1 and _fresh(fresh[0][1])
    whole = all(_good_series(item) for item in result)  # nothing odd anywhere: the adapter must use it
    return ok, (mine[0][1] if ok and whole else None)


def allowed_per_node(result: list[Any] | None, name: str) -> dict[str, set[float]]:
    """Node -> the values the adapter may report for it: from right-shaped series of `name` for a node
    that has a right-shaped fresh freshness series."""
    if result is None:
        return {}
    good = [s for s in map(_good_series, result) if s]
    fresh_nodes = {
        labels.get(NODE_LABEL) for labels, ts in good if labels.get(MARKER_LABEL) == f"{name}/freshness" and _fresh(ts)
    }
    allowed: dict[str, set[float]] = {}
    for labels, value in good:
        node = labels.get(NODE_LABEL)
        if labels.get(MARKER_LABEL) == name and node and node in fresh_nodes:
            allowed.setdefault(node, set()).add(value)
    return allowed


def expected_custom(answer: Any) -> float | None:
    data = _success_data(answer)
    if data is None:
        return None
    result = data.get("result")
    if data.get("resultType") == "scalar":
        return _number(result[1]) if isinstance(result, list) and len(result) == 2 else None
    if data.get("resultType") == "vector" and isinstance(result, list) and len(result) == 1:
        good = _good_series(result[0])
        return good[1] if good else None
    return None


@pytest.fixture(scope="module")
def quiet_prometheus():
    """The adapter logs a warning per unknown query; thousands of them only slow the run down."""
    from autoscaler.adapters.prometheus import metrics as prometheus_metrics

    log = logging.getLogger(prometheus_metrics.logger.name)
    level = log.level
    log.setLevel(logging.ERROR)
    yield
    log.setLevel(level)


@fuzz(1000)
@given(
    batch=http_answers(vector_bodies() | complete_bodies()),
    custom=st.none() | http_answers(custom_bodies()),
)
def test_prometheus_answers_give_numbers_only_from_well_formed_fresh_samples(quiet_prometheus, batch, custom):
    metrics, adapter = prometheus(batch, custom)
    view = metrics.sample(NOW)
    assert isinstance(view, MetricsView)
    assert adapter.sent.count(CUSTOM_QUERY) <= (custom is not None)
    assert len(adapter.sent) <= 6  # the batch, each of the four queries alone after a PromQL error, custom

    result = _trusted_vector(batch)
    for name in SCALAR_QUERIES:
        value = getattr(view, name)
        may, must = expected_scalar(result, name)
        if value is not None:
            assert may and type(value) is float and math.isfinite(value), f"{name}={value!r} from {batch!r}"
        if must is not None:
            assert value == must, f"{name}: {value!r}, expected {must!r} from {batch!r}"
    for name in KEYED_QUERIES:
        allowed = allowed_per_node(result, name)
        for node, value in getattr(view, name).items():
            assert node in allowed and value in allowed[node], f"{name}[{node}]={value!r} from {batch!r}"
            assert type(value) is float and math.isfinite(value)
    if custom is None:
        assert view.custom is None
    elif view.custom is not None:
        assert view.custom == expected_custom(custom), f"custom={view.custom!r} from {custom!r}"
    if not view.known:
        assert view.unknown_reason, "an unknown reading must say why"
    note_outcome(f"cluster_cpu {'known' if view.known else 'unknown'}, {len(view.node_cpu)} nodes known")


# --------------------------------------------------------------------------------------------------
# REGRESSIONS: shapes this fuzzing found breaking the adapter, each with its minimal example.


def _vector(result: Any) -> tuple[int, bytes]:
    return 200, json.dumps({"status": "success", "data": {"resultType": "vector", "result": result}}).encode()


def _cpu(value: Any, metric: Any = None) -> dict[str, Any]:
    return {"metric": {MARKER_LABEL: "cluster_cpu"} if metric is None else metric, "value": value}


_FRESH_CPU = {"metric": {MARKER_LABEL: "cluster_cpu/freshness"}, "value": [NOW, repr(NOW - 10)]}

PROMETHEUS_REGRESSIONS = [
    ("vector result true", _vector(True), None),
    ("vector result a string", _vector("abc"), None),
    ("vector item null", _vector([None]), None),
    ("metric [null]", _vector([_cpu([NOW, "0.5"], [None])]), None),
    ("metric a string", _vector([_cpu([NOW, "0.5"], "ab")]), None),
    ("metric as label pairs", _vector([_cpu([NOW, "0.5"], [[MARKER_LABEL, "cluster_cpu"]]), _FRESH_CPU]), None),
    ("value an object", _vector([_cpu({"1": "0.5"}), _FRESH_CPU]), None),
    ("value the string 'a5'", _vector([_cpu("a5"), _FRESH_CPU]), None),
    ("value [t, false]", _vector([_cpu([NOW, False]), _FRESH_CPU]), None),
    ("value [t, true]", _vector([_cpu([NOW, True]), _FRESH_CPU]), None),
    ("value [t, '0.5', 'x']", _vector([_cpu([NOW, "0.5", "x"]), _FRESH_CPU]), None),
    (
        "value a 400-digit integer",
        (
            200,
            b'{"status":"success","data":{"resultType":"vector","result":[{"metric":{"node_fleet_query":"cluster_cpu"},"value":[1,'
            + b"9" * 400
            + b"]}]}}",
        ),
        None,
    ),
    (
        "node label an integer",
        _vector([{"metric": {MARKER_LABEL: "node_cpu", NODE_LABEL: 5}, "value": [NOW, "0.5"]}]),
        None,
    ),
    (
        "freshness in the future",
        _vector(
            [_cpu([NOW, "0.5"]), {"metric": {MARKER_LABEL: "cluster_cpu/freshness"}, "value": [NOW, repr(NOW + 1e9)]}]
        ),
        None,
    ),
    ("deeply nested answer", (200, b"[" * 100_000 + b"]" * 100_000), None),
    (
        "custom scalar an object",
        _vector([]),
        (200, b'{"status":"success","data":{"resultType":"scalar","result":{"1":"2"}}}'),
    ),
    (
        "custom scalar [t, true]",
        _vector([]),
        (200, b'{"status":"success","data":{"resultType":"scalar","result":[1,true]}}'),
    ),
    (
        "custom vector [null]",
        _vector([]),
        (200, b'{"status":"success","data":{"resultType":"vector","result":[null]}}'),
    ),
    ("custom vector true", _vector([]), (200, b'{"status":"success","data":{"resultType":"vector","result":true}}')),
    (
        "custom vector metric []",
        _vector([]),
        (200, b'{"status":"success","data":{"resultType":"vector","result":[{"metric":[],"value":[1,"0"]}]}}'),
    ),
]


@pytest.mark.parametrize(
    ("batch", "custom"), [c[1:] for c in PROMETHEUS_REGRESSIONS], ids=[c[0] for c in PROMETHEUS_REGRESSIONS]
)
def test_regression_prometheus(batch, custom):
    metrics, _ = prometheus(batch, custom)
    view = metrics.sample(NOW)
    assert view.cluster_cpu is None and view.custom is None and not view.node_cpu, view
