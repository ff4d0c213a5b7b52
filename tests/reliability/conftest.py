"""Fixtures of the reliability suite's stack tests: test_concurrency, test_faults and test_security.

(test_fuzz_* and test_supply_chain use none of this: every fixture here is requested by name, none is
autouse, and nothing here changes how other files are collected.)

- `stack`: one EmbeddedStack per test module (moto's server, the fake Kubernetes API server with
  simulated kubelets, a real Prometheus), stopped at the module's end: moto's backends are
  process-wide, and other modules here (test_fuzz_events) use `mock_aws`, which resets them, so no stack
  may outlive its module. Built with CANARY secrets: every secret the functions read
  from SSM holds the string CANARY. The stack draws its secrets from `secrets.token_urlsafe` (the K8s
  API token the fake API server checks, the webhook HMAC key, Prometheus' basic-auth password); that
  name is swapped for the duration of start() only, so the API server, Prometheus' web config and
  SSM all agree on the canary values. The two CA parameters, which the stack leaves unset, are
  added: a PEM that carries the canary, named by K8S_CA_PARAM and PROMETHEUS_CA_PARAM (both URLs
  are plain http on loopback, so the CAs are read, validated as PEM and handed to the clients,
  never used for a handshake).
- `cluster`: a freshly seeded cluster on that stack (`EmbeddedStack.reset()`: a K3s server node and
  two Ready workers), the functions' environment in os.environ, and cold handlers (no cached wiring:
  each test starts as a new Lambda container). Returns a `stack_driver.Cluster`.
- `prom_proxy`: an HTTP proxy in front of the real Prometheus that can delay, fail (5xx), answer
  NaN, or replay an old answer (stale).
- `kit`: this module's constants and helpers (CANARY, the event builders...). The test modules take
  them from this fixture rather than with `from conftest import ...`: every test directory has a
  conftest.py, and which one the name `conftest` means depends on what pytest imported last.
  (The driver and the event builders are tests/stack_driver.py's, shared with tests/integration.)

The tests are skipped, saying why, when Prometheus is not installed (CI installs it).
"""

from __future__ import annotations

import contextlib
import json
import secrets
import threading
import time
import types
from collections.abc import Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlencode

import pytest
import requests

from node_fleet.stack import stack as stack_module
from node_fleet.stack.prometheus import INSTALL_HINT, binaries
from node_fleet.stack.stack import EmbeddedStack
from stack_driver import (
    BASE_SETTINGS,
    ROOT,
    Cluster,
    alarm_event,
    codes,
    context,
    load_event,
    manual_event,
    seeded,
    tick_event,
)

CANARY = f"nfcanary{secrets.token_hex(6)}"
"""In every secret parameter; must never appear in a log line or a response."""
K8S_CA_PARAM = "/node-fleet/k8s-ca"
PROMETHEUS_CA_PARAM = "/node-fleet/prometheus-ca"
CANARY_PEM = f"-----BEGIN CERTIFICATE-----\nMIIB{CANARY}ca\n-----END CERTIFICATE-----\n"

SETTINGS = {**BASE_SETTINGS, "K8S_CA_PARAM": K8S_CA_PARAM, "PROMETHEUS_CA_PARAM": PROMETHEUS_CA_PARAM}


class _CanarySecrets:
    """Stands in for the `secrets` module inside node_fleet.stack.stack while the stack starts."""

    def __init__(self) -> None:
        self.issued: list[str] = []

    def token_urlsafe(self, nbytes: int | None = None) -> str:
        value = f"{CANARY}x{len(self.issued)}{secrets.token_hex(6)}"
        self.issued.append(value)
        return value


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedStack]:
    if binaries() is None:
        pytest.skip(f"the reliability stack tests run a real Prometheus: {INSTALL_HINT}")
    embedded = EmbeddedStack(workers=2, boot_delay_s=1.0, settings=SETTINGS, workdir=tmp_path_factory.mktemp("stack"))
    canaries = _CanarySecrets()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(stack_module, "secrets", canaries)
        embedded.start()
    try:
        # Seeded again by every reset(), with the others.
        embedded.secrets[K8S_CA_PARAM] = CANARY_PEM
        embedded.secrets[PROMETHEUS_CA_PARAM] = CANARY_PEM
        for name in (K8S_CA_PARAM, PROMETHEUS_CA_PARAM):
            embedded.clients["ssm"].put_parameter(Name=name, Value=CANARY_PEM, Type="SecureString", Overwrite=True)
        yield embedded
    finally:
        embedded.stop()


@pytest.fixture(scope="session")
def kit() -> types.SimpleNamespace:
    """This module's constants and helpers, for the test modules (see the module docstring)."""
    return types.SimpleNamespace(
        CANARY=CANARY,
        CANARY_PEM=CANARY_PEM,
        K8S_CA_PARAM=K8S_CA_PARAM,
        PROMETHEUS_CA_PARAM=PROMETHEUS_CA_PARAM,
        ROOT=ROOT,
        load_event=load_event,
        tick_event=tick_event,
        alarm_event=alarm_event,
        manual_event=manual_event,
        context=context,
        codes=codes,
    )


@pytest.fixture
def cluster(stack: EmbeddedStack, monkeypatch: pytest.MonkeyPatch) -> Cluster:
    """A freshly seeded cluster (a server, two Ready workers), the functions' environment applied,
    and cold handlers."""
    return seeded(stack, monkeypatch)


# -- a faulty proxy in front of Prometheus ------------------------------------------------------------------


class PrometheusProxy:
    """Forwards Prometheus' HTTP API to `upstream`, or misbehaves as `mode` says:

    pass    forward as is
    slow    hold the answer `delay_s` seconds, then forward
    error   answer `status` (503) with Prometheus' error body, without asking upstream
    nan     forward, then replace every sample value with "NaN"
    stale   answer with the first answer recorded for the same query (`record` mode), whatever the
            time asked: a stuck cache in front of Prometheus
    record  forward and remember the answer per query (the `time` parameter left out)
    """

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.mode = "pass"
        self.delay_s = 0.0
        self.status = 503
        self.recorded: dict[str, tuple[int, bytes]] = {}
        self.requests = 0
        self._session = requests.Session()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _proxy_handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def set(self, mode: str, **options: Any) -> None:
        self.mode = mode
        for name, value in options.items():
            setattr(self, name, value)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
        self._session.close()

    def answer(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> tuple[int, bytes]:
        self.requests += 1
        mode = self.mode
        if mode == "error":
            error = {"status": "error", "errorType": "unavailable", "error": "injected by the test proxy"}
            return self.status, json.dumps(error).encode()
        key = f"{method} {path} " + urlencode(sorted((k, v) for k, v in parse_qsl(body.decode()) if k != "time"))
        if mode == "stale" and key in self.recorded:
            return self.recorded[key]
        if mode == "slow":
            time.sleep(self.delay_s)
        forward = {k: v for k, v in headers.items() if k.lower() in ("authorization", "content-type", "accept")}
        response = self._session.request(method, self.upstream + path, headers=forward, data=body, timeout=30)
        status, content = response.status_code, response.content
        if mode == "record":
            self.recorded[key] = (status, content)
        if mode == "nan" and status == 200:
            content = json.dumps(_nan(json.loads(content))).encode()
        return status, content


def _nan(body: dict[str, Any]) -> dict[str, Any]:
    data = body.get("data") or {}
    result = data.get("result")
    if data.get("resultType") == "scalar" and isinstance(result, list):
        data["result"] = [result[0], "NaN"]
    elif isinstance(result, list):
        for series in result:
            if isinstance(series.get("value"), list):
                series["value"] = [series["value"][0], "NaN"]
    return body


def _proxy_handler(proxy: PrometheusProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            try:
                status, content = proxy.answer(self.command, self.path, dict(self.headers), body)
            except requests.RequestException:
                status, content = 502, b'{"status":"error","errorType":"unavailable","error":"upstream"}'
            with contextlib.suppress(OSError):  # the client gave up (a read timeout)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

        do_GET = do_POST = _serve

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


@pytest.fixture(scope="module")
def _proxy(stack: EmbeddedStack) -> Iterator[PrometheusProxy]:
    proxy = PrometheusProxy(stack.prometheus.url)
    try:
        yield proxy
    finally:
        proxy.close()


@pytest.fixture
def prom_proxy(_proxy: PrometheusProxy) -> Iterator[PrometheusProxy]:
    _proxy.set("pass", delay_s=0.0, status=503, recorded={}, requests=0)
    yield _proxy
    _proxy.set("pass")
