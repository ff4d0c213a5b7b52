"""What the simulated kubelets, scheduler and controllers read off raw API objects."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from autoscaler.adapters.kube_values import cpu_millis, mem_bytes

_FINISHED = ("Succeeded", "Failed")


def iso(ts: float) -> str:
    """An API timestamp (RFC 3339, seconds, UTC)."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def running_status(now: float) -> dict[str, Any]:
    """The status a kubelet reports for a pod it has started: Running and Ready."""
    at = iso(now)
    conditions = [
        {"type": kind, "status": "True", "lastProbeTime": None, "lastTransitionTime": at}
        for kind in ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled")
    ]
    return {
        "phase": "Running",
        "conditions": conditions,
        "startTime": at,
        "hostIP": "10.42.0.10",
        "podIP": "10.42.128.10",
    }


def cpu_text(cpu_m: int) -> str:
    return str(cpu_m // 1000) if cpu_m % 1000 == 0 else f"{cpu_m}m"


def cpu_m(text: Any) -> int:
    return cpu_millis(str(text), round_up=False)


def mem_b(text: Any) -> int:
    return mem_bytes(str(text), round_up=False)


def requests(pod: Mapping[str, Any]) -> tuple[int, int]:
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


def owner_name(pod: Mapping[str, Any]) -> str | None:
    return _controller(pod).get("name")


def owner_kind(pod: Mapping[str, Any]) -> str | None:
    return _controller(pod).get("kind")


def _controller(pod: Mapping[str, Any]) -> Mapping[str, Any]:
    """The pod's controller's owner reference; empty when it has none."""
    return next((r for r in pod["metadata"].get("ownerReferences") or () if r.get("controller")), {})


def terminating(pod: Mapping[str, Any]) -> bool:
    return bool(pod["metadata"].get("deletionTimestamp"))


def finished(pod: Mapping[str, Any]) -> bool:
    return (pod.get("status") or {}).get("phase") in _FINISHED
