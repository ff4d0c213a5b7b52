"""The core's ports (Fleet, Cluster, Metrics, StateStore) over the virtual cluster, on a clock the
engine moves."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

from autoscaler.model import Instance, InstanceState, MetricsView, Node, Pod, ScalingState
from autoscaler.ports import EvictionOutcome, LaunchResult, StaleStateError
from node_fleet.sim.cluster import ZONES, VirtualCluster


class Clock:
    def __init__(self) -> None:
        self.now = 0.0


class SimFleet:
    def __init__(self, vc: VirtualCluster, clock: Clock) -> None:
        self._vc, self._clock = vc, clock

    def zones(self) -> Sequence[str]:
        return ZONES

    def list_workers(self) -> Sequence[Instance]:
        out = []
        for i in self._vc.instances.values():
            if i.terminated_at is not None:
                continue
            state = InstanceState.RUNNING if i.running_at <= self._clock.now else InstanceState.PENDING
            out.append(Instance(i.id, state, i.az, self._vc.model.instance_type, i.launched_at))
        return out

    def launch(self, az: str, count: int, token: str) -> LaunchResult:
        return LaunchResult(self._vc.launch(az, count, token, self._clock.now))

    def terminate(self, instance_id: str) -> None:
        self._vc.terminate(instance_id, self._clock.now)


class SimCluster:
    def __init__(self, vc: VirtualCluster, clock: Clock) -> None:
        self._vc, self._clock = vc, clock

    def list_nodes(self) -> Sequence[Node]:
        m = self._vc.model
        return [
            Node(
                n.name,
                m.node_cpu_m,
                m.node_mem_mib,
                n.instance_id,
                n.az,
                cordoned=n.slot.unschedulable,
                created_at=n.created_at,
                labels=n.slot.labels,
                taints=n.slot.taints,
                alloc_pods=m.node_max_pods,
            )
            for n in self._vc.nodes.values()
        ]

    def list_pods(self) -> Sequence[Pod]:
        return [
            Pod(
                p.pod.name,
                p.pod.namespace,
                p.pod.cpu_m,
                p.pod.mem_mib,
                node=p.node,
                unschedulable_since=p.unschedulable_since,
                grace_period_s=p.pod.grace_period_s,
                labels=p.pod.labels,
                placement=p.pod.placement,
            )
            for p in self._vc.pods.values()
        ]

    def disruption_budgets(self) -> Mapping[str, int]:
        return {}

    def daemonset_pods(self) -> Sequence[Pod]:
        return ()

    def cordon(self, node: str) -> None:
        self._set_cordon(node, True)

    def uncordon(self, node: str) -> None:
        self._set_cordon(node, False)

    def _set_cordon(self, node: str, value: bool) -> None:
        if node in self._vc.nodes:
            self._vc.nodes[node].slot.unschedulable = value

    def evict(self, pod: Pod) -> EvictionOutcome:
        return self._vc.evict(pod.name, self._clock.now)

    def delete_node(self, node: str) -> None:
        self._vc.drop_node(node)


class SimMetrics:
    def __init__(self, vc: VirtualCluster) -> None:
        self._vc = vc

    def sample(self, now: float) -> MetricsView:
        cluster, per_node = self._vc.metrics_at(now)
        if cluster is None:
            return MetricsView(unknown_reason="no scrape yet")
        return MetricsView(cluster_cpu=cluster, node_cpu=per_node)


class MemoryStateStore:
    def __init__(self) -> None:
        self._state = ScalingState()

    def load(self) -> ScalingState:
        return self._state

    def save(self, state: ScalingState) -> ScalingState:
        if state.version != self._state.version:
            raise StaleStateError(f"state changed since version {state.version} was loaded (now {self._state.version})")
        self._state = replace(state, version=state.version + 1)
        return self._state
