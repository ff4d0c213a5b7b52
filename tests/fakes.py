"""Small fakes of the ports that record every call (Cluster Autoscaler's test provider habit)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace

from autoscaler.forecast import DemandHistory
from autoscaler.gitops.flux import RESOURCES
from autoscaler.model import DRAINING_TAINT_KEY, Instance, InstanceState, MetricsView, Node, Pod
from autoscaler.ports import EvictionOutcome, LaunchResult, NotOurInstance, Ports
from autoscaler.scheduling import Taint
from builders import NOW
from node_fleet.sim.ports import MemoryStateStore

DRAINING = Taint(DRAINING_TAINT_KEY, "true", "NoSchedule")


@dataclass
class FakeFleet:
    instances: list[Instance] = field(default_factory=list)
    foreign: list[Instance] = field(default_factory=list)
    """Instances without this cluster's tags: never listed, and terminate refuses them."""
    fail_launches: bool = False
    no_capacity_to_start: bool = False
    calls: list[tuple] = field(default_factory=list)
    _tokens: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def zones(self):
        return ("eu-west-1a", "eu-west-1b")

    def list_workers(self):
        return list(self.instances)

    def launch(self, az, count, token):
        self.calls.append(("launch", az, count, token))
        if self.fail_launches:
            return LaunchResult((), (f"t3.large/{az}: InsufficientInstanceCapacity",))
        if token not in self._tokens:
            ids = tuple(f"i-new{len(self.instances) + k}" for k in range(count))
            self.instances += [Instance(i, InstanceState.PENDING, az, "t3.large", NOW) for i in ids]
            self._tokens[token] = ids
        return LaunchResult(self._tokens[token])

    def terminate(self, instance_id):
        self.calls.append(("terminate", instance_id))
        if any(i.id == instance_id for i in self.foreign):
            raise NotOurInstance(f"refusing to terminate {instance_id}: not a worker of this cluster")
        self._set(instance_id, InstanceState.TERMINATED)

    def stop(self, instance_id):
        self.calls.append(("stop", instance_id))
        if any(i.id == instance_id for i in self.foreign):
            raise NotOurInstance(f"refusing to stop {instance_id}: not a worker of this cluster")
        self._set(instance_id, InstanceState.STOPPED, stopped_at=NOW)

    def start(self, instance_ids):
        self.calls.append(("start", tuple(instance_ids)))
        if self.no_capacity_to_start:
            return LaunchResult((), tuple(f"{i}: InsufficientInstanceCapacity" for i in instance_ids))
        stopped = {i.id for i in self.instances if i.state is InstanceState.STOPPED}
        started = tuple(i for i in instance_ids if i in stopped)
        for instance_id in started:
            self._set(instance_id, InstanceState.PENDING, stopped_at=None)
        return LaunchResult(started, tuple(f"{i}: not a stopped worker" for i in instance_ids if i not in stopped))

    def _set(self, instance_id, state, **fields):
        self.instances = [replace(i, state=state, **fields) if i.id == instance_id else i for i in self.instances]


@dataclass
class FakeCluster:
    nodes: list[Node] = field(default_factory=list)
    pods: list[Pod] = field(default_factory=list)
    blocked: set[str] = field(default_factory=set)
    """Pods whose eviction a PDB refuses (429)."""
    budgets: dict[str, int] = field(default_factory=dict)
    daemonsets: list[Pod] = field(default_factory=list)
    calls: list[tuple] = field(default_factory=list)

    def list_nodes(self):
        return list(self.nodes)

    def list_pods(self):
        return list(self.pods)

    def disruption_budgets(self):
        return dict(self.budgets)

    def daemonset_pods(self):
        return list(self.daemonsets)

    def cordon(self, node):
        self.calls.append(("cordon", node))
        self.nodes = [
            replace(n, cordoned=True, taints=(*[t for t in n.taints if t != DRAINING], DRAINING))
            if n.name == node
            else n
            for n in self.nodes
        ]

    def uncordon(self, node):
        self.calls.append(("uncordon", node))
        self.nodes = [
            replace(n, cordoned=False, taints=tuple(t for t in n.taints if t != DRAINING)) if n.name == node else n
            for n in self.nodes
        ]

    def evict(self, pod):
        self.calls.append(("evict", pod.name))
        if pod.name in self.blocked:
            return EvictionOutcome.BLOCKED
        if pod not in self.pods:
            return EvictionOutcome.GONE
        self.pods.remove(pod)
        return EvictionOutcome.EVICTED

    def delete_node(self, node):
        self.calls.append(("delete_node", node))
        self.nodes = [n for n in self.nodes if n.name != node]


@dataclass
class FakeMetrics:
    view: MetricsView = field(default_factory=lambda: MetricsView(cluster_cpu=0.4))
    history: DemandHistory | None = None
    reads: list = field(default_factory=list)

    def sample(self, now):
        return self.view

    def demand(self, now, read):
        self.reads.append(read)
        return self.history


def ports(fleet=None, cluster=None, metrics=None, state=None) -> Ports:
    return Ports(fleet or FakeFleet(), cluster or FakeCluster(), metrics or FakeMetrics(), state or MemoryStateStore())


@dataclass
class MemoryLease:
    owner: str | None = None
    expires: float = 0.0
    calls: list[tuple] = field(default_factory=list)

    def acquire(self, owner, now, duration_s):
        self.calls.append(("acquire", owner))
        # Held through its expiry second, as DynamoLease's `expires < now` condition holds it.
        if self.owner is not None and self.expires >= now:
            return False
        self.owner, self.expires = owner, now + duration_s
        return True

    def release(self, owner):
        self.calls.append(("release", owner))
        if self.owner == owner:
            self.owner = None


class Recorded:
    """Any port implementation, with every method call first appended to `log` as
    ("<name>.<method>", *args): to see that nothing at all was asked of a port."""

    def __init__(self, name: str, inner: object, log: list[tuple]) -> None:
        self._name, self._inner, self._log = name, inner, log

    def __getattr__(self, attr: str):
        value = getattr(self._inner, attr)
        if not callable(value):
            return value

        def call(*args, **kwargs):
            self._log.append((f"{self._name}.{attr}", *args))
            return value(*args, **kwargs)

        return call


@dataclass
class FakeFluxObjects:
    """The Flux objects of a cluster, in memory (reader.FluxObjects); `down` makes every read fail."""

    objects: list[dict] = field(default_factory=list)
    down: bool = False

    def list_custom(self, group, version, plural):
        if self.down:
            raise ConnectionError("API server down")
        return [o for o in self.objects if any(r.plural == plural and r.kind == o.get("kind") for r in RESOURCES)]


@dataclass
class MemoryGateStore:
    """The gate item, in memory (reader.GateStore), stored as JSON would store it."""

    record: dict | None = None
    observed_at: float | None = None

    def load(self):
        return self.record

    def save(self, record, observed_at):
        self.record, self.observed_at = json.loads(json.dumps(record)), observed_at
