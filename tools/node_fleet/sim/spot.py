"""Spot in the virtual cluster: which launches are spot, when EC2 takes a spot worker back, and what
that costs the pods.

Each launch asks `share` of its instances as spot (rounded half up, as the EC2 adapter does). Each
running spot instance is warned at `interruptions_per_hour` per instance-hour (a Poisson process,
drawn from its own seeded generator, so a replay without spot draws nothing and its figures do not
move), and is gone NOTICE_S later. The warning reaches a policy that runs as the autoscaler's
Lambda (EventBridge's rule) as a spot interruption event; the others learn of it when the
instance goes, as Cluster Autoscaler without a termination handler does.

A pod is displaced by an interruption when it is evicted from, or loses, a warned worker; from
then until it is bound again (or ends) it waits, and those pod-seconds are the interruptions' cost.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable
from dataclasses import dataclass, field

from autoscaler.config import Settings
from autoscaler.config.ec2 import spot_count
from autoscaler.events import SpotInterruption
from autoscaler.interruption import NOTICE_S
from autoscaler.ports import Ports
from autoscaler.service import run_cycle
from node_fleet.sim.record import RunRecord

HOUR_S = 3600.0


@dataclass(frozen=True, slots=True)
class SpotModel:
    share: float = 0.0
    """SPOT_SHARE: the share of each launch asked as spot."""
    interruptions_per_hour: float = 0.0
    """Interruption warnings per spot instance-hour (0: EC2 never takes one back)."""
    seed: int = 1

    def __post_init__(self) -> None:
        if not 0.0 <= self.share <= 1.0:
            raise ValueError(f"spot share must be 0..1, got {self.share}")
        if not (math.isfinite(self.interruptions_per_hour) and self.interruptions_per_hour >= 0):
            raise ValueError(f"spot interruptions per instance-hour must be >= 0, got {self.interruptions_per_hour}")


NO_SPOT = SpotModel()
"""Every launch on-demand: what a replay does unless asked."""


@dataclass(slots=True)
class SpotMarket:
    """The virtual cluster's spot instances: their warnings, their ends, and the pods they displace."""

    model: SpotModel
    record: RunRecord
    warned: dict[str, float] = field(default_factory=dict)
    """Instance id -> when EC2 takes it back."""
    new_warnings: list[str] = field(default_factory=list)
    """Warned at the last step: for the engine to deliver."""
    displaced: dict[str, float] = field(default_factory=dict)
    """Pod name -> since when it waits because of an interruption."""
    _rng: random.Random = field(init=False)
    _last: float | None = None

    def __post_init__(self) -> None:
        self._rng = random.Random(self.model.seed)  # nosec B311  # seeded, reproducible simulation; not security

    def spot_of(self, count: int) -> int:
        """How many of a launch of `count` are spot."""
        return spot_count(count, self.model.share)

    def step(self, now: float, running_spot: Iterable[str]) -> list[str]:
        """Warn running spot instances for the time since the last step; returns those whose notice ended."""
        dt, self._last = (now - self._last if self._last is not None else 0.0), now
        self.new_warnings = []
        rate = self.model.interruptions_per_hour
        if rate > 0 and dt > 0:
            p = 1.0 - math.exp(-rate * dt / HOUR_S)
            for instance_id in running_spot:
                if instance_id not in self.warned and self._rng.random() < p:
                    self.warned[instance_id] = now + NOTICE_S
                    self.new_warnings.append(instance_id)
                    self.record.spot_interruptions += 1
        return [i for i, ends in self.warned.items() if ends <= now]

    def displace(self, pod: str, instance_id: str, now: float) -> None:
        if instance_id in self.warned:
            self.displaced.setdefault(pod, now)

    def settle(self, pod: str, now: float) -> None:
        """The pod is bound again, or ended: its wait is counted."""
        since = self.displaced.pop(pod, None)
        if since is not None:
            self.record.interruption_pending_pod_s += now - since


def deliver(ports: Ports, settings: Settings, now: float, instance_id: str) -> None:
    """EC2's warning, as EventBridge delivers it to the autoscaler's Lambda."""
    token = f"spot-{instance_id}"
    run_cycle(ports, settings, now, token, interruption=SpotInterruption(token, instance_id, "terminate", now))
