"""A workload: the pods a replay creates and ends, whatever trace they came from."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from autoscaler.scheduling import NO_CONSTRAINTS, Placement

DEFAULT_USAGE = 0.6

REPLICA_SET, JOB = "ReplicaSet", "Job"
OWNER_KINDS = (REPLICA_SET, JOB)
"""The controllers the simulator tells apart (PodSpec.owner_kind)."""


@dataclass(frozen=True, slots=True)
class PodSpec:
    name: str
    start_s: float
    end_s: float | None
    """None: runs to the end of the replay."""
    cpu_m: int
    mem_mib: int
    usage: float = DEFAULT_USAGE
    """Fraction of the CPU request the pod actually uses."""
    labels: Mapping[str, str] = field(default_factory=dict)
    placement: Placement = NO_CONSTRAINTS
    """Selectors, affinity, tolerations, spread...: the virtual scheduler and the planner both
    place the pod by them (room.Room)."""
    owner_kind: str = REPLICA_SET
    """The controller that recreates it when it is evicted. A ReplicaSet's pod is one replica of a
    service: its replacement ends when it would have. A Job's pod is work in progress: its
    replacement starts the work over and runs its whole length again."""


@dataclass(frozen=True, slots=True)
class Workload:
    name: str
    pods: tuple[PodSpec, ...]
    horizon_s: float
    description: str = ""


class TraceError(ValueError):
    """A trace or workload file is malformed; the message names the file, line and field."""
