"""The ports: the only ways the core reaches the outside.

The Lambda implements them over EC2, the Kubernetes API, Prometheus and DynamoDB
(`adapters/`), and the GitOps gate over Flux's objects and the gate item (`gitops/reader.py`);
the simulator implements them over its virtual cluster (`sim/`). Each method says what it
promises; the same contract tests run against every implementation.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from autoscaler.forecast import DemandHistory, HistoryRead
from autoscaler.model import Instance, MetricsView, Node, Pod, ScalingState


@dataclass(frozen=True, slots=True)
class LaunchResult:
    instance_ids: tuple[str, ...]
    """Instances actually started (may be fewer than asked)."""
    failures: tuple[str, ...] = ()
    """One line per fallback or failure (e.g. "t3.large/eu-west-1a: InsufficientInstanceCapacity")."""


class EvictionOutcome(enum.StrEnum):
    EVICTED = "evicted"
    BLOCKED = "blocked"  # a PDB answered 429: try again later
    GONE = "gone"  # 404: the pod is already gone


class Fleet(Protocol):
    def zones(self) -> Sequence[str]:
        """Availability zones this fleet launches into."""

    def list_workers(self) -> Sequence[Instance]:
        """Every worker instance of this cluster, and no other instance: pending and running ones,
        stopping and stopped ones (the warm pool), and those shutting down or terminated that EC2
        still lists (their Node objects get cleaned up)."""

    def launch(self, az: str, count: int, token: str) -> LaunchResult:
        """Start up to `count` workers in `az`. Calling again with the same token starts nothing new."""

    def terminate(self, instance_id: str) -> None:
        """Terminate one worker; raises NotOurInstance for an instance that is not this cluster's worker."""

    def stop(self, instance_id: str) -> None:
        """Stop one running worker, keeping its volumes (the warm pool); raises NotOurInstance as
        terminate does. A worker already stopping or stopped is left as it is."""

    def start(self, instance_ids: Sequence[str]) -> LaunchResult:
        """Start stopped workers of this cluster: those that started, and a line for each that could
        not (no capacity, or not a stopped worker of ours), which is never started."""


class Cluster(Protocol):
    def list_nodes(self) -> Sequence[Node]:
        """Every Node object."""

    def list_pods(self) -> Sequence[Pod]:
        """Every pod that is bound, or pending, and not finished, with its placement resolved
        (volumes to node affinity, PDBs to `pdbs`)."""

    def disruption_budgets(self) -> Mapping[str, int]:
        """`namespace/name` of every PodDisruptionBudget -> status.disruptionsAllowed."""

    def daemonset_pods(self) -> Sequence[Pod]:
        """One unbound pod per DaemonSet, from its template: what a new worker would run."""

    def cordon(self, node: str) -> None:
        """Mark the node unschedulable (and taint it as draining)."""

    def uncordon(self, node: str) -> None:
        """Undo cordon."""

    def evict(self, pod: Pod) -> EvictionOutcome:
        """Ask the Eviction API to evict one pod."""

    def delete_node(self, node: str) -> None:
        """Delete the Node object; a node already gone is not an error."""


class Metrics(Protocol):
    def sample(self, now: float) -> MetricsView:
        """Current usage; a value that cannot be trusted comes back unknown (None), never zero."""

    def demand(self, now: float, read: HistoryRead) -> DemandHistory | None:
        """What running and pending pods (not DaemonSet ones) requested, in the windows `read` names
        and never after `now`; None when it cannot be read (the forecast then stays off)."""


class PermanentError(Exception):
    """Retrying cannot fix it (bad configuration, an instance that is not ours): report, do not retry."""


class NotOurInstance(PermanentError):
    """Fleet.terminate refuses an instance that is not this cluster's worker (tags or VPC)."""


class StaleStateError(Exception):
    """The state changed since it was loaded (optimistic concurrency): do nothing this cycle."""


class StateStore(Protocol):
    def load(self) -> ScalingState:
        """The cluster's state; a fresh ScalingState when none is stored yet."""

    def save(self, state: ScalingState) -> ScalingState:
        """Store `state` if the stored version still equals `state.version`; returns it with the
        version incremented. Raises StaleStateError otherwise."""


class Lease(Protocol):
    def acquire(self, owner: str, now: float, duration_s: float) -> bool:
        """Take the lease if it is free or expired; False if someone else holds it."""

    def release(self, owner: str) -> None:
        """Release the lease if `owner` still holds it; otherwise leave it alone."""


@dataclass(frozen=True, slots=True)
class GateAnswer:
    """The GitOps gate's answer at one moment."""

    blocked: bool
    """True: no capacity may be removed now."""
    reasons: tuple[Mapping[str, str], ...] = ()
    """One per hold: {"kind", "namespace", "name", "state", "detail"}."""
    cap_hit: bool = False
    """A hold reached the cap and no longer holds (an alarm-worthy fact, not a hold)."""
    unknown: str | None = None
    """Why the gate could not be read (then `blocked` is True)."""

    @property
    def why(self) -> str:
        """The hold in one line: what made the gate unreadable, else each holding object and its state."""
        return self.unknown or "; ".join(
            f"{r.get('kind')} {r.get('namespace')}/{r.get('name')} {r.get('state')}" for r in self.reasons
        )


class Gate(Protocol):
    def __call__(self, now: float) -> GateAnswer:
        """May capacity be removed at `now`? Never raises: a gate that cannot be read answers blocked,
        with `unknown` saying why (the caller caps how long such a hold lasts)."""


@dataclass(frozen=True, slots=True)
class Ports:
    fleet: Fleet
    cluster: Cluster
    metrics: Metrics
    state: StateStore
