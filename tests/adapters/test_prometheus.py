"""The Prometheus adapter against a real Prometheus server (the Debian package `prometheus`).

The module fixture writes 30 minutes of history (node-exporter CPU counters and memory gauges for
three nodes with known idle shares, a fourth node whose series stop four minutes early,
kube-state-metrics series for pending and running pods, and custom metrics), backfills it with
`promtool tsdb create-blocks-from openmetrics`, and starts Prometheus on a free 127.0.0.1 port.
Every default query is checked against the numbers written; the faults (server down, 500, too
slow, bad PromQL, stale, NaN, empty) against a closed port, tiny misbehaving HTTP servers and the
real server. Sockets: 127.0.0.1 only.
"""

from __future__ import annotations

import base64
import datetime
import logging
import re
import tempfile
import time
from pathlib import Path

import pytest
import requests
from prom_history import (
    EXPECTED_CLUSTER_CPU,
    EXPECTED_CLUSTER_MEM,
    EXPECTED_NODE_CPU,
    EXPECTED_NODE_MEM,
    IDLE,
    QUEUE_DEPTH,
    TOLERANCE,
    Prom,
)
from prom_server import misbehaving_server

from autoscaler.adapters.prometheus import (
    OVERRIDE_ENV,
    PrometheusAuth,
    PrometheusMetrics,
    PrometheusOptions,
    default_queries,
    effective_queries,
)
from autoscaler.config import ConfigError
from autoscaler.model import MetricsView
from node_fleet.stack.prometheus import closed_port_url


class CountingSession(requests.Session):
    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def request(self, *args, **kwargs):  # type: ignore[override]
        self.calls += 1
        return super().request(*args, **kwargs)


def _approx(mapping: dict[str, float]) -> dict[str, object]:
    return {k: pytest.approx(v, abs=TOLERANCE) for k, v in mapping.items()}


def reasons(view: MetricsView) -> list[str]:
    return (view.unknown_reason or "").split("; ") if view.unknown_reason else []


# --------------------------------------------------------------------------------------------
# Every default query against the history


def test_every_default_query_matches_the_history(prom: Prom) -> None:
    metrics = PrometheusMetrics(prom.options(custom_query='sum(queue_depth{queue="jobs"})'))
    reading = metrics.read(prom.now)
    view = reading.view

    assert view.cluster_cpu == pytest.approx(EXPECTED_CLUSTER_CPU, abs=TOLERANCE)
    assert view.node_cpu == _approx(EXPECTED_NODE_CPU)
    assert view.cluster_mem == pytest.approx(EXPECTED_CLUSTER_MEM, abs=TOLERANCE)
    assert view.node_mem == _approx(EXPECTED_NODE_MEM)
    assert view.custom == pytest.approx(QUEUE_DEPTH)
    assert reading.unschedulable == _approx({"default/web-1": 605.0, "default/web-2": 125.0})
    assert reading.unschedulable_reason is None
    # One batch for the vector queries, one POST for the custom query.
    assert reading.round_trips == 2
    # node-d stopped reporting 4 minutes ago: left out of the cluster figures, unknown per node.
    assert view.known
    assert view.unknown_reason is not None
    assert "node_cpu: node-d stale: newest sample 245s old (limit 180s)" in view.unknown_reason
    assert "node_mem: node-d stale" in view.unknown_reason


def test_sample_is_one_round_trip_and_agrees_with_read(prom: Prom) -> None:
    session = CountingSession()
    metrics = PrometheusMetrics(prom.options(), session=session)
    view = metrics.sample(prom.now)
    assert session.calls == 1
    assert view.custom is None  # no custom query configured: nothing asked, nothing to report
    assert "custom" not in (view.unknown_reason or "")
    assert view == metrics.read(prom.now).view


def test_unschedulable_alone(prom: Prom) -> None:
    metrics = PrometheusMetrics(prom.options())
    assert metrics.unschedulable(prom.now) == _approx({"default/web-1": 605.0, "default/web-2": 125.0})
    # Ten minutes after the history ends kube-state-metrics has said nothing for that long: the
    # answer is unknown, not "no pod is waiting".
    assert metrics.unschedulable(prom.now + 600) is None


def test_unschedulable_override_and_its_errors(prom: Prom) -> None:
    running = (
        "max by (namespace, pod) (time() - kube_pod_created)"
        ' and on (namespace, pod) kube_pod_status_phase{phase="Running"} == 1'
    )
    assert PrometheusMetrics(prom.options(query_unschedulable=running)).unschedulable(prom.now) == _approx(
        {"default/api-0": 1705.0}
    )
    # An override that finds nothing means none: it has no freshness query to say otherwise.
    nothing = PrometheusMetrics(prom.options(query_unschedulable="kube_pod_status_unschedulable > 1"))
    assert nothing.unschedulable(prom.now) == {}
    reading = PrometheusMetrics(prom.options(query_unschedulable="sum by (pod) (kube_pod_created")).read(prom.now)
    assert reading.unschedulable is None
    # After the batch was refused, each query went alone and overrides as written: 1:31 is the end of it.
    assert reading.unschedulable_reason == (
        'unschedulable: bad_data: invalid parameter "query": 1:31: parse error: unclosed left parenthesis'
    )
    assert reading.view.cluster_cpu == pytest.approx(EXPECTED_CLUSTER_CPU, abs=TOLERANCE)


def test_node_label_is_configurable(prom: Prom) -> None:
    view = PrometheusMetrics(prom.options(node_label="nodename")).sample(prom.now)
    assert view.node_cpu == _approx({f"{n}.internal": v for n, v in EXPECTED_NODE_CPU.items()})
    assert view.node_mem == _approx({f"{n}.internal": v for n, v in EXPECTED_NODE_MEM.items()})


def test_custom_query_may_answer_a_scalar(prom: Prom) -> None:
    view = PrometheusMetrics(prom.options(custom_query="scalar(max(queue_depth))")).sample(prom.now)
    assert view.custom == pytest.approx(QUEUE_DEPTH)


def test_latest_value_is_used_not_an_average(prom: Prom) -> None:
    # Eleven minutes before the end, 90% of memory was available everywhere, node-d included.
    view = PrometheusMetrics(prom.options()).sample(prom.end - 660)
    assert view.cluster_mem == pytest.approx(0.1, abs=TOLERANCE)
    assert view.node_mem == _approx({n: 0.1 for n in IDLE})


# --------------------------------------------------------------------------------------------
# Unknown, never zero: faults from the real server


def test_everything_stale_is_unknown(prom: Prom) -> None:
    # 200 s after the last sample: Prometheus still answers (lookback 5 min), the adapter refuses.
    reading = PrometheusMetrics(prom.options()).read(prom.end + 200)
    view = reading.view
    assert (view.cluster_cpu, view.cluster_mem, dict(view.node_cpu), dict(view.node_mem)) == (None, None, {}, {})
    assert not view.known
    reason = view.unknown_reason or ""
    assert "cluster_cpu: stale: newest sample 200s old (limit 180s)" in reason
    assert "cluster_mem: stale" in reason
    assert "node_cpu: node-a stale" in reason
    assert "node_mem: node-c stale" in reason
    assert reading.unschedulable is None
    assert reading.unschedulable_reason == "unschedulable: stale: newest sample 200s old (limit 180s)"


def test_staleness_limit_is_configurable(prom: Prom) -> None:
    view = PrometheusMetrics(prom.options(staleness_s=300)).sample(prom.now)
    # node-d is 245 s behind: within a 300 s limit, so it counts again (with its partial-window rate).
    assert set(view.node_cpu) == set(IDLE)
    assert view.cluster_mem == pytest.approx(1 - (2 + 6 + 8 + 4) / (8 + 8 + 16 + 4), abs=TOLERANCE)


def test_bad_promql_override_names_the_query_and_spares_the_others(prom: Prom) -> None:
    session = CountingSession()
    options = prom.options(query_node_mem="max by (instance) (node_memory_MemAvailable_bytes", custom_query="1")
    view = PrometheusMetrics(options, session=session).sample(prom.now)
    assert view.node_mem == {}
    # Asked alone and as written, the error points into the operator's own PromQL.
    assert reasons(view) == [
        "node_cpu: node-d stale: newest sample 245s old (limit 180s)",
        'node_mem: bad_data: invalid parameter "query": 1:50: parse error: unclosed left parenthesis',
    ]
    assert view.cluster_cpu == pytest.approx(EXPECTED_CLUSTER_CPU, abs=TOLERANCE)
    assert view.node_cpu == _approx(EXPECTED_NODE_CPU)
    assert view.cluster_mem == pytest.approx(EXPECTED_CLUSTER_MEM, abs=TOLERANCE)
    assert view.custom == 1.0
    # The refused batch, then each of the four view queries alone, then the custom query.
    assert session.calls == 1 + 4 + 1


def test_execution_error_is_unknown(prom: Prom) -> None:
    # Two series per instance on the right side: Prometheus refuses the one-to-one match (422).
    options = prom.options(query_cluster_mem="node_memory_MemTotal_bytes / on (job) node_memory_MemAvailable_bytes")
    view = PrometheusMetrics(options).sample(prom.now)
    assert view.cluster_mem is None
    assert any(r.startswith("cluster_mem: execution: found duplicate series") for r in reasons(view))
    assert view.cluster_cpu == pytest.approx(EXPECTED_CLUSTER_CPU, abs=TOLERANCE)


@pytest.mark.parametrize(
    ("changes", "field", "reason"),
    [
        pytest.param({"custom_query": "queue_latency_seconds"}, "custom", "custom: NaN", id="NaN series"),
        pytest.param({"query_cluster_cpu": "vector(0/0)"}, "cluster_cpu", "cluster_cpu: NaN", id="NaN value"),
        pytest.param({"query_cluster_mem": "vector(1/0)"}, "cluster_mem", "cluster_mem: +Inf", id="Inf value"),
        pytest.param(
            {"query_cluster_cpu": "no_such_metric"}, "cluster_cpu", "cluster_cpu: empty result", id="empty cluster"
        ),
        pytest.param({"custom_query": "no_such_metric"}, "custom", "custom: empty result", id="empty custom"),
        pytest.param(
            {"custom_query": "queue_depth"},
            "custom",
            "custom: 2 series where one was expected (aggregate them, e.g. sum(...))",
            id="custom with two series",
        ),
        pytest.param(
            {"query_cluster_cpu": "node_memory_MemTotal_bytes"},
            "cluster_cpu",
            "cluster_cpu: 4 series where one was expected",
            id="cluster override per node",
        ),
    ],
)
def test_untrustworthy_answers_are_unknown(prom: Prom, changes: dict, field: str, reason: str) -> None:
    view = PrometheusMetrics(prom.options(**changes)).sample(prom.now)
    assert getattr(view, field) is None
    assert reason in reasons(view)


def test_nan_per_node_drops_those_nodes(prom: Prom) -> None:
    options = prom.options(query_node_mem="max by (instance) (node_memory_MemAvailable_bytes) * (0/0)")
    view = PrometheusMetrics(options).sample(prom.now)
    assert view.node_mem == {}
    assert "node_mem: node-a NaN" in (view.unknown_reason or "")
    assert view.node_cpu == _approx(EXPECTED_NODE_CPU)


def test_empty_per_node_answer_is_unknown(prom: Prom) -> None:
    view = PrometheusMetrics(prom.options(query_node_cpu="max by (instance) (no_such_metric)")).sample(prom.now)
    assert view.node_cpu == {}
    assert "node_cpu: empty result" in (view.unknown_reason or "")


# --------------------------------------------------------------------------------------------
# Unknown, never zero: transport faults


def _all_unknown(view: MetricsView) -> None:
    assert (view.cluster_cpu, view.cluster_mem, view.custom) == (None, None, None)
    assert (dict(view.node_cpu), dict(view.node_mem)) == ({}, {})
    assert not view.known


def test_server_down_is_unknown() -> None:
    options = PrometheusOptions(url=closed_port_url(), retries=2, backoff_s=0.05, custom_query="vector(1)")
    session = CountingSession()
    started = time.monotonic()
    view = PrometheusMetrics(options, session=session).sample(time.time())
    assert time.monotonic() - started < 3
    _all_unknown(view)
    names = ("cluster_cpu", "node_cpu", "cluster_mem", "node_mem", "custom")
    assert reasons(view) == [f"{name}: cannot connect (after 2 retries)" for name in names]
    assert session.calls == 1  # the custom query is not tried once the server is known to be down


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        pytest.param(b'{"status":"error","errorType":"internal","error":"boom"}', "(internal: boom)", id="prometheus"),
        pytest.param(b"<html>500 Internal Server Error</html>", "(no error message)", id="proxy without htpasswd"),
    ],
)
def test_server_error_is_retried_then_unknown(body: bytes, detail: str) -> None:
    with misbehaving_server(500, body=body) as server:
        options = PrometheusOptions(url=server.url, retries=2, backoff_s=0.05)
        view = PrometheusMetrics(options).sample(time.time())
        assert len(server.requests) == 3  # the first try and two retries
        assert all(method == "POST" and path == "/api/v1/query" for method, path, _ in server.requests)
    _all_unknown(view)
    assert (view.unknown_reason or "").startswith(f"cluster_cpu: HTTP 500 after 2 retries {detail}; node_cpu: HTTP 500")


def test_slower_than_the_read_timeout_is_unknown() -> None:
    with misbehaving_server(200, delay_s=2.0) as server:
        options = PrometheusOptions(url=server.url, connect_timeout_s=1, read_timeout_s=0.3)
        started = time.monotonic()
        view = PrometheusMetrics(options).sample(time.time())
        elapsed = time.monotonic() - started
        assert len(server.requests) == 1  # a slow server is not asked again
    assert elapsed < 1.5
    _all_unknown(view)
    assert (view.unknown_reason or "").startswith("cluster_cpu: no answer within the read timeout (0.3s)")


def test_a_dripping_answer_is_cut_at_the_deadline() -> None:
    """Each byte comes well within the read timeout, the whole answer never would: the deadline of the
    cycle's requests ends it, and the metrics are unknown, never zero."""
    answer = b'{"status":"success","data":{"resultType":"vector","result":[]}}' + b" " * 400
    with misbehaving_server(200, body=answer, drip_s=0.05) as server:
        options = PrometheusOptions(url=server.url, read_timeout_s=1, deadline_s=1.0, custom_query="vector(1)")
        started = time.monotonic()
        view = PrometheusMetrics(options).sample(time.time())
        elapsed = time.monotonic() - started
        assert len(server.requests) == 1, "past the deadline nothing else is asked"
    assert 1.0 <= elapsed < 2.5, elapsed  # the full answer would take 23 s
    _all_unknown(view)
    names = ("cluster_cpu", "node_cpu", "cluster_mem", "node_mem", "custom")
    reason = "no answer within the deadline of all this cycle's requests (1s)"
    assert reasons(view) == [f"{name}: {reason}" for name in names]


def test_the_deadline_spans_the_cycles_requests() -> None:
    """The batch answers within the deadline but uses most of it; the custom query, asked next, gets
    only what is left, and is unknown for the deadline."""
    with misbehaving_server(200, body=EMPTY_VECTOR, delay_s=0.4) as server:
        options = PrometheusOptions(url=server.url, read_timeout_s=5, deadline_s=0.6, custom_query="vector(1)")
        started = time.monotonic()
        view = PrometheusMetrics(options).sample(time.time())
        elapsed = time.monotonic() - started
        assert len(server.requests) == 2
    assert elapsed < 1.2, elapsed
    assert view.custom is None
    assert "custom: no answer within the deadline of all this cycle's requests (0.6s)" in reasons(view)


def test_unauthorised_is_unknown() -> None:
    with misbehaving_server(401, body=b"<html>401 Authorization Required</html>") as server:
        view = PrometheusMetrics(PrometheusOptions(url=server.url)).sample(time.time())
        assert len(server.requests) == 1  # 4xx is not retried
    _all_unknown(view)
    assert (view.unknown_reason or "").startswith("cluster_cpu: HTTP 401 (no error message)")


# --------------------------------------------------------------------------------------------
# Credentials and TLS: sent, and never shown

EMPTY_VECTOR = b'{"status":"success","data":{"resultType":"vector","result":[]}}'
TOKEN = "tok-3f9a-never-shown"
PASSWORD = "pw-77c1-never-shown"


@pytest.mark.parametrize(
    ("auth", "header"),
    [
        pytest.param(PrometheusAuth.bearer(TOKEN), f"Bearer {TOKEN}", id="bearer"),
        pytest.param(
            PrometheusAuth.basic("node-fleet", PASSWORD),
            "Basic " + base64.b64encode(f"node-fleet:{PASSWORD}".encode()).decode(),
            id="basic",
        ),
    ],
)
def test_credentials_are_sent_and_never_shown(
    auth: PrometheusAuth, header: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with misbehaving_server(200, body=EMPTY_VECTOR) as server:
        metrics = PrometheusMetrics(PrometheusOptions(url=server.url), auth=auth)
        view = metrics.sample(time.time())
        assert [headers.get("Authorization") for _, _, headers in server.requests] == [header]
    # An empty answer is unknown too (and says so), never zero.
    _all_unknown(view)
    assert "cluster_cpu: no current sample" in (view.unknown_reason or "")
    shown = " ".join([repr(auth), str(auth), repr(metrics), view.unknown_reason or "", caplog.text])
    assert TOKEN not in shown and PASSWORD not in shown
    assert repr(auth) in ("PrometheusAuth(bearer)", "PrometheusAuth(basic)")


def test_credentials_stay_out_of_errors(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    metrics = PrometheusMetrics(PrometheusOptions(url=closed_port_url(), retries=0), auth=PrometheusAuth.bearer(TOKEN))
    view = metrics.sample(time.time())
    assert TOKEN not in (view.unknown_reason or "") + caplog.text


@pytest.mark.parametrize(
    "kwargs",
    [
        pytest.param({}, id="nothing"),
        pytest.param({"bearer_token": "t", "username": "u", "password": "p"}, id="both kinds"),
        pytest.param({"username": "u"}, id="no password"),
        pytest.param({"bearer_token": ""}, id="empty token"),
    ],
)
def test_auth_must_be_one_kind(kwargs: dict) -> None:
    with pytest.raises(ValueError, match="PrometheusAuth") as caught:
        PrometheusAuth(**kwargs)
    assert "'p'" not in str(caught.value) and "'t'" not in str(caught.value)


@pytest.mark.parametrize(
    ("desc", "secret", "expected"),
    [
        ("a bearer token", "Bearer abc.def ", PrometheusAuth.bearer("abc.def")),
        ("user and password, split at the first colon", "fleet:pa:ss", PrometheusAuth.basic("fleet", "pa:ss")),
    ],
)
def test_auth_from_the_ssm_secret(desc: str, secret: str, expected: PrometheusAuth) -> None:
    assert PrometheusAuth.from_secret(secret) == expected, desc


def test_auth_from_a_secret_of_neither_kind_names_the_variable() -> None:
    with pytest.raises(ConfigError, match=r"^PROMETHEUS_AUTH_PARAM must hold") as caught:
        PrometheusAuth.from_secret(f"{TOKEN}nocolon")
    assert TOKEN not in str(caught.value)


def _self_signed(tmp_path: Path) -> tuple[Path, Path, str]:
    # cryptography comes with moto (a dev dependency).
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "prometheus.test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_text(pem)
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_file, key_file, pem


def test_ca_bundle_is_trusted_and_nothing_else(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where the adapter writes the CA file
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    cert_file, key_file, pem = _self_signed(tmp_path)
    with misbehaving_server(200, body=EMPTY_VECTOR, tls=(cert_file, key_file)) as server:
        options = PrometheusOptions(url=server.url, retries=0)
        trusted = PrometheusMetrics(options, ca_pem=pem).sample(time.time())
        assert len(server.requests) == 1
        untrusted = PrometheusMetrics(options).sample(time.time())
        assert len(server.requests) == 1
    assert "cluster_cpu: no current sample" in (trusted.unknown_reason or "")  # it got an answer
    assert (untrusted.unknown_reason or "").startswith("cluster_cpu: TLS handshake or certificate verification failed")
    with pytest.raises(ValueError, match="not a PEM"):
        PrometheusMetrics(options, ca_pem="not a certificate")


# --------------------------------------------------------------------------------------------
# Options from the environment


def test_from_env_defaults() -> None:
    options = PrometheusOptions.from_env({"PROMETHEUS_URL": "http://10.0.1.5:30090", "CUSTOM_METRIC_QUERY": ""})
    assert options == PrometheusOptions(url="http://10.0.1.5:30090")
    assert (options.connect_timeout_s, options.read_timeout_s, options.staleness_s) == (2.0, 5.0, 180.0)
    assert (options.rate_window, options.node_label, options.retries) == ("5m", "instance", 2)
    assert options.custom_query is None
    assert set(effective_queries(options)) == {"cluster_cpu", "node_cpu", "cluster_mem", "node_mem", "unschedulable"}


def test_from_env_reads_every_variable() -> None:
    env = {
        "PROMETHEUS_URL": " https://prometheus.example:9091/prom/ ",
        "PROMETHEUS_TIMEOUT_S": "1.5, 4",
        "PROMETHEUS_STALENESS_S": "120",
        "PROMETHEUS_RATE_WINDOW": "2m",
        "PROMETHEUS_NODE_LABEL": "node",
        "PROMETHEUS_RETRIES": "1",
        "PROMETHEUS_BACKOFF_S": "0.5",
        "PROMETHEUS_DEADLINE_S": "20",
        "CUSTOM_METRIC_QUERY": "sum(queue_depth)",
        **{env: f"vector({i})" for i, env in enumerate(OVERRIDE_ENV.values())},
    }
    options = PrometheusOptions.from_env(env)
    assert options.url == "https://prometheus.example:9091/prom/"
    assert (options.connect_timeout_s, options.read_timeout_s) == (1.5, 4.0)
    assert (options.staleness_s, options.rate_window, options.node_label) == (120.0, "2m", "node")
    assert (options.retries, options.backoff_s, options.deadline_s) == (1, 0.5, 20.0)
    queries = effective_queries(options)
    assert {name: q.expr for name, q in queries.items()} == {
        "cluster_cpu": "vector(0)",
        "node_cpu": "vector(1)",
        "cluster_mem": "vector(2)",
        "node_mem": "vector(3)",
        "unschedulable": "vector(4)",
        "custom": "sum(queue_depth)",
    }
    assert all(q.freshness is None for q in queries.values())  # overrides own their staleness
    assert (
        PrometheusOptions.from_env({"PROMETHEUS_URL": "http://p", "PROMETHEUS_TIMEOUT_S": "3"}).connect_timeout_s == 3
    )


def test_default_queries_use_the_window_the_limit_and_the_label() -> None:
    queries = {
        q.name: q for q in default_queries(PrometheusOptions(url="http://p", rate_window="2m", node_label="node"))
    }
    assert "[2m]" in queries["node_cpu"].expr and "by (node)" in queries["node_cpu"].expr
    assert "<= 180)" in queries["cluster_cpu"].expr
    assert queries["node_mem"].keys == ("node",)
    assert queries["unschedulable"].keys == ("namespace", "pod")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        pytest.param({}, "PROMETHEUS_URL is required", id="no url"),
        pytest.param({"PROMETHEUS_URL": "  "}, "PROMETHEUS_URL is required", id="blank url"),
        pytest.param({"PROMETHEUS_URL": "10.0.1.5:30090"}, "PROMETHEUS_URL must be an http", id="no scheme"),
        pytest.param(
            {"PROMETHEUS_URL": "http://user:secret@10.0.1.5"}, "PROMETHEUS_URL must not carry credentials", id="creds"
        ),
        pytest.param({"PROMETHEUS_TIMEOUT_S": "fast"}, "PROMETHEUS_TIMEOUT_S='fast' is not a number", id="timeout"),
        pytest.param({"PROMETHEUS_TIMEOUT_S": "1,2,3"}, "PROMETHEUS_TIMEOUT_S='1,2,3' is not valid", id="3 timeouts"),
        pytest.param({"PROMETHEUS_TIMEOUT_S": "0"}, "PROMETHEUS_TIMEOUT_S=0,0 is out of range", id="zero timeout"),
        pytest.param({"PROMETHEUS_STALENESS_S": "0"}, "PROMETHEUS_STALENESS_S=0 is out of range", id="staleness"),
        pytest.param({"PROMETHEUS_STALENESS_S": "nan"}, "PROMETHEUS_STALENESS_S='nan' is not a number", id="nan"),
        pytest.param({"PROMETHEUS_RATE_WINDOW": "5"}, "PROMETHEUS_RATE_WINDOW='5' is not a PromQL duration", id="win"),
        pytest.param(
            {"PROMETHEUS_NODE_LABEL": "k8s-node"}, "PROMETHEUS_NODE_LABEL='k8s-node' is not a label", id="lbl"
        ),
        pytest.param({"PROMETHEUS_RETRIES": "many"}, "PROMETHEUS_RETRIES='many' is not a valid int", id="retries"),
        pytest.param({"PROMETHEUS_RETRIES": "11"}, "PROMETHEUS_RETRIES=11 is out of range: allowed 0..10", id="11"),
        pytest.param({"PROMETHEUS_BACKOFF_S": "-1"}, "PROMETHEUS_BACKOFF_S=-1 is out of range", id="backoff"),
        pytest.param({"PROMETHEUS_DEADLINE_S": "0"}, "PROMETHEUS_DEADLINE_S=0 is out of range", id="deadline"),
        pytest.param({"PROMETHEUS_DEADLINE_S": "61"}, "PROMETHEUS_DEADLINE_S=61 is out of range", id="deadline 61"),
    ],
)
def test_from_env_errors_name_the_variable(env: dict[str, str], message: str) -> None:
    environ = {"PROMETHEUS_URL": "http://10.0.1.5:30090", **env} if "PROMETHEUS_URL" not in env and env else env
    with pytest.raises(ConfigError, match="^" + re.escape(message)) as caught:
        PrometheusOptions.from_env(environ)
    assert "secret" not in str(caught.value)


def test_blank_override_is_refused_when_built_directly() -> None:
    with pytest.raises(ConfigError, match="PROMETHEUS_QUERY_NODE_MEM is blank"):
        PrometheusOptions(url="http://p", query_node_mem=" ")
