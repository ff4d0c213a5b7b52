"""The demo's terminal lines: the header, one line a cycle, the gate's reasons, the summary."""

from __future__ import annotations

from typing import Any

from node_fleet.demo import scenario as sc
from node_fleet.demo.record import Cycle, Record


def header() -> str:
    return (
        f"{'time':>8}  {'workers':>7} {'ready':>5} {'pending':>7}  {'decision':<13} {'EC2':<6} "
        f"{'main reason':<{REASON_WIDTH}} gate (as the hook last wrote it)"
    )


# A longer reason is shown whole and pushes the gate right: a cut reason hid what the planner meant.
REASON_WIDTH = 64


def cycle_line(c: Cycle) -> str:
    """time, workers, ready, pending, the decision (action and how many nodes it launches or removes),
    what EC2 saw this cycle (+launched -terminated), the main reason and the gate."""
    decision = c.action or "?"
    if c.launches:
        decision += f" {c.launches}"
    elif c.remove:
        decision += f" {len(c.remove)}"
    ec2 = " ".join(
        part
        for part in (f"+{len(c.launched)}" * bool(c.launched), f"-{len(c.terminated)}" * bool(c.terminated))
        if part
    )
    if c.error:
        reason = f"error: {c.error}"
    else:
        code, detail = c.main_reason()
        reason = f"{code}: {detail}" if detail else code
    gate = f"held ({c.gate})" if c.gate_blocked else ("open" if not c.gate.startswith("hook") else c.gate)
    return f"{c.t:7.1f}s  {c.workers:>7} {c.ready:>5} {c.pending:>7}  {decision:<13} {ec2:<6} {reason:<{REASON_WIDTH}} {gate}"


def gate_text(reasons: list[dict[str, Any]]) -> str:
    parts = []
    for r in reasons:
        if r.get("kind") == "SettleWindow":
            parts.append("settling")
        else:
            parts.append(f"{r.get('kind')} {r.get('name')} {str(r.get('state', '')).replace('_', ' ')}")
    return ", ".join(parts)


def summary(r: Record) -> list[str]:
    sale_launches = [i for c in r.cycles if c.launched and (r.batch_at is None or c.t < r.batch_at) for i in c.launched]
    batch_launches = [
        i for c in r.cycles if c.launched and r.batch_at is not None and c.t >= r.batch_at for i in c.launched
    ]
    scale_down = [i for i in r.terminated if i != r.broken]
    held = r.held_cycles
    sale_pps = r.pending_pod_seconds(r.sale_at, r.quiet_at) if r.sale_at is not None else 0.0
    batch_pps = r.pending_pod_seconds(r.batch_at) if r.batch_at is not None else 0.0
    served = "never"
    if r.sale_at is not None and r.sale_bound_at is not None:
        served = f"{r.sale_bound_at - r.sale_at:.1f} s ({sc.SALE_WAVES[-1]} pods in {len(sc.SALE_WAVES)} waves)"
    after_hold = (
        "yes"
        if held and r.removal_cycles and r.reconcile_ended is not None and (r.removal_cycles[0].t >= r.reconcile_ended)
        else "no"
    )
    promoted = r.canary_ended is not None and bool(r.removal_cycles) and r.removal_cycles[0].t >= r.canary_ended
    gate_held_s = sum(b.t - a.t for a, b in zip(r.cycles, r.cycles[1:], strict=False) if a.gate_blocked)
    unjoined = "no launch that never joins"
    if r.broken is not None:
        if r.broken_gone_at is not None and r.broken_launched_at is not None:
            unjoined = f"yes: {r.broken} terminated {r.broken_gone_at - r.broken_launched_at:.0f} s after its launch"
        else:
            unjoined = f"no: {r.broken} is still there"
    batch = f"{len(batch_launches)} for the batch"
    if r.broken in batch_launches:
        batch += f": 1 never joined, {len(batch_launches) - 1} replacement"
    return [
        "",
        f"summary: {len(r.cycles)} cycles in {r.end:.0f} s (tick {r.timing.tick_s:g} s; {r.wall_s:.0f} s wall in all)",
        f"  launches                   {len(r.launched):>6}  ({len(sale_launches)} for the sale; {batch})",
        f"  terminations               {len(r.terminated):>6}  ({len(scale_down)} by scale-down, "
        f"{len(r.terminated) - len(scale_down)} unjoined)",
        f"  max workers                {max((s.workers for s in r.samples), default=0):>6}",
        f"  pending-pod-seconds        {r.pending_pod_seconds():>6.0f}  (sale {sale_pps:.0f}, batch {batch_pps:.0f})",
        f"  sale -> all pods bound     {served}",
        f"  GitOps holds observed      {len(held)} cycles held by the gate ({gate_held_s:.0f} s gate held); "
        f"scale-down after the reconcile: {after_hold}",
        f"  canary analysis            {len(r.canary_held_cycles)} cycles held while Flagger analysed the new revision; "
        f"scale-down after its promotion: {'yes' if promoted else 'no'}",
        f"  unjoined instance cleaned  {unjoined}",
    ]
