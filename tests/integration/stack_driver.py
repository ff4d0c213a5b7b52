"""What the integration tests share: a seeded cluster on the module's EmbeddedStack (`Cluster`),
and the handlers driven against it (fixtures in conftest.py)."""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from autoscaler import handler
from autoscaler.adapters.dynamodb import DynamoGateStore, DynamoStateStore
from autoscaler.config import Settings
from autoscaler.model import ScalingState
from gitops_hooks import handler as hook_handler
from node_fleet.local_invoke import LambdaContext
from node_fleet.stack.stack import EmbeddedStack, wait_until

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
EVENTS = ROOT / "events"

# Settings every integration module starts from (a test sets more through `cluster.set`).
BASE_SETTINGS = {
    "LOG_LEVEL": "INFO",
    "MIN_NODES": "1",
    "MAX_NODES": "6",
    # A node that has just joined reads busy until its series spans the rate window: keep the
    # sustained-CPU scale-up out of the way of the request-driven rules under test.
    "CPU_HIGH_WINDOW_S": "3600",
    # A node is removed only while its CPU usage reads low: with a 5 s rate window and 1 s scrapes,
    # a scrape late or skipped on a loaded machine moves an idle node's reading by a few tenths.
    # The tests are about the mechanics around that reading, so the bar is set well above the noise.
    "CPU_LOW": "0.6",
    "SCALE_DOWN_DELAY_AFTER_ADD_S": "0",
    "GATE_SETTLE_S": "0",
}


def load_event(name: str, **changes: Any) -> dict[str, Any]:
    event = json.loads((EVENTS / name).read_text())
    event.update(changes)
    return event


def fresh_tick(name: str = "schedule_tick.json") -> dict[str, Any]:
    """A schedule tick as EventBridge sends each minute: a new id, the current time."""
    return load_event(name, id=str(uuid.uuid4()), time=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))


def context(name: str = "node-fleet-AutoscalerFunction") -> LambdaContext:
    return LambdaContext(name, 512, 60, "eu-west-1")


class Cluster:
    """A seeded cluster on the module's stack, and the handlers driven against it."""

    def __init__(self, stack: EmbeddedStack, monkeypatch: pytest.MonkeyPatch) -> None:
        self.stack = stack
        self.kube = stack.kube
        self.kubelets = stack.kubelets
        self._monkeypatch = monkeypatch
        self.offset = 0.0

    # -- settings and the handlers -------------------------------------------------------------------

    def set(self, **variables: str) -> None:
        """Environment variables of the functions (before the first tick builds the wiring)."""
        for name, value in variables.items():
            self._monkeypatch.setenv(name, str(value))

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

    def tick(self, offset: float | None = None) -> dict[str, Any]:
        """One schedule tick through autoscaler.handler.lambda_handler, at now + offset."""
        if offset is not None:
            self.offset = offset
        self.wiring()
        return handler.lambda_handler(fresh_tick(), context())

    def poll_gate(self) -> dict[str, Any]:
        """One schedule tick of the GitOps hook (it polls Flux and writes the gate item)."""
        return hook_handler.lambda_handler(fresh_tick("gitops_schedule_tick.json"), context("hook"))

    # -- looking ------------------------------------------------------------------------------------

    def state(self) -> ScalingState:
        return DynamoStateStore(self.table, self.stack.cluster_name, client=self.stack.clients["dynamodb"]).load()

    def gate_item(self) -> dict[str, Any] | None:
        return DynamoGateStore(self.table, self.stack.cluster_name, client=self.stack.clients["dynamodb"]).load()

    def lease_item(self) -> dict[str, Any] | None:
        key = {"pk": {"S": f"cluster#{self.stack.cluster_name}"}, "sk": {"S": "lease"}}
        return self.stack.clients["dynamodb"].get_item(TableName=self.table, Key=key).get("Item")

    @property
    def table(self) -> str:
        return self.stack.account.table_name

    def alive(self) -> dict[str, dict[str, Any]]:
        """Worker instances pending or running, by id."""
        return {i["InstanceId"]: i for i in self.stack.instances()}

    def instance_state(self, instance_id: str) -> str:
        answer = self.stack.clients["ec2"].describe_instances(InstanceIds=[instance_id])
        return answer["Reservations"][0]["Instances"][0]["State"]["Name"]

    def node(self, name: str) -> dict[str, Any] | None:
        return self.kube.get("nodes", name)

    def node_names(self) -> set[str]:
        return {n["metadata"]["name"] for n in self.kube.objects("nodes")}

    def ready_workers(self) -> set[str]:
        return {
            n["metadata"]["name"]
            for n in self.kube.objects("nodes")
            if n["metadata"]["name"] != self.stack.server_node
            and any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"]["conditions"])
        }

    def pods(self, app: str | None = None) -> list[dict[str, Any]]:
        pods = self.kube.objects("pods")
        return [p for p in pods if app is None or p["metadata"]["labels"].get("app") == app]

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
        assert node is not None, f"node {name} is gone"
        taints = [t["key"] for t in node["spec"].get("taints") or ()]
        return bool(node["spec"].get("unschedulable")) or "node-fleet.io/draining" in taints

    def mutations(self) -> list[tuple[str, str, int]]:
        """Every request that changed something in the API: (method, path, status)."""
        return [(r.method, r.path, r.status) for r in self.kube.requests if r.method != "GET"]

    def wait(self, predicate, timeout_s: float = 10.0, what: str = ""):
        return wait_until(predicate, timeout_s, 0.1, what)


def apply_environ(monkeypatch: pytest.MonkeyPatch, environ: Mapping[str, str]) -> None:
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
