"""What a replay records, for scoring and plotting (`report.py`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from autoscaler.pricing import DEFAULT_INSTANCE_TYPE, ON_DEMAND


@dataclass(slots=True)
class Sample:
    """The cluster at one simulation step (every `step_s` seconds)."""

    t: float
    ready_nodes: int
    """Ready worker nodes (their allocatable is the capacity s(t))."""
    instances: int
    """Worker instances alive (pending or running): what bills."""
    demand_cpu_m: int
    """Requests of all pods that should be running, pending ones included: d(t)."""
    demand_mem_mib: int
    pending_pods: int
    """Pods waiting for capacity (created, not bound)."""
    used_cpu_m: float
    """CPU actually used by running pods."""


@dataclass(slots=True)
class InstanceLife:
    instance_id: str
    launched_at: float
    running_at: float
    """Billing starts here (EC2 `running`)."""
    terminated_at: float | None = None
    ready_at: float | None = None
    """None: never became a Ready node."""
    lifecycle: str = ON_DEMAND
    """'on-demand' or 'spot': which price it bills at."""
    stops: list[tuple[float, float | None]] = field(default_factory=list)
    """Each time it was stopped into the warm pool: (stopped at, running again at, or None)."""


@dataclass(slots=True)
class PodLife:
    name: str
    created_at: float
    bound_at: float | None = None
    """First time the pod was bound to a node; None if it never was."""
    waited_for: str = ""
    """What its wait for that binding ended on (WAIT_CAUSES in report.py): the node it was bound to
    joining ('launch') or rejoining from the warm pool ('start') after the pod was created, or room
    on a node already Ready ('room'). Empty when bound at once, or never."""
    ended_at: float | None = None
    """When the pod ended; None while it lives (a pod never bound waited until then)."""


@dataclass(slots=True)
class ScaleEvent:
    """A launch or a termination the policy made (not the core's `model.Action`)."""

    t: float
    kind: str
    """'launch', 'terminate', or 'start' and 'stop' for the warm pool."""
    count: int


@dataclass(slots=True)
class RunRecord:
    policy: str
    workload: str
    horizon_s: float
    step_s: float
    tick_s: float
    node_cpu_m: int
    node_mem_mib: int
    min_nodes: int
    instance_type: str = DEFAULT_INSTANCE_TYPE
    """The workers' type: what they bill at, and the node of the lower bound."""
    lambda_invocations: int = 0
    """Runs of the autoscaler's Lambda function, for a policy that runs on Lambda."""
    spot_interruptions: int = 0
    """Spot instances EC2 warned it takes back (`sim/spot.py`)."""
    interruption_pending_pod_s: float = 0.0
    """Pod-seconds waited by pods evicted from, or lost with, a warned spot worker until bound again."""
    samples: list[Sample] = field(default_factory=list)
    instances: list[InstanceLife] = field(default_factory=list)
    pods: list[PodLife] = field(default_factory=list)
    actions: list[ScaleEvent] = field(default_factory=list)
