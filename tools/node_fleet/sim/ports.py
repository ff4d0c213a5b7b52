"""The core's ports (Fleet, Cluster, Metrics, StateStore) over the virtual cluster, on a clock the
engine moves."""

from __future__ import annotations

import bisect
from collections.abc import Mapping, Sequence
from dataclasses import replace

from autoscaler.forecast import DemandHistory, HistoryRead
from autoscaler.model import Instance, InstanceState, MetricsView, Node, Pod, ScalingState
from autoscaler.ports import EvictionOutcome, LaunchResult, StaleStateError
from node_fleet.sim.cluster import DRAINING, ZONES, VirtualCluster


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
        now = self._clock.now
        for i in self._vc.instances.values():
            if i.terminated_at is not None:
                continue
            stopping = self._vc.stopping(i.id, now)
            if stopping is not None:
                state = InstanceState.STOPPING if stopping else InstanceState.STOPPED
            else:
                state = InstanceState.RUNNING if i.running_at <= now else InstanceState.PENDING
            out.append(
                Instance(
                    i.id,
                    state,
                    i.az,
                    self._vc.model.instance_type,
                    i.launched_at,
                    self._vc.lifecycle(i.id),
                    stopped_at=i.stopped_at,
                )
            )
        return out

    def launch(self, az: str, count: int, token: str) -> LaunchResult:
        return LaunchResult(self._vc.launch(az, count, token, self._clock.now))

    def terminate(self, instance_id: str) -> None:
        self._vc.terminate(instance_id, self._clock.now)

    def stop(self, instance_id: str) -> None:
        self._vc.stop(instance_id, self._clock.now)

    def start(self, instance_ids: Sequence[str]) -> LaunchResult:
        started = tuple(i for i in instance_ids if self._vc.start(i, self._clock.now))
        return LaunchResult(started, tuple(f"{i}: not a stopped worker" for i in instance_ids if i not in started))


class SimCluster:
    def __init__(self, vc: VirtualCluster, clock: Clock) -> None:
        self._vc, self._clock = vc, clock

    def list_nodes(self) -> Sequence[Node]:
        m = self._vc.model
        ready = [
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
        # A stopped worker's Node: NotReady since it stopped, as its kubelet left it.
        stopped = [
            Node(
                name,
                m.node_cpu_m,
                m.node_mem_mib,
                name.removeprefix("node-"),
                self._vc.instances[name.removeprefix("node-")].az,
                ready=False,
                cordoned=cordoned,
                taints=(*m.node_taints, DRAINING) if cordoned else m.node_taints,
                alloc_pods=m.node_max_pods,
                ready_since=self._vc.instances[name.removeprefix("node-")].stopped_at,
            )
            for name, cordoned in self._vc.stopped_nodes.items()
        ]
        return ready + stopped

    def list_pods(self) -> Sequence[Pod]:
        return [
            Pod(
                p.pod.name,
                p.pod.namespace,
                p.pod.cpu_m,
                p.pod.mem_mib,
                node=p.node,
                owner_kind=p.pod.owner_kind,
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
        """spec.unschedulable and node-fleet's draining taint, as the Kubernetes adapter sets them."""
        if node in self._vc.stopped_nodes:
            self._vc.stopped_nodes[node] = value
        if node in self._vc.nodes:
            slot = self._vc.nodes[node].slot
            slot.unschedulable = value
            others = tuple(t for t in slot.taints if t != DRAINING)
            slot.taints = (*others, DRAINING) if value else others

    def evict(self, pod: Pod) -> EvictionOutcome:
        return self._vc.evict(pod.name, self._clock.now)

    def delete_node(self, node: str) -> None:
        self._vc.drop_node(node, self._clock.now)


class SimMetrics:
    def __init__(self, vc: VirtualCluster) -> None:
        self._vc = vc

    def sample(self, now: float) -> MetricsView:
        cluster, per_node = self._vc.metrics_at(now)
        if cluster is None:
            return MetricsView(unknown_reason="no scrape yet")
        return MetricsView(cluster_cpu=cluster, node_cpu=per_node)

    def demand(self, now: float, read: HistoryRead) -> DemandHistory:
        """The replay's own past, as Prometheus would give it: on a grid of `read.step_s` over each
        window, never after `now`, each point as scraped `metrics_lag_s` before it."""
        samples, lag = self._vc.record.samples, self._vc.model.metrics_lag_s
        found: dict[float, tuple[float, float, float]] = {}
        for offset in read.lags_s:
            t, end = now - offset - read.before_s, min(now, now - offset + read.after_s)
            while t <= end + 1e-6:
                i = bisect.bisect_right(samples, t - lag, key=lambda s: s.t)
                if i:
                    found[t] = (t, samples[i - 1].demand_cpu_m, samples[i - 1].demand_mem_mib)
                t += read.step_s
        return DemandHistory(tuple(found[t] for t in sorted(found)), read.step_s)


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
