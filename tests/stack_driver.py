"""The one cluster driver of the stack suites (tests/integration, tests/reliability): a seeded cluster
on an EmbeddedStack, the real handlers driven against it, and the events they are sent.

Each suite builds its own stack fixture (its boot delay, its secrets) and gets its `cluster` from
`seeded()`. On a stack over the real control plane (`EmbeddedStack(api="controlplane")`), the API
server keeps no log a test can read: the requests of the functions' Kubernetes client are recorded
in the process instead (`mutations()`).
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests

from autoscaler import handler
from autoscaler.adapters.dynamodb import DynamoGateStore, DynamoStateStore, cluster_key, gate_key
from autoscaler.config import Settings
from autoscaler.model import ScalingState
from gitops_hooks import handler as hook_handler
from node_fleet.local_invoke import LambdaContext
from node_fleet.stack import aws
from node_fleet.stack.stack import EmbeddedStack, wait_until

ROOT = Path(__file__).resolve().parents[1]
EVENTS = ROOT / "events"

# Settings both suites start from (each adds its own; a test sets more through `cluster.set`).
BASE_SETTINGS = {
    "LOG_LEVEL": "INFO",
    "MIN_NODES": "1",
    "MAX_NODES": "6",
    # A node that has just joined reads busy until its series spans the rate window: keep the
    # sustained-CPU scale-up out of the way of the rules under test.
    "CPU_HIGH_WINDOW_S": "3600",
    "SCALE_DOWN_DELAY_AFTER_ADD_S": "0",
    "GATE_SETTLE_S": "0",
    # The tests drive every tick themselves, count the workers a scale-down terminates and the
    # launches a scale-up makes; the warm pool's stops and starts, and the ramp's extra workers,
    # have their own tests, which set WARM_POOL_SIZE and RAMP_WINDOW_S.
    "TICK_S": "60",
    "WARM_POOL_SIZE": "0",
    "RAMP_WINDOW_S": "0",
}

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


def apply_environ(monkeypatch: pytest.MonkeyPatch, environ: Mapping[str, str]) -> None:
    """The functions' environment, and no AWS profile that would take boto3 past the stack."""
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)


# -- the cluster driver ---------------------------------------------------------------------------------


def seeded(stack: EmbeddedStack, monkeypatch: pytest.MonkeyPatch) -> Cluster:
    """A freshly seeded cluster (a server, two Ready workers), the functions' environment applied,
    and cold handlers (no cached wiring: each test starts as a new Lambda container)."""
    stack.reset()
    apply_environ(monkeypatch, stack.environ)
    monkeypatch.setattr(handler, "_wiring", None)
    monkeypatch.setattr(hook_handler, "_wiring", None)
    return Cluster(stack, monkeypatch)


def record_client_requests(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str, int]]:
    """Every request the `kubernetes` client makes from now on, as (method, path, status)."""
    from kubernetes.client import rest
    from kubernetes.client.exceptions import ApiException

    seen: list[tuple[str, str, int]] = []
    original = rest.RESTClientObject.request

    def request(self, method, url, *args, **kwargs):
        try:
            answer = original(self, method, url, *args, **kwargs)
        except ApiException as exc:
            seen.append((method, urlsplit(url).path, exc.status or 0))
            raise
        seen.append((method, urlsplit(url).path, answer.status))
        return answer

    monkeypatch.setattr(rest.RESTClientObject, "request", request)
    return seen


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
        self.real = stack.real is not None
        self._client_requests = record_client_requests(monkeypatch) if self.real else []

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
        """The autoscaler's wiring as the handler builds it (on first use), its clock offset by
        `self.offset` seconds."""
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
        """One schedule tick through the autoscaler's handler (at now + offset)."""
        return self.invoke(tick_event(), offset)

    def manual(self, action: str, event_id: str | None = None, **fields: Any) -> dict[str, Any]:
        return self.invoke(manual_event(action, event_id, **fields))

    def hook(self, event: Any) -> dict[str, Any]:
        """One event through gitops_hooks.handler.lambda_handler."""
        return hook_handler.lambda_handler(event, context("node-fleet-GitopsHookFunction"))

    def poll_gate(self) -> dict[str, Any]:
        """One schedule tick of the GitOps hook (it polls Flux and writes the gate item)."""
        return self.hook(tick_event("gitops_schedule_tick.json"))

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
        """Whether the node is cordoned; a node that is gone fails the test (it is neither)."""
        node = self.node(name)
        assert node is not None, f"node {name} is gone"
        return _cordoned(node)

    def cordoned_nodes(self) -> set[str]:
        return {n["metadata"]["name"] for n in self.kube.objects("nodes") if _cordoned(n)}

    def mutations(self) -> list[tuple[str, str, int]]:
        """Every request that changed something in the API: (method, path, status). On the real API
        server, those of the functions' client (the stack's kubelets write too)."""
        if self.real:
            return [r for r in self._client_requests if r[0] != "GET"]
        return [(r.method, r.path, r.status) for r in self.kube.requests if r.method != "GET"]

    def evict(self, pod: Mapping[str, Any]) -> int:
        """Another party's eviction of a pod (an operator's `kubectl drain`), as the API's admin;
        the status of the answer."""
        meta = pod["metadata"]
        path = f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}/eviction"
        body = {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {k: meta[k] for k in ("name", "namespace")}}
        answer = requests.post(
            self.kube.url + path,
            json=body,
            headers={"Authorization": f"Bearer {self.kube.token}"},
            timeout=10,
            verify=self.kube.ca_file if self.real else True,
        )
        return answer.status_code

    def wait_budget(self, name: str, allowed: int, namespace: str = "default", timeout_s: float = 20.0) -> None:
        """Wait until the PDB allows `allowed` disruptions (the real disruption controller takes a moment)."""

        def judged() -> bool:
            pdb = self.kube.get("poddisruptionbudgets", name, namespace, "policy")
            return ((pdb or {}).get("status") or {}).get("disruptionsAllowed") == allowed

        self.wait(judged, timeout_s, f"PodDisruptionBudget {namespace}/{name} to allow {allowed} disruptions")

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


def _cordoned(node: Mapping[str, Any]) -> bool:
    taints = [t["key"] for t in node["spec"].get("taints") or ()]
    return bool(node["spec"].get("unschedulable")) or "node-fleet.io/draining" in taints
