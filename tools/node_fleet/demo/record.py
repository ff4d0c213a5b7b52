"""What a demo run sees: one look at the cluster (View), the samples, the cycles, and the Record
of the whole run with the expectations it checks."""

from __future__ import annotations

from dataclasses import dataclass, field

from node_fleet.demo.timing import Timing

ALIVE = ("pending", "running")
GONE = ("shutting-down", "terminated")
"""EC2 instance states: a worker that counts, and one on its way out."""

# Which reason to show when a decision has several: the first one present wins.
MAIN_REASONS = {
    "scale_up": ("unschedulable_pods", "below_min", "cpu_high", "custom_metric_high", "requested"),
    "scale_down": ("empty_node", "node_unneeded", "requested"),
    "none": (
        "gitops_hold",
        "gitops_hold_capped",
        "unjoined_instance",
        "backing_off",
        "capacity_in_flight",
        "launch_in_flight",
        "drain_in_progress",
        "pending_pods",
        "cooldown_after_add",
        "cooldown_after_failure",
        "metrics_unknown",
        "orphan_node",
        "paused",
        "at_min",
        "at_max",
        "no_candidate",
        "steady",
    ),
}


@dataclass(frozen=True)
class View:
    """One look at the cluster."""

    t: float
    instances: dict[str, str]
    """Worker instance id -> EC2 state (all states)."""
    ready: frozenset[str]
    """Ready worker nodes."""
    cordoned: frozenset[str]
    pending: int
    """Pods not bound to a node (and not terminating)."""
    bound: dict[str, int]
    """Workload (app label) -> pods bound."""

    @property
    def workers(self) -> int:
        return sum(1 for state in self.instances.values() if state in ALIVE)


@dataclass(frozen=True)
class Sample:
    t: float
    workers: int
    ready: int
    pending: int


@dataclass
class Cycle:
    """One tick of both functions, and what it changed."""

    t: float
    workers: int
    ready: int
    pending: int
    status: str = ""
    action: str = ""
    launches: int = 0
    """Workers the decision launches."""
    remove: list[str] = field(default_factory=list)
    """Nodes the decision starts removing (an empty one goes at once, a drain takes cycles)."""
    reasons: list[tuple[str, str]] = field(default_factory=list)
    launched: list[str] = field(default_factory=list)
    terminated: list[str] = field(default_factory=list)
    gate_blocked: bool = False
    gate: str = ""
    error: str = ""
    seconds: float = 0.0

    @property
    def codes(self) -> list[str]:
        return [code for code, _ in self.reasons]

    def main_reason(self) -> tuple[str, str]:
        for wanted in MAIN_REASONS.get(self.action, MAIN_REASONS["none"]):
            for code, detail in self.reasons:
                if code == wanted:
                    return code, detail
        return self.reasons[0] if self.reasons else ("", "")


@dataclass
class Record:
    """Everything a run saw: the samples, the cycles, the story's marks and its facts."""

    timing: Timing
    samples: list[Sample] = field(default_factory=list)
    cycles: list[Cycle] = field(default_factory=list)
    marks: list[tuple[float, str]] = field(default_factory=list)
    sale_at: float | None = None
    sale_bound_at: float | None = None
    quiet_at: float | None = None
    reconcile_started: float | None = None
    reconcile_ended: float | None = None
    canary_started: float | None = None
    canary_ended: float | None = None
    batch_at: float | None = None
    broken: str | None = None
    broken_launched_at: float | None = None
    broken_gone_at: float | None = None
    batch_bound_at: float | None = None
    end: float = 0.0
    wall_s: float = 0.0
    failures: list[str] = field(default_factory=list)
    verdict: str = "running"

    # -- figures ---------------------------------------------------------------------------------------

    def pending_pod_seconds(self, start: float | None = None, stop: float | None = None) -> float:
        lo = -1e18 if start is None else start
        hi = 1e18 if stop is None else stop
        total = 0.0
        for a, b in zip(self.samples, self.samples[1:], strict=False):
            left, right = max(a.t, lo), min(b.t, hi)
            if right > left:
                total += a.pending * (right - left)
        return total

    @property
    def launched(self) -> list[str]:
        return [i for c in self.cycles for i in c.launched]

    @property
    def terminated(self) -> list[str]:
        return [i for c in self.cycles for i in c.terminated]

    @property
    def held_cycles(self) -> list[Cycle]:
        return [c for c in self.cycles if "gitops_hold" in c.codes]

    @property
    def canary_held_cycles(self) -> list[Cycle]:
        """Held by the canary itself (not only the reconcile's settle window) while its analysis ran."""
        start, end = self.canary_started, self.canary_ended
        if start is None:
            return []
        return [
            c
            for c in self.held_cycles
            if c.t >= start
            and (end is None or c.t < end)
            and any("Canary" in d for k, d in c.reasons if k == "gitops_hold")
        ]

    @property
    def removal_cycles(self) -> list[Cycle]:
        return [c for c in self.cycles if c.remove]

    def to_json(self) -> dict:
        """The run for a script: the verdict, the figures of the summary, and every cycle."""
        not_met = self.check()
        return {
            "met": not not_met,
            "not_met": not_met,
            "wall_s": round(self.wall_s, 1),
            "end_s": round(self.end, 1),
            "tick_s": self.timing.tick_s,
            "launched": self.launched,
            "terminated": self.terminated,
            "unjoined_instance": self.broken,
            "max_workers": max((s.workers for s in self.samples), default=0),
            "pending_pod_seconds": round(self.pending_pod_seconds()),
            "sale_served_s": None
            if self.sale_at is None or self.sale_bound_at is None
            else round(self.sale_bound_at - self.sale_at, 1),
            "gate_held_cycles": len(self.held_cycles),
            "canary_held_cycles": len(self.canary_held_cycles),
            "cycles": [
                {
                    "t": round(c.t, 1),
                    "action": c.action,
                    "status": c.status,
                    "reasons": [{"code": code, "detail": detail} for code, detail in c.reasons],
                    "launched": c.launched,
                    "terminated": c.terminated,
                    "gate_blocked": c.gate_blocked,
                    "error": c.error,
                }
                for c in self.cycles
            ],
        }

    def check(self) -> list[str]:
        """The expectations the run did not meet (empty: all met)."""
        failed = list(self.failures)
        if self.sale_bound_at is None:
            failed.append("the flash sale was not served: its pods were never all bound")
        if not self.held_cycles:
            failed.append("no scale-down was held by the GitOps gate during the Flux reconcile")
        removals = self.removal_cycles
        if not removals:
            failed.append("no scale-down happened in the quiet")
        elif self.reconcile_ended is None or removals[0].t < self.reconcile_ended:
            failed.append(f"a node was removed at {removals[0].t:.1f}s, before the Flux reconcile ended")
        elif self.canary_ended is None or removals[0].t < self.canary_ended:
            failed.append(f"a node was removed at {removals[0].t:.1f}s, before the canary was promoted")
        if not self.canary_held_cycles:
            failed.append("no scale-down was held by the GitOps gate during the canary analysis")
        scale_down_terminations = [i for i in self.terminated if i != self.broken]
        if removals and not scale_down_terminations:
            failed.append("scale-down chose nodes but terminated none")
        if self.broken is None:
            failed.append("no instance that never joins was launched")
        elif self.broken_gone_at is None or self.broken not in self.terminated:
            failed.append(f"the instance that never joined ({self.broken}) was not terminated")
        elif not any("unjoined_instance" in c.codes for c in self.cycles):
            failed.append("no cycle reported the unjoined instance")
        return failed
