"""The virtual cluster (the core's ports over it are in `node_fleet.sim.ports`).

What it models, all seeded and deterministic: launch-to-running and running-to-Ready latency
(lognormal, median ~45 s to Ready, p95 ~90 s), a share of launches that never join, EC2
per-second billing from `running`, a first-fit scheduler on the planner's own placement
predicate (`room.Room`: resources, pods per node, selectors, affinity, taints, ports,
spread), evictions that free the node only after the pod's grace period while the controller
recreates the pod at once (a Job's pod then does its work over), and a Prometheus view that lags
by the scrape interval plus the rate window.

The warm pool: a stopped worker keeps its Node (NotReady, out of the scheduler's reach) and bills
only its volume; started again, it runs after 5 to 15 s and is Ready after a lognormal median 20 s,
p95 40 s. That is an assumption, not a measurement: a start skips what takes most of a launch
(creating the network interface and the root volume from the AMI, the first boot's cloud-init and
the K3s install; where a launch's time goes: martysweet.co.uk/ec2-launch-times, October 2023), and
the K3s agent rejoins under its existing Node. Stopping takes 30 s (EC2 `stopping`, not billed).
"""

from __future__ import annotations

import bisect
import math
import random
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from autoscaler.model import DRAINING_TAINT_KEY, Pod
from autoscaler.placement import Move, Slot
from autoscaler.ports import EvictionOutcome
from autoscaler.pricing import DEFAULT_INSTANCE_TYPE, ON_DEMAND, SPOT
from autoscaler.room import Room
from autoscaler.scheduling import HOSTNAME_LABEL, ZONE_LABEL, Taint
from node_fleet.sim.record import InstanceLife, PodLife, RunRecord, Sample, ScaleEvent
from node_fleet.sim.spot import NO_SPOT, SpotMarket, SpotModel
from node_fleet.sim.workload import JOB, PodSpec, Workload

ZONES = ("sim-a", "sim-b")
DRAINING = Taint(DRAINING_TAINT_KEY, "true", "NoSchedule")


@dataclass(frozen=True, slots=True)
class ClusterModel:
    """How the virtual cluster behaves; the defaults follow reference/benchmark.md."""

    instance_type: str = DEFAULT_INSTANCE_TYPE
    node_cpu_m: int = 2000
    node_mem_mib: int = 7680
    node_max_pods: int = 110
    node_labels: Mapping[str, str] = field(default_factory=dict)
    """Labels every worker gets besides its hostname and zone (the template's WORKER_LABELS)."""
    node_taints: tuple[Taint, ...] = ()
    running_after_s: tuple[float, float] = (5.0, 17.0)
    """EC2 pending -> running, uniform in this range."""
    ready_median_s: float = 45.0
    ready_p95_s: float = 90.0
    """Launch -> node Ready, lognormal."""
    never_join_share: float = 0.01
    start_running_after_s: tuple[float, float] = (5.0, 15.0)
    """A stopped worker's start -> running, uniform in this range."""
    start_ready_median_s: float = 20.0
    start_ready_p95_s: float = 40.0
    """Start -> node Ready again, lognormal."""
    stopping_s: float = 30.0
    metrics_lag_s: float = 75.0
    """Scrape interval (15 s) plus the rate window (60 s)."""
    grace_period_s: int = 30
    seed: int = 1
    spot: SpotModel = NO_SPOT
    """Which launches are spot, and how often EC2 takes a spot worker back."""


@dataclass(slots=True)
class _VInstance:
    id: str
    az: str
    launched_at: float
    running_at: float
    ready_at: float | None
    terminated_at: float | None = None
    life: InstanceLife | None = None
    stopped_at: float | None = None
    """Set while it is stopping or stopped (the warm pool)."""


@dataclass(slots=True)
class _VNode:
    name: str
    instance_id: str
    az: str
    created_at: float
    slot: Slot
    """What the scheduler sees of the node: its labels, taints, cordon and free room."""
    used_cpu: float = 0.0
    pods: set[str] = field(default_factory=set)


@dataclass(slots=True)
class _VPod:
    spec: PodSpec
    pod: Pod
    """The spec as the scheduler places it (unbound)."""
    created_at: float
    move: Move | None = None
    """Where it is bound, and the room it takes there."""
    unschedulable_since: float | None = None
    life: PodLife | None = None
    demand_until: float | None = None
    """The workload's own end of the pod: a Job's pod started over runs past it, and that rerun is
    the policy's waste, not demand (the lower bound reads demand)."""

    @property
    def node(self) -> str | None:
        return self.move.slot.name if self.move is not None else None


class VirtualCluster:
    def __init__(self, workload: Workload, model: ClusterModel, record: RunRecord) -> None:
        self.model = model
        self.record = record
        self._rng = random.Random(model.seed)  # nosec B311  # seeded, reproducible simulation; not security
        self._sigma = math.log(model.ready_p95_s / model.ready_median_s) / 1.645
        self._start_sigma = math.log(model.start_ready_p95_s / model.start_ready_median_s) / 1.645
        self._arrivals = sorted(workload.pods, key=lambda p: p.start_s)
        self._next_arrival = 0
        self._ends: list[tuple[float, str]] = []
        self.instances: dict[str, _VInstance] = {}
        self.nodes: dict[str, _VNode] = {}
        self.stopped_nodes: dict[str, bool] = {}
        """The Nodes of stopped workers (NotReady, no destination), and whether each is cordoned."""
        self.pods: dict[str, _VPod] = {}
        self.room = Room()
        self._terminating: list[tuple[float, Move]] = []  # (free at, the evicted pod's room)
        self._launch_tokens: dict[str, tuple[str, ...]] = {}
        self._joining: list[tuple[float, str]] = []  # (ready at, instance id)
        self._seq = 0
        self._history: deque[tuple[float, float | None, dict[str, float]]] = deque()
        self.spot = SpotMarket(model.spot, record)

    # -- the world moving on ------------------------------------------------------------------

    def boot(self, count: int) -> None:
        """Start with `count` Ready workers, as a running cluster would have."""
        for i in range(count):
            self._new_instance(ZONES[i % len(ZONES)], 0.0, ready_after=0.0)

    def step(self, now: float) -> None:
        running_spot = (i.id for i in self.instances.values() if i.terminated_at is None and i.running_at <= now)
        for instance_id in self.spot.step(now, (i for i in running_spot if self.lifecycle(i) == SPOT)):
            self._end(instance_id, now)  # EC2 takes it back: not the policy's action
            del self.spot.warned[instance_id]
        while self._joining and self._joining[0][0] <= now:
            _, iid = self._joining.pop(0)
            inst = self.instances[iid]
            if inst.terminated_at is None and inst.stopped_at is None:
                self._register(inst, now)
        while self._terminating and self._terminating[0][0] <= now:
            self.room.undo((self._terminating.pop(0)[1],))
        while self._ends and self._ends[0][0] <= now:
            _, name = self._ends.pop(0)
            self._end_pod(name, now)
        while self._next_arrival < len(self._arrivals) and self._arrivals[self._next_arrival].start_s <= now:
            spec = self._arrivals[self._next_arrival]
            self._next_arrival += 1
            life = PodLife(spec.name, spec.start_s)
            self.record.pods.append(life)
            pod = Pod(
                spec.name,
                "default",
                spec.cpu_m,
                spec.mem_mib,
                owner_kind=spec.owner_kind,
                grace_period_s=self.model.grace_period_s,
                labels=spec.labels,
                placement=spec.placement,
            )
            self.pods[spec.name] = _VPod(spec, pod, spec.start_s, life=life, demand_until=spec.end_s)
            if spec.end_s is not None:
                bisect.insort(self._ends, (spec.end_s, spec.name))
        self._schedule(now)
        self._observe(now)

    def _schedule(self, now: float) -> None:
        for pod in self.pods.values():
            if pod.move is not None:
                continue
            slot = self.room.first_fit(pod.pod)
            if slot is None:
                if pod.unschedulable_since is None:
                    pod.unschedulable_since = now
                continue
            pod.move = self.room.place(pod.pod, slot)
            node = self.nodes[slot.name]
            node.used_cpu += pod.spec.cpu_m * pod.spec.usage
            node.pods.add(pod.spec.name)
            pod.unschedulable_since = None
            self.spot.settle(pod.spec.name, now)
            if pod.life is not None and pod.life.bound_at is None:
                pod.life.bound_at = now
                if now > pod.life.created_at:
                    pod.life.waited_for = self._wait_cause(node, pod.life.created_at)

    def _wait_cause(self, node: _VNode, created_at: float) -> str:
        if node.created_at <= created_at:
            return "room"
        life = self.instances[node.instance_id].life
        return "start" if life is not None and life.stops else "launch"

    def _end_pod(self, name: str, now: float) -> None:
        pod = self.pods.pop(name, None)
        if pod is not None and pod.life is not None:
            pod.life.ended_at = now
        self.spot.settle(name, now)
        if pod is not None and pod.move is not None:
            self._release(pod, now, graceful=False)

    def _release(self, pod: _VPod, now: float, graceful: bool) -> None:
        """Unbind a pod; a graceful end keeps its room taken for the grace period."""
        move, pod.move = pod.move, None
        node = self.nodes[move.slot.name]
        node.pods.discard(pod.spec.name)
        node.used_cpu -= pod.spec.cpu_m * pod.spec.usage
        if graceful:
            bisect.insort(self._terminating, (now + self.model.grace_period_s, move), key=lambda e: e[0])
        else:
            self.room.undo((move,))

    def _observe(self, now: float) -> None:
        used = {n.name: n.used_cpu for n in self.nodes.values()}
        ready_cpu = len(self.nodes) * self.model.node_cpu_m
        cluster = sum(used.values()) / ready_cpu if ready_cpu else None
        self._history.append((now, cluster, {k: v / self.model.node_cpu_m for k, v in used.items()}))
        while len(self._history) > 1 and self._history[1][0] <= now - self.model.metrics_lag_s:
            self._history.popleft()
        demand_cpu = demand_mem = pending = 0
        for p in self.pods.values():
            if p.demand_until is None or now < p.demand_until:
                demand_cpu += p.spec.cpu_m
                demand_mem += p.spec.mem_mib
            pending += p.move is None
        self.record.samples.append(
            Sample(
                t=now,
                ready_nodes=len(self.nodes),
                instances=sum(1 for i in self.instances.values() if i.terminated_at is None),
                demand_cpu_m=demand_cpu,
                demand_mem_mib=demand_mem,
                pending_pods=pending,
                used_cpu_m=sum(used.values()),
            )
        )

    # -- instances and nodes ------------------------------------------------------------------

    def _new_instance(self, az: str, now: float, ready_after: float | None = None) -> _VInstance:
        self._seq += 1
        iid = f"i-{self._seq:08x}"
        running = now + self._rng.uniform(*self.model.running_after_s) if ready_after is None else now
        if ready_after is not None:
            ready: float | None = now + ready_after
        elif self._rng.random() < self.model.never_join_share:
            ready = None
        else:
            ready = now + max(running - now, self._rng.lognormvariate(math.log(self.model.ready_median_s), self._sigma))
        inst = _VInstance(iid, az, now, running, ready)
        if ready is not None:
            bisect.insort(self._joining, (ready, iid))
        inst.life = InstanceLife(iid, now, running, ready_at=ready)
        self.record.instances.append(inst.life)
        self.instances[iid] = inst
        return inst

    def _register(self, inst: _VInstance, now: float) -> None:
        """The node joins Ready (a started worker's Node comes back as it was left, cordon included)."""
        m = self.model
        name = f"node-{inst.id}"
        labels = {**m.node_labels, HOSTNAME_LABEL: name, ZONE_LABEL: inst.az}
        cordoned = self.stopped_nodes.pop(name, False)
        taints = (*m.node_taints, DRAINING) if cordoned else m.node_taints
        slot = self.room.add(
            Slot(name, labels, taints, m.node_cpu_m, m.node_mem_mib, m.node_max_pods, cordoned, zone=inst.az)
        )
        self.nodes[name] = _VNode(name, inst.id, inst.az, now, slot)

    def launch(self, az: str, count: int, token: str, now: float) -> tuple[str, ...]:
        if token in self._launch_tokens:
            return self._launch_tokens[token]
        ids = tuple(self._new_instance(az or ZONES[0], now).id for _ in range(count))
        for instance_id in ids[: self.spot.spot_of(count)]:
            self.instances[instance_id].life.lifecycle = SPOT
        self._launch_tokens[token] = ids
        self.record.actions.append(ScaleEvent(now, "launch", count))
        return ids

    def terminate(self, instance_id: str, now: float) -> None:
        inst = self.instances.get(instance_id)
        if inst is None or inst.terminated_at is not None:
            return
        self.record.actions.append(ScaleEvent(now, "terminate", 1))
        self._end(instance_id, now)

    def lifecycle(self, instance_id: str) -> str:
        life = self.instances[instance_id].life
        return life.lifecycle if life is not None else ON_DEMAND

    def _end(self, instance_id: str, now: float) -> None:
        inst = self.instances[instance_id]
        if inst.terminated_at is not None:
            return
        inst.terminated_at = now
        if inst.life is not None:
            inst.life.terminated_at = now
            if inst.life.ready_at is not None and inst.life.ready_at > now:
                inst.life.ready_at = None
        self.stopped_nodes.pop(f"node-{instance_id}", None)
        self.drop_node(f"node-{instance_id}", now)

    def stop(self, instance_id: str, now: float) -> None:
        """Into the warm pool: billing stops, the Node stays, NotReady; pods left on it are recreated."""
        inst = self.instances.get(instance_id)
        if inst is None or inst.terminated_at is not None or inst.stopped_at is not None:
            return
        inst.stopped_at = now
        if inst.life is not None:
            inst.life.stops.append((now, None))
        self.record.actions.append(ScaleEvent(now, "stop", 1))
        name = f"node-{instance_id}"
        node = self.nodes.get(name)
        self.stopped_nodes[name] = node is not None and node.slot.unschedulable
        self.drop_node(name, now)

    def start(self, instance_id: str, now: float) -> bool:
        """Out of the warm pool: False unless it is stopped (stopping takes `stopping_s`)."""
        inst = self.instances.get(instance_id)
        if inst is None or inst.terminated_at is not None or inst.stopped_at is None:
            return False
        if now < inst.stopped_at + self.model.stopping_s:
            return False
        m = self.model
        inst.stopped_at = None
        inst.launched_at = now  # EC2's LaunchTime is the last start
        inst.running_at = now + self._rng.uniform(*m.start_running_after_s)
        ready = now + max(
            inst.running_at - now, self._rng.lognormvariate(math.log(m.start_ready_median_s), self._start_sigma)
        )
        inst.ready_at = ready
        bisect.insort(self._joining, (ready, instance_id))
        if inst.life is not None:
            inst.life.stops[-1] = (inst.life.stops[-1][0], inst.running_at)
        self.record.actions.append(ScaleEvent(now, "start", 1))
        return True

    def stopping(self, instance_id: str, now: float) -> bool | None:
        """None if not in the warm pool, else whether it is still stopping."""
        inst = self.instances[instance_id]
        return None if inst.stopped_at is None else now < inst.stopped_at + self.model.stopping_s

    def drop_node(self, name: str, now: float) -> None:
        """The Node object goes; its pods are recreated by their controllers, unbound."""
        node = self.nodes.pop(name, None)
        if node is None:
            return
        # Its pods, terminating ones included, leave the room while it is still a destination,
        # so the room's indexes forget them; then the empty node goes.
        slot = node.slot
        self.room.undo([Move(p, slot) for p in reversed(slot.pods)])
        self.room.withdraw(name)
        self._terminating = [t for t in self._terminating if t[1].slot is not slot]
        for pod_name in node.pods:
            pod = self.pods[pod_name]
            pod.move = None
            pod.unschedulable_since = None
            self.spot.displace(pod_name, node.instance_id, now)
            self._start_over(pod, now)

    def evict(self, name: str, now: float) -> EvictionOutcome:
        pod = self.pods.get(name)
        if pod is None or pod.move is None:
            return EvictionOutcome.GONE
        # The controller recreates the pod at once (a new object: the old one may still be placed
        # where the new one lands); the old one holds its room for the grace period.
        self.spot.displace(name, self.nodes[pod.node].instance_id, now)
        self._release(pod, now, graceful=True)
        pod.pod = replace(pod.pod)
        pod.unschedulable_since = None
        self._start_over(pod, now)
        return EvictionOutcome.EVICTED

    def _start_over(self, pod: _VPod, now: float) -> None:
        """A Job's pod recreated (evicted, or lost with its node) does the work again from the start:
        it ends its whole length after now, counted from here as a first run is from its creation.
        A ReplicaSet's ends when it would have."""
        spec = pod.spec
        if spec.owner_kind != JOB or spec.end_s is None:
            return
        self._ends.remove((spec.end_s, spec.name))
        pod.spec = replace(spec, start_s=now, end_s=now + spec.end_s - spec.start_s)
        bisect.insort(self._ends, (pod.spec.end_s, spec.name))

    def metrics_at(self, now: float) -> tuple[float | None, dict[str, float]]:
        """What Prometheus would answer now: the reading of `metrics_lag_s` ago."""
        if self._history and self._history[0][0] <= now - self.model.metrics_lag_s:
            _, cluster, per_node = self._history[0]
            return cluster, per_node
        return None, {}
