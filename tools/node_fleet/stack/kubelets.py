"""A simulated fleet of kubelets, a scheduler and ReplicaSet controllers over the fake API server.

What a K3s cluster on EC2 does around the autoscaler, simply and in the open:

- Kubelets: every EC2 instance tagged as this cluster's worker (`node-fleet.io/cluster=<name>`,
  `node-fleet.io/role=worker`, read from moto) that has been `running` for `boot_delay_s`
  registers a Node: `spec.providerID` `aws:///<az>/<instance-id>`, Ready, allocatable of the
  worker shape, the pool, zone and instance-type labels, named by its private DNS name as K3s
  names it. Instances chosen with `never_join()` boot but never register (a broken AMI, a wrong
  join token). An instance that is shutting down or terminated stops its kubelet: its Node, if
  still there, turns Ready=Unknown and its metrics are no longer served.
- Scheduler: pending pods, oldest first, go first-fit (by CPU and memory requests) onto Ready,
  schedulable nodes whose NoSchedule/NoExecute taints they tolerate; a pod that fits nowhere gets
  `PodScheduled=False`, reason `Unschedulable`, with the time it first did (lastTransitionTime).
- Pod lifecycle: a terminating pod (an eviction gave it a deletionTimestamp) is removed (its
  containers stop at once); a pod bound to a Node that no longer exists is removed (pod GC).
- Controllers: `add_workload()` makes a ReplicaSet-owned set of pods; a pod of it that goes away
  (evicted, removed with its node) is replaced by a new pending one, and `scale()` adds or
  removes pods, as the ReplicaSet controller would. Pods added to the API directly are left as
  they are (a bare pod is not replaced).
- Metrics: for each node with a running kubelet (and the static nodes, such as the server), a
  node-exporter-style `node_cpu_seconds_total{cpu,mode}` counter and
  `node_memory_MemTotal_bytes`/`node_memory_MemAvailable_bytes` gauges, each with
  `instance="<node name>"`, on one HTTP `/metrics` endpoint on 127.0.0.1 (`metrics_target`),
  which Prometheus scrapes with `honor_labels: true`. A node's CPU use is `base_usage_m` plus
  its bound pods' requests times their usage factor (`usage_factor`, or the workload's own).

Time: lifecycle (boot delays, condition times, creation times) follows `clock`, which may run
faster than real time (the demo). Counters advance on `metrics_clock` (real time by default),
since Prometheus computes rates over real seconds.

`start()` runs `step()` every `interval_s` on a thread; tests may also call `step()` themselves.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from autoscaler.adapters.kube_values import cpu_millis, mem_bytes
from node_fleet.stack.kube_api import FakeKube, objects
from node_fleet.stack.prometheus import duration

log = logging.getLogger(__name__)

CLUSTER_TAG = "node-fleet.io/cluster"
ROLE_TAG = "node-fleet.io/role"
WORKER_ROLE = "worker"
POOL_LABEL = "node-fleet.io/pool"
MIB = 2**20
_GONE_STATES = ("shutting-down", "terminated", "stopping", "stopped")
_FINISHED = ("Succeeded", "Failed")


def iso(ts: float) -> str:
    """An API timestamp (RFC 3339, seconds, UTC)."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class WorkerShape:
    """What one worker offers (allocatable) and which instance type it is."""

    cpu_m: int = 2000
    mem_mib: int = 7680
    instance_type: str = "t3.large"


@dataclass
class Workload:
    """A Deployment's ReplicaSet, as far as the simulation needs one."""

    name: str
    namespace: str
    replicas: int
    cpu_m: int
    mem_mib: int
    usage: float | None = None
    """Share of its CPU (and memory) requests a pod uses; None: the fleet's usage_factor."""
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    grace_period_s: int = 30

    @property
    def owner_name(self) -> str:
        return f"{self.name}-6b8f7c9d5"


@dataclass
class _Kubelet:
    instance_id: str
    az: str
    node: str
    ip: str
    instance_type: str
    running_since: float | None = None
    joined: bool = False
    stopped: bool = False
    never_joins: bool = False


@dataclass
class _NodeUsage:
    cpus: int
    mem_total: int
    cpu_used_m: float = 0.0
    mem_used: float = 0.0
    idle: float = 0.0
    busy: float = 0.0
    last: float = 0.0


class KubeletFleet:
    """See the module docstring. `ec2` is a boto3 EC2 client on the account the workers live in."""

    def __init__(
        self,
        kube: FakeKube,
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
        self.ec2 = ec2
        self.cluster_name = cluster_name
        self.shape = shape or WorkerShape()
        self.boot_delay_s = boot_delay_s
        self.usage_factor = usage_factor
        self.base_usage_m = base_usage_m
        self.base_mem_mib = base_mem_mib
        self.pool = pool
        self.clock = clock
        self.metrics_clock = metrics_clock
        self.interval_s = interval_s
        self._lock = threading.RLock()
        self._kubelets: dict[str, _Kubelet] = {}
        self._static: dict[str, tuple[int, int]] = {}
        self._workloads: dict[tuple[str, str], Workload] = {}
        self._usage: dict[str, _NodeUsage] = {}
        self._never_join_budget = 0
        self._serial = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._http: ThreadingHTTPServer | None = None
        self._http_thread: threading.Thread | None = None
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
        if self._http is None:
            server = ThreadingHTTPServer(("127.0.0.1", 0), _metrics_handler(self))
            server.daemon_threads = True
            self._http = server
            self._http_thread = threading.Thread(
                target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="kubelet-metrics", daemon=True
            )
            self._http_thread.start()

    def stop(self) -> None:
        """Stop the loop and the metrics endpoint (idempotent)."""
        self.pause()
        server, self._http = self._http, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._http_thread is not None:
            self._http_thread.join(timeout=5)
            self._http_thread = None

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
            self._workloads.clear()
            self._usage.clear()
            self._never_join_budget = 0
            self.errors.clear()

    @property
    def metrics_target(self) -> str:
        """host:port of the /metrics endpoint, for a Prometheus static_config."""
        if self._http is None:
            raise RuntimeError("the kubelets are not started")
        host, port = self._http.server_address[:2]
        return f"{host}:{port}"

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
                self._register(kubelet, self.clock())
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
    ) -> Workload:
        """A ReplicaSet of `replicas` pods requesting `cpu_m`/`mem_mib` each, labelled app=<name>.
        With `nodes`, the pods start bound to those nodes in turn (an existing workload, placed);
        otherwise they start pending and the scheduler places them."""
        workload = Workload(
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
            if (namespace, name) in self._workloads:
                raise ValueError(f"workload {namespace}/{name} exists")
            self._workloads[(namespace, name)] = workload
            now = self.clock()
            pods = [self._new_pod(workload, now, nodes[i % len(nodes)] if nodes else None) for i in range(replicas)]
            self.kube.add(*pods)
            self._refresh_usage()
        return workload

    def scale(self, name: str, replicas: int, namespace: str = "default") -> None:
        """Set a workload's replicas; the next step() adds or removes pods."""
        with self._lock:
            self._workloads[(namespace, name)].replicas = replicas

    def set_usage(self, name: str, usage: float, namespace: str = "default") -> None:
        """Set the share of its requests a workload's pods use."""
        with self._lock:
            self._workloads[(namespace, name)].usage = usage

    def workload(self, name: str, namespace: str = "default") -> Workload:
        return self._workloads[(namespace, name)]

    # -- inspection ------------------------------------------------------------------------------------

    def node_of(self, instance_id: str) -> str | None:
        """The node name an instance registers (or would register) as; None if not seen yet."""
        with self._lock:
            kubelet = self._kubelets.get(instance_id)
            return kubelet.node if kubelet else None

    def serving(self) -> list[str]:
        """Names of the nodes whose metrics are served now."""
        with self._lock:
            return sorted(self._usage)

    def cpu_used_m(self, node: str) -> float | None:
        """Millicores the node's metrics say it uses now (None: not served)."""
        with self._lock:
            usage = self._usage.get(node)
            return usage.cpu_used_m if usage else None

    def cpu_share(self, node: str) -> float | None:
        """The node's CPU usage ratio now, 0..1: what Prometheus' rate() converges to."""
        with self._lock:
            usage = self._usage.get(node)
            return min(1.0, usage.cpu_used_m / (usage.cpus * 1000)) if usage else None

    # -- one pass ---------------------------------------------------------------------------------------

    def step(self) -> None:
        """One pass: kubelets from EC2, pod lifecycle, controllers, scheduler, usage."""
        instances = self._describe()
        with self._lock, self.kube.locked():
            now = self.clock()
            self._kubelets_from(instances, now)
            self._pod_lifecycle()
            self._controllers(now)
            self._schedule(now)
            self._refresh_usage()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.step()
            except Exception as exc:  # the loop outlives a hiccup (moto busy, a reset in progress)
                self.errors = [*self.errors[-9:], f"{type(exc).__name__}: {exc}"]
                log.debug("kubelets: step failed", exc_info=True)
            self._stop.wait(self.interval_s)

    def _describe(self) -> list[dict[str, Any]]:
        filters = [
            {"Name": f"tag:{CLUSTER_TAG}", "Values": [self.cluster_name]},
            {"Name": f"tag:{ROLE_TAG}", "Values": [WORKER_ROLE]},
        ]
        found = []
        for page in self.ec2.get_paginator("describe_instances").paginate(Filters=filters):
            for reservation in page["Reservations"]:
                found.extend(reservation["Instances"])
        return found

    def _kubelet_for(self, instance: Mapping[str, Any], *, allow_never: bool = True) -> _Kubelet:
        instance_id = instance["InstanceId"]
        kubelet = self._kubelets.get(instance_id)
        if kubelet is None:
            never = allow_never and self._never_join_budget > 0
            if never:
                self._never_join_budget -= 1
            kubelet = _Kubelet(
                instance_id=instance_id,
                az=instance["Placement"]["AvailabilityZone"],
                node=instance.get("PrivateDnsName") or f"ip-{instance_id}",
                ip=instance.get("PrivateIpAddress") or "10.42.0.10",
                instance_type=instance.get("InstanceType") or self.shape.instance_type,
                never_joins=never,
            )
            self._kubelets[instance_id] = kubelet
        return kubelet

    def _kubelets_from(self, instances: Iterable[Mapping[str, Any]], now: float) -> None:
        for instance in instances:
            kubelet = self._kubelet_for(instance)
            state = instance["State"]["Name"]
            if state in _GONE_STATES:
                if not kubelet.stopped:
                    kubelet.stopped = True
                    self._node_lost(kubelet, now)
                continue
            if state != "running" or kubelet.stopped:
                continue
            if kubelet.running_since is None:
                kubelet.running_since = now
            if not kubelet.joined and not kubelet.never_joins and now - kubelet.running_since >= self.boot_delay_s:
                self._register(kubelet, now)

    def _register(self, kubelet: _Kubelet, now: float) -> None:
        node = objects.node(
            kubelet.node,
            instance_id=kubelet.instance_id,
            az=kubelet.az,
            cpu=_cpu_text(self.shape.cpu_m),
            memory=f"{self.shape.mem_mib}Mi",
            labels={POOL_LABEL: self.pool, "node.kubernetes.io/instance-type": kubelet.instance_type},
            created=iso(now),
            instance_type=kubelet.instance_type,
        )
        node["status"]["addresses"] = [
            {"type": "InternalIP", "address": kubelet.ip},
            {"type": "Hostname", "address": kubelet.node},
        ]
        for condition in node["status"]["conditions"]:
            condition["lastHeartbeatTime"] = iso(now)
        self.kube.add(node)
        kubelet.joined = True

    def _node_lost(self, kubelet: _Kubelet, now: float) -> None:
        node = self.kube.get("nodes", kubelet.node)
        if node is None:
            return
        for condition in node["status"]["conditions"]:
            condition.update(
                status="Unknown",
                reason="NodeStatusUnknown",
                message="Kubelet stopped posting node status.",
                lastTransitionTime=iso(now),
            )
        self.kube.add(node)

    def _pod_lifecycle(self) -> None:
        nodes = {n["metadata"]["name"] for n in self.kube.objects("nodes")}
        for pod in self.kube.objects("pods"):
            meta = pod["metadata"]
            bound = (pod.get("spec") or {}).get("nodeName")
            if meta.get("deletionTimestamp") or (bound and bound not in nodes):
                self.kube.remove("pods", meta["name"], meta.get("namespace", ""))

    def _controllers(self, now: float) -> None:
        if not self._workloads:
            return
        pods = self.kube.objects("pods")
        created: list[dict[str, Any]] = []
        for workload in self._workloads.values():
            live = [p for p in pods if _owned_by(p, workload) and not _terminating(p) and not _finished(p)]
            missing = workload.replicas - len(live)
            if missing > 0:
                created.extend(self._new_pod(workload, now, None) for _ in range(missing))
            elif missing < 0:
                # Unbound pods go first, then the newest (as the ReplicaSet controller ranks them).
                live.sort(
                    key=lambda p: (p["metadata"].get("creationTimestamp", ""), p["metadata"]["name"]), reverse=True
                )
                live.sort(key=lambda p: bool(p["spec"].get("nodeName")))
                for pod in live[:-missing]:
                    self.kube.remove("pods", pod["metadata"]["name"], workload.namespace)
        if created:
            self.kube.add(*created)

    def _new_pod(self, workload: Workload, now: float, node: str | None) -> dict[str, Any]:
        self._serial += 1
        pod = objects.pod(
            f"{workload.owner_name}-{self._serial:05d}",
            workload.namespace,
            node=node,
            cpu=f"{workload.cpu_m}m",
            memory=f"{workload.mem_mib}Mi",
            owner=("ReplicaSet", workload.owner_name),
            labels=workload.labels,
            annotations=workload.annotations or None,
            created=iso(now),
            grace_period_s=workload.grace_period_s,
        )
        if node is None:
            # Not tried by the scheduler yet: no condition at all.
            pod["status"] = {"phase": "Pending", "qosClass": "Burstable"}
        return pod

    def _schedule(self, now: float) -> None:
        nodes = [n for n in self.kube.objects("nodes") if _schedulable(n)]
        pods = self.kube.objects("pods")
        free: dict[str, list[int]] = {}
        for node in nodes:
            alloc = node["status"].get("allocatable") or {}
            free[node["metadata"]["name"]] = [_cpu_m(alloc.get("cpu", "0")), _mem_b(alloc.get("memory", "0"))]
        for pod in pods:
            bound = pod["spec"].get("nodeName")
            if bound in free and not _finished(pod):
                cpu, mem = _requests(pod)
                free[bound][0] -= cpu
                free[bound][1] -= mem
        pending = [p for p in pods if not p["spec"].get("nodeName") and not _terminating(p) and not _finished(p)]
        pending.sort(key=lambda p: (p["metadata"].get("creationTimestamp", ""), p["metadata"]["name"]))
        node_count = len(self.kube.objects("nodes"))
        changed = []
        for pod in pending:
            cpu, mem = _requests(pod)
            target = next(
                (
                    n["metadata"]["name"]
                    for n in nodes
                    if _tolerates(pod, n)
                    and free[n["metadata"]["name"]][0] >= cpu
                    and free[n["metadata"]["name"]][1] >= mem
                ),
                None,
            )
            if target is not None:
                free[target][0] -= cpu
                free[target][1] -= mem
                changed.append(_bind(pod, target, now))
            elif _mark_unschedulable(pod, now, node_count):
                changed.append(pod)
        if changed:
            self.kube.add(*changed)

    def _refresh_usage(self) -> None:
        """Recompute each node's CPU and memory use from its pods (after integrating the old use)."""
        serving: dict[str, tuple[int, int]] = dict(self._static)
        for kubelet in self._kubelets.values():
            if kubelet.joined and not kubelet.stopped:
                serving[kubelet.node] = (self.shape.cpu_m, self.shape.mem_mib)
        usage_of = {(w.namespace, w.owner_name): w.usage for w in self._workloads.values()}
        cpu_used: dict[str, float] = dict.fromkeys(serving, float(self.base_usage_m))
        mem_used: dict[str, float] = dict.fromkeys(serving, float(self.base_mem_mib * MIB))
        for pod in self.kube.objects("pods"):
            node = pod["spec"].get("nodeName")
            if node not in serving or _finished(pod):
                continue
            owner = _owner_name(pod)
            factor = usage_of.get((pod["metadata"].get("namespace", ""), owner or ""))
            factor = self.usage_factor if factor is None else factor
            cpu, mem = _requests(pod)
            cpu_used[node] += cpu * factor
            mem_used[node] += mem * factor
        now = self.metrics_clock()
        self._integrate(now)
        for name in list(self._usage):
            if name not in serving:
                del self._usage[name]
        for name, (cpu_m, mem_mib) in serving.items():
            usage = self._usage.get(name)
            if usage is None:
                usage = self._usage[name] = _NodeUsage(
                    cpus=max(1, round(cpu_m / 1000)), mem_total=mem_mib * MIB, last=now, idle=1000.0, busy=50.0
                )
            usage.cpu_used_m = min(cpu_used[name], cpu_m)
            usage.mem_used = min(mem_used[name], usage.mem_total)

    def _integrate(self, now: float) -> None:
        for usage in self._usage.values():
            dt = max(0.0, now - usage.last)
            share = min(1.0, usage.cpu_used_m / (usage.cpus * 1000))
            usage.idle += dt * (1 - share)
            usage.busy += dt * share
            usage.last = now

    def exposition(self) -> str:
        """The /metrics text (Prometheus text format 0.0.4)."""
        with self._lock:
            self._integrate(self.metrics_clock())
            lines = [
                "# HELP node_cpu_seconds_total Seconds the CPUs spent in each mode.",
                "# TYPE node_cpu_seconds_total counter",
            ]
            for name, u in sorted(self._usage.items()):
                for cpu in range(u.cpus):
                    for mode, value in (("idle", u.idle), ("user", u.busy * 0.8), ("system", u.busy * 0.2)):
                        lines.append(
                            f'node_cpu_seconds_total{{cpu="{cpu}",instance="{name}",mode="{mode}"}} {value:.3f}'
                        )
            lines += [
                "# HELP node_memory_MemTotal_bytes Memory information field MemTotal_bytes.",
                "# TYPE node_memory_MemTotal_bytes gauge",
            ]
            lines += [
                f'node_memory_MemTotal_bytes{{instance="{n}"}} {u.mem_total}' for n, u in sorted(self._usage.items())
            ]
            lines += [
                "# HELP node_memory_MemAvailable_bytes Memory information field MemAvailable_bytes.",
                "# TYPE node_memory_MemAvailable_bytes gauge",
            ]
            lines += [
                f'node_memory_MemAvailable_bytes{{instance="{n}"}} {u.mem_total - u.mem_used:.0f}'
                for n, u in sorted(self._usage.items())
            ]
            return "\n".join(lines) + "\n"


# -- helpers over raw objects --------------------------------------------------------------------------


def _cpu_text(cpu_m: int) -> str:
    return str(cpu_m // 1000) if cpu_m % 1000 == 0 else f"{cpu_m}m"


def _cpu_m(text: Any) -> int:
    return cpu_millis(str(text), round_up=False)


def _mem_b(text: Any) -> int:
    return mem_bytes(str(text), round_up=False)


def _requests(pod: Mapping[str, Any]) -> tuple[int, int]:
    """(millicores, bytes) a pod reserves: its containers' requests summed (the pods made here
    have neither init containers nor overhead)."""
    cpu = mem = 0
    for container in pod["spec"].get("containers") or ():
        wanted = (container.get("resources") or {}).get("requests") or {}
        if wanted.get("cpu") is not None:
            cpu += cpu_millis(str(wanted["cpu"]))
        if wanted.get("memory") is not None:
            mem += mem_bytes(str(wanted["memory"]))
    return cpu, mem


def _owner_name(pod: Mapping[str, Any]) -> str | None:
    return next((r.get("name") for r in pod["metadata"].get("ownerReferences") or () if r.get("controller")), None)


def _owned_by(pod: Mapping[str, Any], workload: Workload) -> bool:
    return pod["metadata"].get("namespace") == workload.namespace and _owner_name(pod) == workload.owner_name


def _terminating(pod: Mapping[str, Any]) -> bool:
    return bool(pod["metadata"].get("deletionTimestamp"))


def _finished(pod: Mapping[str, Any]) -> bool:
    return (pod.get("status") or {}).get("phase") in _FINISHED


def _schedulable(node: Mapping[str, Any]) -> bool:
    if (node.get("spec") or {}).get("unschedulable"):
        return False
    conditions = (node.get("status") or {}).get("conditions") or ()
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _tolerates(pod: Mapping[str, Any], node: Mapping[str, Any]) -> bool:
    tolerations = pod["spec"].get("tolerations") or ()
    for taint in (node.get("spec") or {}).get("taints") or ():
        if taint.get("effect") not in ("NoSchedule", "NoExecute"):
            continue
        if not any(_tolerated(t, taint) for t in tolerations):
            return False
    return True


def _tolerated(toleration: Mapping[str, Any], taint: Mapping[str, Any]) -> bool:
    if toleration.get("effect") and toleration["effect"] != taint.get("effect"):
        return False
    key, operator = toleration.get("key", ""), toleration.get("operator", "Equal")
    if not key:
        return operator == "Exists"
    if key != taint.get("key"):
        return False
    return operator == "Exists" or toleration.get("value", "") == taint.get("value", "")


def _bind(pod: dict[str, Any], node: str, now: float) -> dict[str, Any]:
    at = iso(now)
    pod["spec"]["nodeName"] = node
    status = pod.setdefault("status", {})
    status["phase"] = "Running"
    status["conditions"] = [
        {"type": kind, "status": "True", "lastProbeTime": None, "lastTransitionTime": at}
        for kind in ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled")
    ]
    status["startTime"] = at
    status["hostIP"] = "10.42.0.10"
    status["podIP"] = "10.42.128.10"
    return pod


def _mark_unschedulable(pod: dict[str, Any], now: float, node_count: int) -> bool:
    """Set PodScheduled=False/Unschedulable (keeping the time it first did); True if it changed."""
    status = pod.setdefault("status", {})
    conditions = status.setdefault("conditions", [])
    for condition in conditions:
        if condition.get("type") == "PodScheduled":
            if condition.get("status") == "False" and condition.get("reason") == "Unschedulable":
                return False
            conditions.remove(condition)
            break
    conditions.append(
        {
            "type": "PodScheduled",
            "status": "False",
            "lastProbeTime": None,
            "lastTransitionTime": iso(now),
            "reason": "Unschedulable",
            "message": f"0/{node_count} nodes are available: insufficient cpu or memory, or untolerated taints.",
        }
    )
    return True


def _metrics_handler(fleet: KubeletFleet) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            if self.path.split("?")[0] != "/metrics":
                body, status = b"not found\n", 404
            else:
                body, status = fleet.exposition().encode(), 200
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self.send_response(status)
                self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler
