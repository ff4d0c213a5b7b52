"""What node-fleet must never do, checked after every step of random clusters under faults.

A hypothesis RuleBasedStateMachine runs cycles through `service.handle` over the fakes of
fakes.py, in a small world that moves on between cycles as a cluster would: instances boot and
join, evicted pods come back pending and get scheduled, a terminated worker's node goes NotReady.
The rules draw schedule ticks, alarm and manual intents, redeliveries of an intent's event, a
port that raises mid-cycle (with the lease left taken, as a Lambda timeout leaves it, or
released), nodes going NotReady, workers losing their cluster tags, pods pinned to a node, and
nodes matched to their instance oddly: `k3s://<hostname>` provider IDs, nodes matched only by an
address, two nodes claiming one instance, and nodes of instances that are not ours.

After every step node-fleet has:
- never asked to terminate an instance that is not its own, or one that two nodes claim;
- never terminated a node holding a pod that must not move;
- never taken the Ready workers (those not being drained) below min_nodes, or further below, in a cycle;
- never launched above max_nodes;
- applied each intent at most once: no more launches or drains under its event id than it asked;
- changed nothing while paused.

The default profile takes a few seconds (`make test`); `HYPOTHESIS_PROFILE=long` runs ten times as
many runs, each twice as long (`make fuzz`).
"""

from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import replace
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import event as note
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from autoscaler.config import Settings
from autoscaler.events import AlarmChange, Manual, Tick
from autoscaler.model import (
    DO_NOT_DISRUPT,
    SAFE_TO_EVICT,
    Drain,
    DrainPhase,
    Instance,
    InstanceState,
    Intent,
    IntentKind,
    MetricsView,
    Node,
    Pod,
    ScalingState,
)
from autoscaler.ports import LaunchResult, NotOurInstance, Ports
from autoscaler.rules import pod_blocker
from autoscaler.service import LeaseBusy, Wiring, handle
from builders import CPU, MEM, NOW, ZONES
from fakes import FakeCluster, FakeFleet, MemoryLease
from node_fleet.sim.ports import MemoryStateStore

LONG = os.environ.get("HYPOTHESIS_PROFILE") == "long"
RUNS, STEPS = (400, 60) if LONG else (40, 30)

JOIN_AFTER_S = 60.0
STYLES = ("aws", "k3s", "address", "aws", "never")
"""How the n-th instance joins: aws:/// providerID, k3s://<hostname>, by address only, or never."""


class Crash(Exception):
    """A port failed mid-cycle (an API error, or the Lambda's timeout)."""


def hostname(ip: str) -> str:
    return "ip-" + ip.replace(".", "-")


def names_of(instance: Instance) -> set[str]:
    """The addresses a node may be matched to its instance by: IP, DNS name and host name."""
    dns = instance.private_dns_name or ""
    return {instance.private_ip or "", dns, dns.split(".", 1)[0]} - {""}


# -- the world: EC2 and a cluster that move on between cycles ------------------------------------------


class World:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.now = NOW
        self.seq = 0
        self.fleet = WorldFleet(self)
        self.cluster = WorldCluster(self)
        self.store = WorldStore(self)
        self.lease = MemoryLease()
        self.armed: tuple[str, str, bool] | None = None
        self.timeout = False
        self.token = ""
        self.violations: list[str] = []
        self.launched_by: dict[str, set[str]] = defaultdict(set)
        """Event id -> instances launched under its tokens."""
        self.drained_by: dict[str, set[str]] = defaultdict(set)
        """Event id -> nodes whose drain its cycles started."""
        self.style: dict[str, str] = {}
        self.ports = Ports(
            Crashing(self.fleet, "fleet", self),
            Crashing(self.cluster, "cluster", self),
            WorldMetrics(self),
            Crashing(self.store, "state", self),
        )

    def new_instance(self, az: str, style: str | None = None, state=InstanceState.PENDING) -> Instance:
        self.seq += 1
        ip = f"10.0.{self.seq // 200}.{self.seq % 200 + 10}"
        dns = f"{hostname(ip)}.eu-west-1.compute.internal"
        instance = Instance(f"i-{self.seq:05d}", state, az, "t3.large", self.now, private_ip=ip, private_dns_name=dns)
        self.style[instance.id] = style or STYLES[self.seq % len(STYLES)]
        return instance

    def node_for(self, instance: Instance, **kw: Any) -> Node:
        ip = instance.private_ip or ""
        style = self.style[instance.id]
        node_name = hostname(ip) if style == "k3s" else f"node-{instance.id[2:]}"
        # aws:/// names the instance; k3s:// names nothing, so the node is found by its addresses.
        instance_id = instance.id if style == "aws" else None
        addresses = frozenset({ip, hostname(ip)} if style != "address" else {ip})
        zone = {"topology.kubernetes.io/zone": instance.az}
        return Node(node_name, CPU, MEM, instance_id, instance.az, addresses=addresses, labels=zone, **kw)

    def claimants(self, instance: Instance) -> list[Node]:
        """Every node that names the instance, by providerID or by one of its addresses."""
        names = names_of(instance)
        return [
            n
            for n in self.cluster.nodes
            if n.instance_id == instance.id or (n.instance_id is None and (n.addresses | {n.name}) & names)
        ]

    def instance(self, instance_id: str) -> Instance | None:
        return next((i for i in [*self.fleet.instances, *self.fleet.foreign] if i.id == instance_id), None)

    def ready_workers(self) -> int:
        """Our alive instances with a Ready node that no drain is taking away (a node cordoned by
        someone else still counts, as it does for min_nodes)."""
        draining = {d.node for d in self.store.load().drains}
        return sum(
            1
            for i in self.fleet.instances
            if i.alive and any(n.ready and not n.control_plane and n.name not in draining for n in self.claimants(i))
        )

    def alive(self) -> int:
        return sum(1 for i in self.fleet.instances if i.alive)

    def pass_time(self, seconds: float) -> None:
        """What happens between two cycles: boots, joins, dead kubelets, the scheduler."""
        self.now += seconds
        fleet, cluster = self.fleet, self.cluster
        for group in (fleet.instances, fleet.foreign):
            group[:] = [
                replace(i, state=InstanceState.RUNNING) if i.state is InstanceState.PENDING else i for i in group
            ]
        for instance in [*fleet.instances, *fleet.foreign]:
            waited = self.now - instance.launched_at >= JOIN_AFTER_S
            if instance.alive and waited and self.style[instance.id] != "never" and not self.claimants(instance):
                cluster.nodes.append(self.node_for(instance, ready_since=self.now))
            if not instance.alive:
                cluster.nodes = [replace(n, ready=False) if n in self.claimants(instance) else n for n in cluster.nodes]
        schedulable = {n.name: n for n in cluster.nodes}
        pods = []
        for p in cluster.pods:
            if p.node is not None and p.node not in schedulable:
                if p.owner_kind != "ReplicaSet":
                    continue  # gone with its node
                p = replace(p, node=None)
            pods.append(p)
        cluster.pods = [self.schedule(p, pods) if p.node is None else p for p in pods]

    def schedule(self, pod: Pod, pods: list[Pod]) -> Pod:
        for node in self.cluster.nodes:
            if not node.ready or node.cordoned or node.control_plane:
                continue
            used = [p for p in pods if p.node == node.name]
            if sum(p.cpu_m for p in used) + pod.cpu_m <= node.alloc_cpu_m:
                placed = replace(pod, node=node.name, unschedulable_since=None)
                pods[pods.index(pod)] = placed
                return placed
        return pod if pod.unschedulable_since is not None else replace(pod, unschedulable_since=self.now)

    def crash_here(self, port: str, method: str, after: bool) -> bool:
        if self.armed != (port, method, after):
            return False
        self.armed = None
        return True


class Crashing:
    """A port whose armed method raises Crash, before or after doing its work."""

    def __init__(self, target: Any, port: str, world: World) -> None:
        self._target, self._port, self._world = target, port, world

    def __getattr__(self, method: str) -> Any:
        real = getattr(self._target, method)

        def call(*args: Any, **kwargs: Any) -> Any:
            if self._world.crash_here(self._port, method, after=False):
                raise Crash(f"{self._port}.{method}")
            result = real(*args, **kwargs)
            if self._world.crash_here(self._port, method, after=True):
                raise Crash(f"{self._port}.{method} (done)")
            return result

        return call


class WorldFleet(FakeFleet):
    def __init__(self, world: World) -> None:
        super().__init__()
        self.world = world

    def launch(self, az, count, token):
        self.calls.append(("launch", az, count, token))
        if token not in self._tokens:
            new = [self.world.new_instance(az) for _ in range(count)]
            self.instances += new
            self._tokens[token] = tuple(i.id for i in new)
            self.world.launched_by[token.split(":", 1)[0]].update(self._tokens[token])
        return LaunchResult(self._tokens[token])

    def terminate(self, instance_id):
        world = self.world
        self.calls.append(("terminate", instance_id))
        instance = world.instance(instance_id)
        if instance is None or instance in self.foreign:
            world.violations.append(f"asked to terminate {instance_id}, not a worker of this cluster")
            raise NotOurInstance(instance_id)
        claimants = world.claimants(instance)
        if len(claimants) > 1:
            world.violations.append(f"terminated {instance_id}, claimed by {sorted(n.name for n in claimants)}")
        for node in claimants:
            for p in world.cluster.pods:
                if p.node == node.name and not p.stays and pod_blocker(p):
                    world.violations.append(f"terminated {instance_id} under {node.name}: {pod_blocker(p)}")
        super().terminate(instance_id)


class WorldCluster(FakeCluster):
    def __init__(self, world: World) -> None:
        super().__init__()
        self.world = world

    def evict(self, pod):
        if pod_blocker(pod):
            self.world.violations.append(f"evicted {pod.key}: {pod_blocker(pod)}")
        # Its ReplicaSet puts it back, pending, for the scheduler.
        outcome = super().evict(pod)
        if pod.owner_kind == "ReplicaSet" and pod not in self.pods:
            self.pods.append(replace(pod, node=None, unschedulable_since=None))
        return outcome


class WorldStore(MemoryStateStore):
    def __init__(self, world: World) -> None:
        super().__init__()
        self.world = world

    def save(self, state):
        before = {d.node for d in self.load().drains}
        saved = super().save(state)
        self.world.drained_by[self.world.token].update(d.node for d in saved.drains if d.node not in before)
        return saved


class WorldMetrics:
    def __init__(self, world: World) -> None:
        self.world = world

    def sample(self, now):
        return MetricsView(cluster_cpu=0.2, node_cpu={n.name: 0.05 for n in self.world.cluster.nodes})

    def demand(self, now, read):
        return None


CRASH_POINTS = (
    ("fleet", "launch", True),
    ("fleet", "launch", False),
    ("fleet", "terminate", True),
    ("fleet", "terminate", False),
    ("cluster", "cordon", False),
    ("cluster", "evict", True),
    ("cluster", "uncordon", False),
    ("cluster", "delete_node", False),
    ("cluster", "list_pods", False),
    ("state", "save", False),
    ("state", "save", True),
)
"""(port, method, after its work?) where a cycle may die."""

# -- random clusters ----------------------------------------------------------------------------------

POD_KINDS = ("rs", "rs", "rs", "rs-pdb", "bare", "kube-system", "daemonset", "mirror", "pinned", "do-not-disrupt")


def make_pod(kind: str, name: str, node: str, cpu: int) -> Pod:
    return {
        "rs": Pod(name, "default", cpu, 256, node=node),
        "rs-pdb": Pod(name, "default", cpu, 256, node=node, has_pdb=True, pdbs=("default/pdb",)),
        "bare": Pod(name, "default", cpu, 256, node=node, owner_kind=None),
        "kube-system": Pod(name, "kube-system", cpu, 256, node=node),
        "daemonset": Pod(name, "kube-system", 50, 64, node=node, owner_kind="DaemonSet"),
        "mirror": Pod(name, "kube-system", 50, 64, node=node, owner_kind="Node", mirror=True),
        "pinned": Pod(name, "default", cpu, 256, node=node, annotations={SAFE_TO_EVICT: "false"}),
        "do-not-disrupt": Pod(name, "default", cpu, 256, node=node, annotations={DO_NOT_DISRUPT: "true"}),
    }[kind]


workers = st.lists(
    st.tuples(
        st.sampled_from(STYLES[:3]),
        st.sampled_from([True, True, True, False]),  # Ready, mostly
        st.lists(st.tuples(st.sampled_from(POD_KINDS), st.sampled_from([100, 300, 600])), max_size=4),
    ),
    min_size=0,
    max_size=6,
)


class Invariants(RuleBasedStateMachine):
    world: World

    @initialize(
        spec=workers,
        foreign=st.integers(0, 2),
        twin=st.booleans(),
        min_nodes=st.integers(0, 3),
        extra=st.integers(-1, 4),
        force=st.booleans(),
        paused=st.sampled_from([False, False, True]),
        drains=st.lists(
            st.tuples(st.integers(0, 5), st.sampled_from(DrainPhase), st.sampled_from(["own", "other", "foreign"])),
            max_size=2,
        ),
    )
    def build(self, spec, foreign, twin, min_nodes, extra, force, paused, drains):
        max_nodes = max(1, len(spec) + extra)  # room to grow, mostly; one above max at times
        config = Settings(
            min_nodes=min(min_nodes, max_nodes),
            max_nodes=max_nodes,
            scale_down_unneeded_time_s=120,
            scale_down_delay_after_add_s=300,
            scale_down_delay_after_failure_s=60,
            max_node_provision_time_s=600,
            scale_down_unready_time_s=600,
            drain_timeout_s=300,
            drain_force=force,
            lease_duration_s=180,
        )
        world = self.world = World(config)
        world.now -= 3600
        for k, (style, ready, pods) in enumerate(spec):
            instance = world.new_instance(ZONES[k % 2], style, InstanceState.RUNNING)
            world.fleet.instances.append(instance)
            node = world.node_for(instance, ready=ready, ready_since=world.now)
            world.cluster.nodes.append(node)
            for j, (kind, cpu) in enumerate(pods):
                world.cluster.pods.append(make_pod(kind, f"{kind}-{k}-{j}", node.name, cpu))
                if kind == "rs-pdb":
                    world.cluster.blocked.add(f"{kind}-{k}-{j}")
        for k in range(foreign):
            # Not ours (no cluster tags): never listed by the fleet, yet its node is in the cluster.
            outsider = world.new_instance(ZONES[k % 2], "aws" if k == 0 else "k3s", InstanceState.RUNNING)
            world.fleet.foreign.append(outsider)
            world.cluster.nodes.append(world.node_for(outsider, ready_since=world.now))
        if twin and world.fleet.instances:
            # A second node claiming the first worker by its address: neither may be acted on.
            first = world.fleet.instances[0]
            world.cluster.nodes.append(
                Node("twin", CPU, MEM, None, first.az, addresses=frozenset(names_of(first)), ready_since=world.now)
            )
        world.cluster.nodes.append(Node("server", CPU, MEM, None, ZONES[0], control_plane=True))
        world.cluster.budgets = {"default/pdb": 0}
        world.now = NOW
        world.store.save(ScalingState(paused=paused, drains=tuple(self.recorded(world, drains))))
        self.sent: list[AlarmChange | Manual] = []
        self.events = 0

    @staticmethod
    def recorded(world: World, drains) -> list[Drain]:
        """Drain records in the state item as found: a cycle's progress, or not (injected, stale),
        naming the node's own instance, another worker's, or one that is not ours. A drain past
        its cordon has its node cordoned, as a cycle leaves it; one not yet cordoned cannot be told
        from a cycle that died before its cordon, and min_nodes is the planner's to keep there."""
        found: dict[str, Drain] = {}
        nodes = [n for n in world.cluster.nodes if not n.control_plane]
        for index, phase, whose in drains if nodes else ():
            node = nodes[index % len(nodes)]
            own = [i for i in world.fleet.instances if node in world.claimants(i)]
            named = {"own": own, "other": [i for i in world.fleet.instances if i not in own]}.get(
                whose, world.fleet.foreign
            )
            if named and node.name not in found:
                found[node.name] = Drain(node.name, named[0].id, world.now - 60, world.now + 240, phase)
        world.cluster.nodes = [replace(n, cordoned=n.cordoned or n.name in found) for n in world.cluster.nodes]
        return list(found.values())

    # -- cycles -----------------------------------------------------------------------------------------

    def cycle(self, request, token: str) -> None:
        world = self.world
        paused = world.store.load().paused
        ready, alive = world.ready_workers(), world.alive()
        calls = len(world.fleet.calls) + len(world.cluster.calls)
        world.token = token
        wiring = Wiring(world.ports, world.lease, sleep=self.sleep, clock=lambda: world.now)
        try:
            report = handle(request, wiring, world.settings, token)
            note(f"cycle {report.status}: {report.detail}")
        except Crash as crash:
            note(f"crashed in {crash}")
            if world.timeout:  # no finally ran: the lease stays until it expires
                world.lease.owner, world.lease.expires = token, world.now + world.settings.lease_duration_s
        except LeaseBusy:
            note("lease busy")
        world.armed = None
        mutations = [*world.fleet.calls, *world.cluster.calls][calls:]
        for call in mutations:
            note(f"called {call[0]}")
        if paused and world.store.load().paused:
            assert not mutations, f"paused, yet {mutations}"
        assert world.ready_workers() >= min(ready, world.settings.min_nodes), (
            f"Ready workers {ready} -> {world.ready_workers()}, min_nodes {world.settings.min_nodes}"
        )
        assert world.alive() <= max(alive, world.settings.max_nodes), (
            f"{alive} -> {world.alive()} workers, max_nodes {world.settings.max_nodes}"
        )

    def sleep(self, seconds: float) -> None:
        self.world.now += seconds

    @rule(seconds=st.sampled_from([30, 60, 120, 300, 900]), ticks=st.integers(1, 5))
    def tick(self, seconds, ticks):
        for _ in range(ticks):
            self.world.pass_time(seconds)
            self.events += 1
            self.cycle(Tick(f"tick-{self.events}"), f"tick-{self.events}")

    @rule(
        kind=st.sampled_from([IntentKind.SCALE_UP, IntentKind.SCALE_DOWN, IntentKind.PAUSE, IntentKind.RESUME]),
        count=st.integers(1, 3),
        alarm=st.booleans(),
        crash=st.none() | st.sampled_from(CRASH_POINTS),
        again=st.integers(0, 2),
        gap=st.sampled_from([0, 60, 600]),
    )
    def intent(self, kind, count, alarm, crash, again, gap):
        self.events += 1
        event_id = f"event-{self.events}"
        count = count if kind in (IntentKind.SCALE_UP, IntentKind.SCALE_DOWN) else 0
        scaling = kind in (IntentKind.SCALE_UP, IntentKind.SCALE_DOWN)
        if alarm and scaling:
            request = AlarmChange(event_id, "alarm", "ALARM", Intent(kind, count, "alarm"))
        else:
            request = Manual(event_id, Intent(kind, count, "manual"))
        self.sent.append(request)
        self.world.armed = crash
        self.cycle(request, event_id)
        for _ in range(again):
            self.world.pass_time(gap)
            self.cycle(request, event_id)

    @rule(data=st.data())
    def redeliver(self, data):
        if self.sent:
            request = data.draw(st.sampled_from(self.sent))
            self.cycle(request, request.event_id)

    # -- faults -----------------------------------------------------------------------------------------

    @rule(where=st.sampled_from(CRASH_POINTS), timeout=st.booleans())
    def arm_crash(self, where, timeout):
        """The next cycle dies at `where`: an API error, or the Lambda's timeout."""
        self.world.armed, self.world.timeout = where, timeout

    @rule(data=st.data())
    def node_not_ready(self, data):
        nodes = self.world.cluster.nodes
        if nodes:
            k = data.draw(st.integers(0, len(nodes) - 1))
            nodes[k] = replace(nodes[k], ready=False, ready_since=self.world.now)

    @rule(data=st.data())
    def tags_vanish(self, data):
        fleet = self.world.fleet
        if fleet.instances:
            instance = fleet.instances.pop(data.draw(st.integers(0, len(fleet.instances) - 1)))
            fleet.foreign.append(instance)

    @rule(data=st.data(), kind=st.sampled_from(["bare", "pinned", "do-not-disrupt", "kube-system"]))
    def pin_pod(self, data, kind):
        """A pod bound straight to a node (nodeName set), past any cordon."""
        nodes = [n for n in self.world.cluster.nodes if not n.control_plane]
        if nodes:
            node = data.draw(st.sampled_from(nodes))
            self.events += 1
            self.world.cluster.pods.append(make_pod(kind, f"{kind}-pinned-{self.events}", node.name, 100))

    # -- what must always hold ----------------------------------------------------------------------------

    @invariant()
    def nothing_forbidden_terminated(self):
        assert self.world.violations == []

    @invariant()
    def each_intent_applied_at_most_once(self):
        # Pause and resume scale nothing themselves (a resume's cycle plans as a tick does).
        for request in self.sent:
            intent, event_id = request.intent, request.event_id
            launched = self.world.launched_by.get(event_id, set())
            drained = self.world.drained_by.get(event_id, set())
            if intent.kind is IntentKind.SCALE_UP:
                assert len(launched) <= intent.count, f"{event_id} scale_up {intent.count}: {sorted(launched)}"
                assert not drained, f"{event_id} scale_up {intent.count} drained {sorted(drained)}"
            if intent.kind is IntentKind.SCALE_DOWN:
                assert len(drained) <= intent.count, f"{event_id} scale_down {intent.count}: {sorted(drained)}"
                assert not launched, f"{event_id} scale_down {intent.count} launched {sorted(launched)}"


Invariants.TestCase.settings = settings(
    max_examples=RUNS,
    stateful_step_count=STEPS,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestInvariants = Invariants.TestCase
