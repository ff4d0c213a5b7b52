"""node-exporter for every node with a running kubelet: CPU counters and memory gauges from the
node's pods' requests times their usage; and kube-state-metrics' series of every pod's requests,
phase and owner (what the forecast reads); served on one /metrics endpoint on 127.0.0.1."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from ..prometheus import POD_PHASES
from .pods import finished, owner_kind, owner_name, requests

MIB = 2**20


@dataclass
class NodeUsage:
    cpus: int
    mem_total: int
    cpu_used_m: float = 0.0
    mem_used: float = 0.0
    idle: float = 0.0
    busy: float = 0.0
    last: float = 0.0


@dataclass(frozen=True)
class Load:
    """How a node's use is computed from its pods."""

    base_cpu_m: int
    base_mem_mib: int
    usage_factor: float
    """Share of its requests a pod uses unless its owner says otherwise (`usage_of`)."""
    usage_of: Mapping[tuple[str, str], float | None]
    """(namespace, owner name) -> that owner's pods' share; None: usage_factor."""

    def per_node(
        self, serving: Iterable[str], pods: Iterable[Mapping[str, Any]]
    ) -> tuple[dict[str, float], dict[str, float]]:
        """(millicores, bytes) each serving node uses."""
        cpu_used: dict[str, float] = dict.fromkeys(serving, float(self.base_cpu_m))
        mem_used: dict[str, float] = dict.fromkeys(cpu_used, float(self.base_mem_mib * MIB))
        for pod in pods:
            node = pod["spec"].get("nodeName")
            if node not in cpu_used or finished(pod):
                continue
            factor = self.usage_of.get((pod["metadata"].get("namespace", ""), owner_name(pod) or ""))
            factor = self.usage_factor if factor is None else factor
            cpu, mem = requests(pod)
            cpu_used[node] += cpu * factor
            mem_used[node] += mem * factor
        return cpu_used, mem_used


class NodeExporter:
    """The counters of every served node. `lock` is the fleet's: usage changes under it."""

    def __init__(self, lock: threading.RLock, clock: Callable[[], float]) -> None:
        self.lock = lock
        self.clock = clock
        self.usage: dict[str, NodeUsage] = {}
        self.pods: list[tuple[str, str, str, str, int, int]] = []
        """kube-state-metrics' view: (namespace, name, phase, owner kind, millicores, bytes) of each
        pod not finished."""
        self._http: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def serve(self) -> None:
        if self._http is None:
            server = ThreadingHTTPServer(("127.0.0.1", 0), _metrics_handler(self))
            server.daemon_threads = True
            self._http = server
            self._thread = threading.Thread(
                target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="kubelet-metrics", daemon=True
            )
            self._thread.start()

    def stop(self) -> None:
        server, self._http = self._http, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    @property
    def target(self) -> str:
        if self._http is None:
            raise RuntimeError("the kubelets are not started")
        host, port = self._http.server_address[:2]
        return f"{host}:{port}"

    def update(
        self,
        serving: Mapping[str, tuple[int, int]],
        cpu_used: Mapping[str, float],
        mem_used: Mapping[str, float],
        pods: Iterable[Mapping[str, Any]] = (),
    ) -> None:
        """Integrate the old use up to now, then take the new: `serving` is node -> (allocatable
        millicores, MiB), the nodes whose metrics are served from now on; `pods`, every pod."""
        self.pods = [
            (
                pod["metadata"].get("namespace", ""),
                pod["metadata"]["name"],
                (pod.get("status") or {}).get("phase") or "Pending",
                owner_kind(pod) or "<none>",
                *requests(pod),
            )
            for pod in pods
            if not finished(pod)
        ]
        now = self.clock()
        self.integrate(now)
        for name in list(self.usage):
            if name not in serving:
                del self.usage[name]
        for name, (cpu_m, mem_mib) in serving.items():
            usage = self.usage.get(name)
            if usage is None:
                usage = self.usage[name] = NodeUsage(
                    cpus=max(1, round(cpu_m / 1000)), mem_total=mem_mib * MIB, last=now, idle=1000.0, busy=50.0
                )
            usage.cpu_used_m = min(cpu_used[name], cpu_m)
            usage.mem_used = min(mem_used[name], usage.mem_total)

    def integrate(self, now: float) -> None:
        for usage in self.usage.values():
            dt = max(0.0, now - usage.last)
            share = min(1.0, usage.cpu_used_m / (usage.cpus * 1000))
            usage.idle += dt * (1 - share)
            usage.busy += dt * share
            usage.last = now

    def exposition(self) -> str:
        """The /metrics text (Prometheus text format 0.0.4)."""
        with self.lock:
            self.integrate(self.clock())
            lines = [
                "# HELP node_cpu_seconds_total Seconds the CPUs spent in each mode.",
                "# TYPE node_cpu_seconds_total counter",
            ]
            for name, u in sorted(self.usage.items()):
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
                f'node_memory_MemTotal_bytes{{instance="{n}"}} {u.mem_total}' for n, u in sorted(self.usage.items())
            ]
            lines += [
                "# HELP node_memory_MemAvailable_bytes Memory information field MemAvailable_bytes.",
                "# TYPE node_memory_MemAvailable_bytes gauge",
            ]
            lines += [
                f'node_memory_MemAvailable_bytes{{instance="{n}"}} {u.mem_total - u.mem_used:.0f}'
                for n, u in sorted(self.usage.items())
            ]
            return "\n".join(lines + self._pod_lines()) + "\n"

    def _pod_lines(self) -> list[str]:
        """kube-state-metrics v2's names and labels (one container per pod here)."""
        asked, phases, owners = [], [], []
        for namespace, name, phase, owner, cpu_m, mem in sorted(self.pods):
            pod = f'namespace="{namespace}",pod="{name}"'
            asked.append(
                f'kube_pod_container_resource_requests{{{pod},container="main",resource="cpu",unit="core"}} {cpu_m / 1000:g}'
            )
            asked.append(
                f'kube_pod_container_resource_requests{{{pod},container="main",resource="memory",unit="byte"}} {mem}'
            )
            phases += [f'kube_pod_status_phase{{{pod},phase="{each}"}} {int(each == phase)}' for each in POD_PHASES]
            owners.append(f'kube_pod_owner{{{pod},owner_kind="{owner}",owner_is_controller="true"}} 1')
        return [
            "# TYPE kube_pod_container_resource_requests gauge",
            *asked,
            "# TYPE kube_pod_status_phase gauge",
            *phases,
            "# TYPE kube_pod_owner gauge",
            *owners,
        ]


def _metrics_handler(exporter: NodeExporter) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            if self.path.split("?")[0] != "/metrics":
                body, status = b"not found\n", 404
            else:
                body, status = exporter.exposition().encode(), 200
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self.send_response(status)
                self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler
