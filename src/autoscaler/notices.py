"""What the operators are told after a cycle (SNS, and Slack when configured): pure, so the
message is tested without a destination.

A cycle that changed nothing says nothing, except the first time a GitOps hold passes its cap:
the cap lets scale-down go on past a Flux object stuck in progress, which someone should look at.
Later cycles past the same cap stay quiet. A cycle that fails is not told here (it would be told
every minute): the Errors alarms of template.yaml tell the SNS topic.
"""

from __future__ import annotations

from autoscaler.config import Settings
from autoscaler.model import ReasonCode
from autoscaler.service import CycleResult

CAP_NOTICE_WINDOW_S = 60.0
"""A capped hold is reported by the cycles in its first minute past the cap (the schedule's tick)."""


def notice(cycle: CycleResult, settings: Settings, now: float) -> tuple[str, str] | None:
    """(subject, message), or None when there is nothing to tell."""
    decision, outcome = cycle.decision, cycle.outcome
    interrupted = [r.detail for r in decision.reasons if r.code is ReasonCode.SPOT_INTERRUPTION]
    lines = [
        f"spot interruption: {'; '.join(interrupted)}" if decision.interrupted else "",
        f"launched {', '.join(outcome.launched)}" if outcome.launched else "",
        f"started from the warm pool {', '.join(outcome.started)}" if outcome.started else "",
        f"launch failures: {'; '.join(outcome.launch_failures)}" if outcome.launch_failures else "",
        f"draining {', '.join(outcome.cordoned)}" if outcome.cordoned else "",
        f"terminated {', '.join(outcome.terminated)}" if outcome.terminated else "",
        f"stopped into the warm pool {', '.join(outcome.stopped)}" if outcome.stopped else "",
        f"drains undone: {', '.join(outcome.drains_timed_out)}" if outcome.drains_timed_out else "",
        f"drains dropped: {'; '.join(outcome.drains_dropped)}" if outcome.drains_dropped else "",
    ]
    since = cycle.state.gate_held_since
    capped = [r for r in decision.reasons if r.code is ReasonCode.GITOPS_HOLD_CAPPED]
    if capped and since is not None and now - since < settings.gate_max_hold_s + CAP_NOTICE_WINDOW_S:
        lines.append(f"GitOps hold capped, scale-down goes on: {capped[0].detail}")
    lines = [line for line in lines if line]
    if not lines:
        return None
    reasons = "; ".join(f"{r.code}: {r.detail}" for r in decision.reasons)
    return f"node-fleet {settings.cluster_name}: {decision.action}", "\n".join([*lines, f"why: {reasons}"])
