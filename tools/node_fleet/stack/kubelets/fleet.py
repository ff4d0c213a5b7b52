"""KubeletFleet: the kubelets, the scheduler, the controllers and node-exporter, run together
over the fake API server and moto's EC2; over a real API server, the kubelets and node-exporter
only (see the package docstring)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from node_fleet.stack.kube_api import FakeKube
from node_fleet.stack.kube_real import RealKube
from node_fleet.stack.prometheus import duration

from .controllers import ReplicaSet, ReplicaSetController, collect_pods
from .exporter import Load, NodeExporter
from .kubelet import GONE_STATES, Kubelet, WorkerShape, describe_workers, node_back, node_lost, register
from .real import NodeLeases, run_pods, start_workload
from .real import scale as scale_replicaset
from .scheduler import schedule

log = logging.getLogger(__name__)


class KubeletFleet:
    """See the module docstring. `ec2` is a boto3 EC2 client on the account the workers live in."""

    def __init__(
        self,
        kube: FakeKube | RealKube,
        ec2: Any,
        cluster_name: str,
        *,
        shape: WorkerShape | None = None,
        boot_delay_s: float = 2.0,
        usage_factor: float = 0.5,
        base_usage_m: int = 50,
        base_mem_mib: int = 400,
        pool: str = "workers",
        clock: Callable[[], float] = time.time,
        metrics_clock: Callable[[], float] = time.time,
        interval_s: float = 0.2,
    ) -> None:
        self.kube = kube
        # On a real API server, kube-scheduler and the controllers are the real ones.
        self._real = kube if isinstance(kube, RealKube) else None
        self._leases = NodeLeases()
        self.ec2 = ec2
        self.cluster_name = cluster_name
        self.shape = shape or WorkerShape()
        self.boot_delay_s = boot_delay_s
        self.usage_factor = usage_factor
        self.base_usage_m = base_usage_m
        self.base_mem_mib = base_mem_mib
        self.pool = pool
        self.clock = clock
        self.interval_s = interval_s
        self._lock = threading.RLock()
        self._kubelets: dict[str, Kubelet] = {}
        self._static: dict[str, tuple[int, int]] = {}
        self._replicasets = ReplicaSetController()
        self._exporter = NodeExporter(self._lock, metrics_clock)
        self._never_join_budget = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.errors: list[str] = []
        """The last errors of the background loop (it keeps going)."""

    # -- lifecycle -----------------------------------------------------------------------------------

    def start(self) -> KubeletFleet:
        """Serve /metrics and run step() every interval_s on a thread."""
        self.serve_metrics()
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, name="kubelets", daemon=True)
            self._thread.start()
        return self

    def serve_metrics(self) -> None:
        """Start the /metrics endpoint only (the loop waits for start())."""
        self._exporter.serve()

    def stop(self) -> None:
        """Stop the loop and the metrics endpoint (idempotent)."""
        self.pause()
        self._exporter.stop()

    def pause(self) -> None:
        """Stop the loop only (the metrics endpoint keeps serving); start() resumes it."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def reset(self) -> None:
        """Forget every kubelet, static node and workload (the API's objects are the caller's)."""
        with self._lock:
            self._kubelets.clear()
            self._static.clear()
            self._replicasets.sets.clear()
            self._exporter.usage.clear()
            self._leases.clear()
            self._never_join_budget = 0
            self.errors.clear()

    @property
    def metrics_target(self) -> str:
        """host:port of the /metrics endpoint, for a Prometheus static_config."""
        return self._exporter.target

    def scrape_config(self, interval_s: float) -> dict[str, Any]:
        """The Prometheus scrape_configs entry for the metrics endpoint."""
        return {
            "job_name": "node-exporter",
            "scrape_interval": duration(interval_s),
            "scrape_timeout": duration(interval_s),
            "honor_labels": True,
            "static_configs": [{"targets": [self.metrics_target]}],
        }

    # -- seeding and steering --------------------------------------------------------------------------

    def never_join(self, count: int = 1) -> None:
        """The next `count` worker instances seen for the first time boot but never register a Node."""
        with self._lock:
            self._never_join_budget += count

    def adopt(self, instance: Mapping[str, Any], *, join: bool = True) -> str:
        """Take an instance as already booted (seeding); with `join`, its Node registers now.
        Returns the node name."""
        with self._lock:
            kubelet = self._kubelet_for(instance, allow_never=False)
            kubelet.running_since = self.clock() - self.boot_delay_s
            if join and not kubelet.joined:
                register(self.kube, kubelet, self.shape, self.pool, self.clock())
            return kubelet.node

    def add_static_node(self, name: str, cpu_m: int, mem_mib: int) -> None:
        """A node not managed through EC2 here (the K3s server): its metrics are served too."""
        with self._lock:
            self._static[name] = (cpu_m, mem_mib)

    def add_workload(
        self,
        name: str,
        replicas: int,
        cpu_m: int,
        mem_mib: int = 256,
        *,
        namespace: str = "default",
        usage: float | None = None,
        labels: Mapping[str, str] | None = None,
        annotations: Mapping[str, str] | None = None,
        nodes: Sequence[str] | None = None,
        grace_period_s: int = 30,
    ) -> ReplicaSet:
        """A ReplicaSet of `replicas` pods requesting `cpu_m`/`mem_mib` each, labelled app=<name>.
        With `nodes`, the pods start bound to those nodes in turn (an existing workload, placed);
        otherwise they start pending and the scheduler places them."""
        workload = ReplicaSet(
            name,
            namespace,
            replicas,
            cpu_m,
            mem_mib,
            usage=usage,
            labels={"app": name, **(labels or {})},
            annotations=dict(annotations or {}),
            grace_period_s=grace_period_s,
        )
        with self._lock, self.kube.locked():
            if (namespace, name) in self._replicasets.sets:
                raise ValueError(f"workload {namespace}/{name} exists")
            self._replicasets.sets[(namespace, name)] = workload
            now = self.clock()
            pods = [
                self._replicasets.new_pod(workload, now, nodes[i % len(nodes)] if nodes else None)
                for i in range(replicas)
            ]
            if self._real is None:
                self.kube.add(*pods)
            else:
                template = self._replicasets.new_pod(workload, now, None)
                start_workload(self._real, workload, template, pods if nodes else [], now)
            self._refresh_usage()
        return workload

    def scale(self, name: str, replicas: int, namespace: str = "default") -> None:
        """Set a workload's replicas; the next step() adds or removes pods (on a real API server,
        its ReplicaSet controller does)."""
        with self._lock:
            workload = self._replicasets.sets[(namespace, name)]
            workload.replicas = replicas
            if self._real is not None:
                scale_replicaset(self._real, workload)

    def set_usage(self, name: str, usage: float, namespace: str = "default") -> None:
        """Set the share of its requests a workload's pods use."""
        with self._lock:
            self._replicasets.sets[(namespace, name)].usage = usage

    def workload(self, name: str, namespace: str = "default") -> ReplicaSet:
        return self._replicasets.sets[(namespace, name)]

    # -- inspection ------------------------------------------------------------------------------------

    def node_of(self, instance_id: str) -> str | None:
        """The node name an instance registers (or would register) as; None if not seen yet."""
        with self._lock:
            kubelet = self._kubelets.get(instance_id)
            return kubelet.node if kubelet else None

    def serving(self) -> list[str]:
        """Names of the nodes whose metrics are served now."""
        with self._lock:
            return sorted(self._exporter.usage)

    def cpu_used_m(self, node: str) -> float | None:
        """Millicores the node's metrics say it uses now (None: not served)."""
        with self._lock:
            usage = self._exporter.usage.get(node)
            return usage.cpu_used_m if usage else None

    def cpu_share(self, node: str) -> float | None:
        """The node's CPU usage ratio now, 0..1: what Prometheus' rate() converges to."""
        with self._lock:
            usage = self._exporter.usage.get(node)
            return min(1.0, usage.cpu_used_m / (usage.cpus * 1000)) if usage else None

    # -- one pass ---------------------------------------------------------------------------------------

    def step(self) -> None:
        """One pass: kubelets from EC2, pod lifecycle, controllers, scheduler, usage (on a real API
        server: kubelets from EC2, their Leases and pods, usage)."""
        instances = describe_workers(self.ec2, self.cluster_name)
        with self._lock, self.kube.locked():
            now = self.clock()
            self._kubelets_from(instances, now)
            if self._real is None:
                collect_pods(self.kube)
                self._replicasets.reconcile(self.kube, now)
                schedule(self.kube, now)
                self._refresh_usage()
                return
            running = self._running_nodes()
            self._leases.renew(self._real, running)
            pods = self._real.objects("pods")
            run_pods(self._real, pods, running, now)
            self._refresh_usage(pods)

    def _running_nodes(self) -> list[str]:
        """The nodes whose kubelet runs: the static ones and the joined workers not stopped."""
        workers = [k.node for k in self._kubelets.values() if k.joined and not k.stopped]
        return [*self._static, *workers]

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.step()
            except Exception as exc:  # the loop outlives a hiccup (moto busy, a reset in progress)
                self.errors = [*self.errors[-9:], f"{type(exc).__name__}: {exc}"]
                log.debug("kubelets: step failed", exc_info=True)
            self._stop.wait(self.interval_s)

    def _kubelet_for(self, instance: Mapping[str, Any], *, allow_never: bool = True) -> Kubelet:
        kubelet = self._kubelets.get(instance["InstanceId"])
        if kubelet is None:
            never = allow_never and self._never_join_budget > 0
            if never:
                self._never_join_budget -= 1
            kubelet = Kubelet.of(instance, self.shape.instance_type, never_joins=never)
            self._kubelets[kubelet.instance_id] = kubelet
        return kubelet

    def _kubelets_from(self, instances: Iterable[Mapping[str, Any]], now: float) -> None:
        for instance in instances:
            kubelet = self._kubelet_for(instance)
            state = instance["State"]["Name"]
            if state in GONE_STATES:
                if not kubelet.stopped:
                    kubelet.stopped = True
                    kubelet.running_since = None
                    node_lost(self.kube, kubelet, now)
                continue
            if state != "running":
                continue
            if kubelet.running_since is None:
                kubelet.running_since = now
            if now - kubelet.running_since < self.boot_delay_s:
                continue
            if not kubelet.joined:
                if not kubelet.never_joins:
                    register(self.kube, kubelet, self.shape, self.pool, now)
                    kubelet.stopped = False
            elif kubelet.stopped:  # started again from the warm pool (a terminated one never runs again)
                kubelet.stopped = False
                node_back(self.kube, kubelet, self.shape, self.pool, now)

    def _refresh_usage(self, pods: Sequence[Mapping[str, Any]] | None = None) -> None:
        """Recompute each node's CPU and memory use from its pods (`pods`: the pods just listed),
        after integrating the old use."""
        serving: dict[str, tuple[int, int]] = dict(self._static)
        for kubelet in self._kubelets.values():
            if kubelet.joined and not kubelet.stopped:
                serving[kubelet.node] = (self.shape.cpu_m, self.shape.mem_mib)
        load = Load(
            self.base_usage_m,
            self.base_mem_mib,
            self.usage_factor,
            {(rs.namespace, rs.owner_name): rs.usage for rs in self._replicasets.sets.values()},
        )
        pods = self.kube.objects("pods") if pods is None else pods
        self._exporter.update(serving, *load.per_node(serving, pods), pods)

    def exposition(self) -> str:
        """The /metrics text (Prometheus text format 0.0.4)."""
        return self._exporter.exposition()
