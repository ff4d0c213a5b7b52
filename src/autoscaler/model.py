"""The values the scaling core reads and returns.

Plain frozen dataclasses (Pod only by convention, see there) with no I/O: adapters build them
from EC2, the Kubernetes API and Prometheus; the simulator builds them from its virtual cluster.
Times are epoch seconds (floats), so `now` is always passed in and tests can fix it.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

from autoscaler.forecast import DemandHistory
from autoscaler.scheduling import NO_CONSTRAINTS, Placement, Taint

# Annotations that take a node out of scale-down (ours and Cluster Autoscaler's).
SCALE_DOWN_DISABLED_ANNOTATIONS = (
    "node-fleet.io/scale-down-disabled",
    "cluster-autoscaler.kubernetes.io/scale-down-disabled",
)
SAFE_TO_EVICT = "cluster-autoscaler.kubernetes.io/safe-to-evict"
SAFE_TO_EVICT_LOCAL_VOLUMES = "cluster-autoscaler.kubernetes.io/safe-to-evict-local-volumes"
DO_NOT_DISRUPT = "karpenter.sh/do-not-disrupt"
# The taint node-fleet puts on a node it drains, next to spec.unschedulable (kubectl cordon's own mark).
DRAINING_TAINT_KEY = "node-fleet.io/draining"


@dataclass(slots=True)
class Pod:
    """Frozen by convention only: nothing assigns to a Pod once built. A cycle builds one per pod
    (30,000 on a large cluster), and a frozen dataclass sets each of its fields through
    object.__setattr__, which was a quarter of parsing a pod."""

    name: str
    namespace: str
    cpu_m: int
    mem_mib: int
    node: str | None = None
    """Name of the node the pod is bound to; None while it is not scheduled."""
    owner_kind: str | None = "ReplicaSet"
    """Kind of the controlling owner (ReplicaSet, StatefulSet, Job, DaemonSet...); None = bare pod."""
    annotations: Mapping[str, str] = field(default_factory=dict)
    has_pdb: bool = False
    local_storage: bool = False
    """The pod mounts emptyDir or hostPath volumes."""
    unschedulable_since: float | None = None
    """When the scheduler marked it PodScheduled=False/Unschedulable; None if it never did."""
    grace_period_s: int = 30
    labels: Mapping[str, str] = field(default_factory=dict)
    placement: Placement = NO_CONSTRAINTS
    local_volumes: tuple[str, ...] = ()
    """Names of its emptyDir and hostPath volumes (for safe-to-evict-local-volumes)."""
    pdbs: tuple[str, ...] = ()
    """`namespace/name` of every PodDisruptionBudget that selects it."""
    mirror: bool = False
    """A static pod's mirror: the kubelet runs it from a file, eviction cannot move it, and it
    goes with its node; it neither blocks removal nor needs room elsewhere."""

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def is_daemonset(self) -> bool:
        return self.owner_kind == "DaemonSet"

    @property
    def stays(self) -> bool:
        """Goes with its node instead of moving: DaemonSet and mirror pods."""
        return self.mirror or self.owner_kind == "DaemonSet"


@dataclass(frozen=True, slots=True)
class Node:
    name: str
    alloc_cpu_m: int
    alloc_mem_mib: int
    instance_id: str | None = None
    """From spec.providerID (aws:///<az>/<instance-id>); never guessed from a DNS name."""
    az: str | None = None
    ready: bool = True
    cordoned: bool = False
    control_plane: bool = False
    annotations: Mapping[str, str] = field(default_factory=dict)
    created_at: float = 0.0
    labels: Mapping[str, str] = field(default_factory=dict)
    taints: tuple[Taint, ...] = ()
    alloc_pods: int = 110
    addresses: frozenset[str] = frozenset()
    """InternalIP, Hostname and InternalDNS addresses, for matching a node to its instance when
    its providerID is not aws:/// (K3s's default is k3s://<hostname>)."""
    ready_since: float | None = None
    """lastTransitionTime of the Ready condition (when it became Ready, or stopped being)."""

    @property
    def drained_by_us(self) -> bool:
        """Cordoned with node-fleet's draining taint (not by someone else's `kubectl cordon`)."""
        return self.cordoned and any(t.key == DRAINING_TAINT_KEY for t in self.taints)

    @property
    def scale_down_disabled(self) -> bool:
        return any(self.annotations.get(a) == "true" for a in SCALE_DOWN_DISABLED_ANNOTATIONS)


class InstanceState(enum.StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SHUTTING_DOWN = "shutting-down"
    TERMINATED = "terminated"
    STOPPING = "stopping"
    STOPPED = "stopped"


@dataclass(frozen=True, slots=True)
class Instance:
    """A worker EC2 instance of this cluster (the Fleet port only returns tagged workers)."""

    id: str
    state: InstanceState
    az: str
    instance_type: str
    launched_at: float
    lifecycle: str = "on-demand"  # or "spot"
    private_ip: str | None = None
    private_dns_name: str | None = None
    stopped_at: float | None = None
    """When a stopping or stopped worker was stopped, where EC2 says (None: it does not)."""

    @property
    def alive(self) -> bool:
        """Pending or running: it bills (or soon will) and counts against max_nodes."""
        return self.state in (InstanceState.PENDING, InstanceState.RUNNING)

    @property
    def warm(self) -> bool:
        """Stopping or stopped: in the warm pool, billing only its volumes."""
        return self.state in (InstanceState.STOPPING, InstanceState.STOPPED)


@dataclass(frozen=True, slots=True)
class MetricsView:
    """What Prometheus says, with unknown kept apart from zero.

    A value of None means unknown (error, empty, NaN or stale answer); `unknown_reason` says why.
    """

    cluster_cpu: float | None = None
    """Mean CPU usage ratio of the Ready workers, 0..1."""
    node_cpu: Mapping[str, float] = field(default_factory=dict)
    """Node name -> CPU usage ratio; a node missing here is unknown."""
    cluster_mem: float | None = None
    """Mean memory usage ratio of the Ready workers, 0..1."""
    node_mem: Mapping[str, float] = field(default_factory=dict)
    custom: float | None = None
    """The operator's own scale-up metric (CUSTOM_METRIC_QUERY), when one is configured."""
    unknown_reason: str | None = None

    @property
    def known(self) -> bool:
        return self.cluster_cpu is not None


@dataclass(frozen=True, slots=True)
class ClusterSnapshot:
    nodes: tuple[Node, ...]
    pods: tuple[Pod, ...]
    instances: tuple[Instance, ...]
    metrics: MetricsView = MetricsView(unknown_reason="not queried")
    zones: tuple[str, ...] = ()
    """Availability zones the fleet can launch into."""
    pdbs: Mapping[str, int] = field(default_factory=dict)
    """`namespace/name` of each PodDisruptionBudget -> its status.disruptionsAllowed."""
    daemonsets: tuple[Pod, ...] = ()
    """One pod per DaemonSet, built from its template: what would land on a new worker."""
    demand: DemandHistory | None = None
    """The pods' requests over time, for the forecast; None when not read or unknown."""

    # Views derived from `pods`, defined here once for every reader; computed on each call (the
    # snapshot is frozen and slotted), so a reader that needs one often keeps what it got.
    def unschedulable(self) -> tuple[Pod, ...]:
        """Pods the scheduler could not place (PodScheduled=False, reason Unschedulable)."""
        return tuple(p for p in self.pods if p.node is None and p.unschedulable_since is not None)

    def pods_by_node(self) -> dict[str, list[Pod]]:
        """Node name -> the pods bound to it; a node with no pod is absent."""
        by_node: dict[str, list[Pod]] = {}
        for p in self.pods:
            if p.node is not None:
                by_node.setdefault(p.node, []).append(p)
        return by_node


@dataclass(frozen=True, slots=True)
class Launch:
    """A launch the autoscaler made and is waiting on to become a Ready node."""

    instance_id: str
    az: str
    launched_at: float
    deadline: float


class DrainPhase(enum.StrEnum):
    CORDONED = "cordoned"
    EVICTING = "evicting"
    TERMINATING = "terminating"
    DELETING = "deleting"


@dataclass(frozen=True, slots=True)
class Drain:
    node: str
    instance_id: str | None
    started_at: float
    deadline: float
    phase: DrainPhase = DrainPhase.CORDONED
    held_since: float | None = None
    """Since when scaling has been paused with this drain under way; its deadline moves on by
    the time held, so a pause never times a drain out."""
    keep: bool = False
    """Its instance is stopped into the warm pool rather than terminated, and its Node kept."""
    interrupted: bool = False
    """A spot interruption's: its deadline is the end of EC2's two-minute notice, when the instance
    goes whatever is left on it. Nothing stops or undoes it (a pod that cannot move, the GitOps
    gate, the deadline): an eviction gives a pod its graceful shutdown, which the interruption would not."""


@dataclass(frozen=True, slots=True)
class IntentRecord:
    """What an alarm's or manual event's plan still has to do, stored under the event id before
    acting: a redelivered event carries it on (same zones, same nodes) instead of planning again."""

    recorded_at: float
    launches: Mapping[str, int] = field(default_factory=dict)
    """Zones not launched into yet."""
    remove: Mapping[str, str] = field(default_factory=dict)
    """Node -> its instance, for the drains not started yet."""


@dataclass(frozen=True, slots=True)
class ScalingState:
    """What one cycle hands to the next (the state item of the state table)."""

    version: int = 0
    last_scale_up: float | None = None
    last_scale_down: float | None = None
    last_failure: float | None = None
    pressure_since: float | None = None
    """Since when CPU (or the custom metric) has been at or above its threshold."""
    unneeded_since: Mapping[str, float] = field(default_factory=dict)
    launches: tuple[Launch, ...] = ()
    drains: tuple[Drain, ...] = ()
    backoff_until: float | None = None
    paused: bool = False
    gate_held_since: float | None = None
    """Since when the GitOps gate has held scale-down without a break (for its cap)."""
    intents: Mapping[str, IntentRecord] = field(default_factory=dict)
    """Event id -> the intent's progress, kept for a day after it arrived."""


class ReasonCode(enum.StrEnum):
    """Machine-readable reasons; every Decision carries at least one."""

    UNSCHEDULABLE_PODS = "unschedulable_pods"
    CPU_HIGH = "cpu_high"
    CUSTOM_METRIC_HIGH = "custom_metric_high"
    BELOW_MIN = "below_min"
    ABOVE_MAX = "above_max"
    AT_MAX = "at_max"
    CAPACITY_IN_FLIGHT = "capacity_in_flight"
    BACKING_OFF = "backing_off"
    UNJOINED_INSTANCE = "unjoined_instance"
    LATE_LAUNCH = "late_launch"
    """A launch with no Node past launch_late_after_s."""
    ORPHAN_NODE = "orphan_node"
    NODE_UNNEEDED = "node_unneeded"
    EMPTY_NODE = "empty_node"
    PENDING_PODS = "pending_pods"
    LAUNCH_IN_FLIGHT = "launch_in_flight"
    DRAIN_IN_PROGRESS = "drain_in_progress"
    COOLDOWN_AFTER_ADD = "cooldown_after_add"
    COOLDOWN_AFTER_FAILURE = "cooldown_after_failure"
    METRICS_UNKNOWN = "metrics_unknown"
    AT_MIN = "at_min"
    NO_CANDIDATE = "no_candidate"
    PAUSED = "paused"
    REQUESTED = "requested"
    GITOPS_HOLD = "gitops_hold"
    GITOPS_HOLD_CAPPED = "gitops_hold_capped"
    STEADY = "steady"
    NO_WORKER_FITS = "no_worker_fits"
    """Pending pods no new worker could host (selector, affinity, taint, volume zone)."""
    UNREADY_NODE = "unready_node"
    AMBIGUOUS_INSTANCE = "ambiguous_instance"
    WARM_START = "warm_start"
    """Stopped workers of the warm pool started instead of launching new ones."""
    WARM_POOL = "warm_pool"
    """Removed workers stopped into the warm pool, or stopped ones past its size terminated."""
    REJOINED = "rejoined"
    """A worker back from the warm pool given back to the scheduler."""
    RAMP = "ramp"
    """Workers added beyond the pending pods' need: they went pending again soon after a scale-up."""
    SPARE_ROOM = "spare_room"
    """Room kept for more pods of the median size soon after a scale-up (a worker started for it
    from the warm pool, or unneeded workers kept)."""
    FORECAST_RAMP = "forecast_ramp"
    """Workers launched ahead of a rise in demand the forecast predicts."""
    FORECAST_CALM = "forecast_calm"
    """The scale-down wait shortened: the forecast predicts no rise the free room could not take."""
    SPOT_INTERRUPTION = "spot_interruption"
    """EC2 warned that it takes a spot worker back in two minutes: replaced and drained."""


@dataclass(frozen=True, slots=True)
class Reason:
    code: ReasonCode
    detail: str = ""


class IntentKind(enum.StrEnum):
    SCALE_UP = "scale_up"
    SCALE_DOWN = "scale_down"
    SET = "set"
    PAUSE = "pause"
    RESUME = "resume"


@dataclass(frozen=True, slots=True)
class Intent:
    """An explicit request (an operator's manual event, or an alarm mapped to an action). It skips
    cool-downs and waiting times, never the safety rules or the bounds."""

    kind: IntentKind
    count: int = 0
    """Workers to add or remove; for SET, the desired total."""
    source: str = ""
    """Who asked and why, repeated in the decision's reasons."""


@dataclass(frozen=True, slots=True)
class NodeVerdict:
    """Whether a worker could be removed now, were its unneeded timer and cool-downs run out."""

    candidate: bool
    reason: str
    """A short code: unneeded, empty, utilization_high, pod_cannot_move, no_room, pdb_exhausted,
    scale_down_disabled, not_ready, draining, cordoned, ambiguous_instance, control_plane..."""
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Unhelpable:
    """A pending pod no new worker could host: reported, never launched for."""

    pod: str
    reason: str
    """The kube-scheduler filter that rejects it on a new worker (NodeAffinity, TaintToleration...)."""
    detail: str = ""


class Action(enum.StrEnum):
    SCALE_UP = "scale_up"
    SCALE_DOWN = "scale_down"
    NONE = "none"


@dataclass(frozen=True, slots=True)
class Decision:
    action: Action
    launches: Mapping[str, int] = field(default_factory=dict)
    """AZ -> number of instances to launch there (instance types and spot fallback are the
    Fleet's business, in the order Settings gives)."""
    remove: tuple[str, ...] = ()
    """Names of the nodes to drain and remove, in order."""
    terminate_unjoined: tuple[str, ...] = ()
    """Instance ids launched too long ago that never became Ready nodes."""
    starts: tuple[str, ...] = ()
    """Stopped workers (the warm pool) to start, before `launches` adds new ones."""
    warm: tuple[str, ...] = ()
    """The nodes of `remove` whose instance is stopped into the warm pool rather than terminated."""
    retire: tuple[str, ...] = ()
    """Stopped workers past warm_pool_size, terminated."""
    uncordon: tuple[str, ...] = ()
    """Ready workers still cordoned by a drain that is over (back from the warm pool): given back."""
    delete_nodes: tuple[str, ...] = ()
    """Node objects left behind by a worker instance that is terminated."""
    reasons: tuple[Reason, ...] = ()
    state: ScalingState = field(default_factory=ScalingState)
    """The state to persist after acting (unneeded-since times, sustained-CPU clocks...)."""
    instances: Mapping[str, str] = field(default_factory=dict)
    """The worker instance of each node in `remove`, matched without ambiguity."""
    nodes: Mapping[str, NodeVerdict] = field(default_factory=dict)
    """Every worker node's scale-down verdict, when scale-down was looked at."""
    unhelpable: tuple[Unhelpable, ...] = ()
    interrupted: Mapping[str, float] = field(default_factory=dict)
    """Nodes EC2 takes back (spot interruption) -> when: their drains are interruption drains."""

    @property
    def launch_count(self) -> int:
        return sum(self.launches.values())

    @property
    def codes(self) -> tuple[ReasonCode, ...]:
        return tuple(r.code for r in self.reasons)
