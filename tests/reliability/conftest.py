"""Fixtures of the reliability suite's stack tests: test_concurrency, test_faults and test_security.

(test_fuzz and test_supply_chain use none of this: every fixture here is requested by name, none is
autouse, and nothing here changes how other files are collected.)

- `stack`: one EmbeddedStack per test module (moto's server, the fake Kubernetes API server with
  simulated kubelets, a real Prometheus), stopped at the module's end: moto's backends are
  process-wide, and other modules here (test_fuzz) use `mock_aws`, which resets them, so no stack
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
  each test starts as a new Lambda container). Returns a `Cluster` driver.
- `prom_proxy`: an HTTP proxy in front of the real Prometheus that can delay, fail (5xx), answer
  NaN, or replay an old answer (stale).
- `kit`: this module's constants and helpers (CANARY, the event builders...). The test modules take
  them from this fixture rather than with `from conftest import ...`: every test directory has a
  conftest.py, and which one the name `conftest` means depends on what pytest imported last.

The tests are skipped, saying why, when Prometheus is not installed (CI installs it).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import threading
import time
import types
import uuid
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import pytest
import requests

from autoscaler import handler
from autoscaler.adapters.dynamodb import DynamoGateStore, DynamoStateStore, cluster_key, gate_key
from autoscaler.config import Settings
from autoscaler.model import ScalingState
from gitops_hooks import handler as hook_handler
from node_fleet.local_invoke import LambdaContext
from node_fleet.stack import aws
from node_fleet.stack import stack as stack_module
from node_fleet.stack.prometheus import INSTALL_HINT, binaries
from node_fleet.stack.stack import EmbeddedStack, wait_until

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "events"

CANARY = f"nfcanary{secrets.token_hex(6)}"
"""In every secret parameter; must never appear in a log line or a response."""
K8S_CA_PARAM = "/node-fleet/k8s-ca"
PROMETHEUS_CA_PARAM = "/node-fleet/prometheus-ca"
CANARY_PEM = f"-----BEGIN CERTIFICATE-----\nMIIB{CANARY}ca\n-----END CERTIFICATE-----\n"

BASE_SETTINGS = {
    "LOG_LEVEL": "INFO",
    "MIN_NODES": "1",
    "MAX_NODES": "6",
    # A node that has just joined reads busy until its series spans the rate window: keep the
    # sustained-CPU scale-up out of the way of the rules under test.
    "CPU_HIGH_WINDOW_S": "3600",
    "SCALE_DOWN_DELAY_AFTER_ADD_S": "0",
    "GATE_SETTLE_S": "0",
    "K8S_CA_PARAM": K8S_CA_PARAM,
    "PROMETHEUS_CA_PARAM": PROMETHEUS_CA_PARAM,
}


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
    embedded = EmbeddedStack(
        workers=2, boot_delay_s=1.0, settings=BASE_SETTINGS, workdir=tmp_path_factory.mktemp("stack")
    )
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


# -- events and contexts ---------------------------------------------------------------------------------


def load_event(name: str, **changes: Any) -> dict[str, Any]:
    event = json.loads((EVENTS / name).read_text())
    event.update(changes)
    return event


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def tick_event(name: str = "schedule_tick.json") -> dict[str, Any]:
    """A schedule tick as EventBridge sends each minute: a new id, the current time."""
    return load_event(name, id=str(uuid.uuid4()), time=now_iso())


def alarm_event(state: str = "ALARM", event_id: str | None = None) -> dict[str, Any]:
    name = "alarm_state_alarm.json" if state == "ALARM" else "alarm_state_ok.json"
    return load_event(name, id=event_id or str(uuid.uuid4()), time=now_iso())


def manual_event(action: str, event_id: str | None = None, **fields: Any) -> dict[str, Any]:
    """A manual action as an EventBridge event (source node-fleet.manual)."""
    return {
        "version": "0",
        "id": event_id or str(uuid.uuid4()),
        "detail-type": "Manual Scaling Action",
        "source": "node-fleet.manual",
        "account": "123456789012",
        "time": now_iso(),
        "region": aws.REGION,
        "resources": [],
        "detail": {"action": action, **fields},
    }


def context(name: str = "node-fleet-AutoscalerFunction") -> LambdaContext:
    return LambdaContext(name, 512, 60, aws.REGION)


def codes(answer: Mapping[str, Any]) -> list[str]:
    return [r["code"] for r in answer.get("reasons", ())]


# -- the cluster driver ---------------------------------------------------------------------------------


class Cluster:
    """A seeded cluster on the module's stack, and the real handlers driven against it."""

    tick_event = staticmethod(tick_event)
    alarm_event = staticmethod(alarm_event)
    manual_event = staticmethod(manual_event)
    load_event = staticmethod(load_event)

    def __init__(self, stack: EmbeddedStack, monkeypatch: pytest.MonkeyPatch) -> None:
        self.stack = stack
        self.kube = stack.kube
        self.kubelets = stack.kubelets
        self.monkeypatch = monkeypatch
        self.offset = 0.0
        self.overrides: dict[str, str] = {}

    # -- settings and the handlers -----------------------------------------------------------------------

    def set(self, **variables: str) -> None:
        """Environment variables of the functions; adapters already built keep theirs until cold()."""
        for name, value in variables.items():
            self.overrides[name] = str(value)
            self.monkeypatch.setenv(name, str(value))

    def reseed(self) -> None:
        """A fresh cluster in the same test (`EmbeddedStack.reset()`): its environment applied again
        with this test's settings over it, a cold container, the clock offset back to zero."""
        self.stack.reset()
        for name, value in {**self.stack.environ, **self.overrides}.items():
            self.monkeypatch.setenv(name, value)
        self.cold()
        self.offset = 0.0

    def cold(self) -> None:
        """The next invocation runs in a new container: the handlers' cached wiring is dropped."""
        handler._wiring = None
        hook_handler._wiring = None

    @property
    def settings(self) -> Settings:
        return Settings.from_env(os.environ)

    def wiring(self):
        """The autoscaler's wiring as the handler builds it, its clock offset by `self.offset` s."""
        if handler._wiring is None:
            handler._wiring = handler.wiring(Settings.from_env(os.environ))
        w = handler._wiring
        w.clock = lambda: time.time() + self.offset
        return w

    def invoke(self, event: Any, offset: float | None = None) -> dict[str, Any]:
        """One event through autoscaler.handler.lambda_handler (at now + offset)."""
        if offset is not None:
            self.offset = offset
        self.wiring()
        return handler.lambda_handler(event, context())

    def tick(self, offset: float | None = None) -> dict[str, Any]:
        return self.invoke(tick_event(), offset)

    def manual(self, action: str, event_id: str | None = None, **fields: Any) -> dict[str, Any]:
        return self.invoke(manual_event(action, event_id, **fields))

    def hook(self, event: Any) -> dict[str, Any]:
        """One event through gitops_hooks.handler.lambda_handler."""
        return hook_handler.lambda_handler(event, context("node-fleet-GitopsHookFunction"))

    # -- looking --------------------------------------------------------------------------------------------

    @property
    def table(self) -> str:
        return self.stack.account.table_name

    def state(self) -> ScalingState:
        return DynamoStateStore(self.table, self.stack.cluster_name, client=self.stack.clients["dynamodb"]).load()

    def gate_item(self) -> dict[str, Any] | None:
        return DynamoGateStore(self.table, self.stack.cluster_name, client=self.stack.clients["dynamodb"]).load()

    def item(self, sk: str, partition: str | None = None) -> dict[str, Any] | None:
        """An item of the cluster's partition, or of `partition`."""
        key = {"pk": {"S": partition or cluster_key(self.stack.cluster_name)}, "sk": {"S": sk}}
        return self.stack.clients["dynamodb"].get_item(TableName=self.table, Key=key, ConsistentRead=True).get("Item")

    def lease_item(self) -> dict[str, Any] | None:
        return self.item("lease")

    def alive(self) -> dict[str, dict[str, Any]]:
        """Worker instances pending or running, by id."""
        return {i["InstanceId"]: i for i in self.stack.instances()}

    def every_worker(self) -> dict[str, str]:
        """Every worker instance EC2 lists, by id -> state."""
        states = ("pending", "running", "shutting-down", "terminated", "stopping", "stopped")
        return {i["InstanceId"]: i["State"]["Name"] for i in self.stack.instances(states=states)}

    def instance_state(self, instance_id: str) -> str:
        answer = self.stack.clients["ec2"].describe_instances(InstanceIds=[instance_id])
        return answer["Reservations"][0]["Instances"][0]["State"]["Name"]

    def node(self, name: str) -> dict[str, Any] | None:
        return self.kube.get("nodes", name)

    def node_names(self) -> set[str]:
        return {n["metadata"]["name"] for n in self.kube.objects("nodes")}

    def instance_of(self, node: str) -> str:
        return self.node(node)["spec"]["providerID"].rsplit("/", 1)[1]

    def ready_workers(self) -> set[str]:
        return {
            n["metadata"]["name"]
            for n in self.kube.objects("nodes")
            if n["metadata"]["name"] != self.stack.server_node
            and any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"]["conditions"])
        }

    def pods(self, app: str | None = None) -> list[dict[str, Any]]:
        return [p for p in self.kube.objects("pods") if app is None or p["metadata"]["labels"].get("app") == app]

    def pods_on(self, node: str) -> list[str]:
        return [p["metadata"]["name"] for p in self.pods() if p["spec"].get("nodeName") == node]

    def unschedulable(self) -> list[str]:
        return [
            p["metadata"]["name"]
            for p in self.pods()
            if not p["spec"].get("nodeName")
            and any(c.get("reason") == "Unschedulable" for c in p["status"].get("conditions") or ())
        ]

    def cordoned(self, name: str) -> bool:
        node = self.node(name)
        if node is None:
            return False
        taints = [t["key"] for t in node["spec"].get("taints") or ()]
        return bool(node["spec"].get("unschedulable")) or "node-fleet.io/draining" in taints

    def cordoned_nodes(self) -> set[str]:
        return {name for name in self.node_names() if self.cordoned(name)}

    def mutations(self) -> list[tuple[str, str, int]]:
        """Every request that changed something in the API: (method, path, status)."""
        return [(r.method, r.path, r.status) for r in self.kube.requests if r.method != "GET"]

    def world(self) -> dict[str, Any]:
        """What an invocation could change: workers (by state), the API's objects as written through
        HTTP (the simulated kubelets write directly), the cluster's state, lease and gate items."""
        return {
            "workers": self.every_worker(),
            "api_writes": self.mutations(),
            "state": self.item("state"),
            "lease": self.lease_item(),
            "gate": self.item("gate", gate_key(self.stack.cluster_name)),
            "cordoned": self.cordoned_nodes(),
        }

    def wait(self, predicate: Callable[[], Any], timeout_s: float = 10.0, what: str = "") -> Any:
        return wait_until(predicate, timeout_s, 0.05, what)

    def metrics_ready(self, timeout_s: float = 20.0) -> None:
        """Wait until Prometheus, read as the autoscaler reads it, knows the cluster's usage and every
        Ready worker's CPU (a reseeded cluster's new nodes need a few scrapes)."""

        def ready() -> bool:
            view = self.stack.metrics()
            return view.known and all(view.node_cpu.get(n) is not None for n in self.ready_workers())

        self.wait(ready, timeout_s, "Prometheus knows every Ready worker's CPU")

    def settle(self, timeout_s: float = 10.0) -> None:
        """Wait until every pod of the workloads is bound and none is terminating (evicted pods gone,
        their replacements placed)."""
        self.wait(
            lambda: all(p["spec"].get("nodeName") and not p["metadata"].get("deletionTimestamp") for p in self.pods()),
            timeout_s,
            "every pod bound, none terminating",
        )


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
def cluster(stack: EmbeddedStack, monkeypatch: pytest.MonkeyPatch) -> Iterator[Cluster]:
    """A freshly seeded cluster (a server, two Ready workers), the functions' environment applied,
    and cold handlers."""
    stack.reset()
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in stack.environ.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(handler, "_wiring", None)
    monkeypatch.setattr(hook_handler, "_wiring", None)
    yield Cluster(stack, monkeypatch)


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
