"""Score a replay (`RunRecord`) against the definitions in the benchmark reference.

Cost: dollars (every worker at on-demand, its root volume, the Lambda's own runs), the fluid lower
bound priced at on-demand and their ratio; node-hours `NH` (60 s billing minimum, from `running`)
beside them. Spot's savings stand apart, so that on-demand is compared with on-demand. Service:
pending-pod-seconds, creation-to-binding wait percentiles, and the SPEC elasticity metrics on CPU.
Stability: scale actions, flaps and short-lived instances.

Everything here is pure (no I/O) and linear in the size of the record, bar one sort of the pod
waits.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from autoscaler.pricing import DEFAULT_PRICES, HOUR_S, ON_DEMAND, Prices, billed_s
from node_fleet.sim.record import InstanceLife, PodLife, RunRecord, Sample, ScaleEvent

FLAP_WINDOW_S = 600.0
"""A launch this close after a termination (or the reverse) is a flap."""

SHORT_LIVED_S = 600.0
"""Instances terminated sooner than this after launch count as short-lived."""

THETA_EPS_CPU_M = 1000.0
"""Floor of the demand in the theta denominators (one core), so idle periods stay finite."""


@dataclass(frozen=True, slots=True)
class PolicyScore:
    policy: str
    dollars: float
    """Workers at on-demand prices (spot ones too), their root volumes and the Lambda's runs."""
    lower_bound_dollars: float
    """The fluid lower bound NH*, each node-hour an on-demand worker with its root volume."""
    cost_ratio: float
    """dollars / lower_bound_dollars (1.0 is the physical limit; inf when the bound is 0 and dollars are not)."""
    lambda_dollars: float
    """The autoscaler's Lambda runs, part of `dollars`."""
    spot_savings: float
    """What spot prices take off `dollars` for the instances launched as spot."""
    node_hours: float
    """NH: billed instance-hours."""
    lower_bound_node_hours: float
    """NH*: integral of max(min_nodes, ceil(d_cpu/a_cpu), ceil(d_mem/a_mem))."""
    node_hour_ratio: float
    """NH / NH*."""
    pending_pod_seconds: float
    p50_pending_s: float
    p95_pending_s: float
    max_pending_s: float
    """Creation-to-binding waits; pods never bound wait until the horizon."""
    scale_actions: int
    flaps: int
    short_lived_share: float
    """Share of instances (0..1) terminated less than 10 minutes after launch."""
    theta_u: float
    tau_u: float
    theta_o: float
    tau_o: float
    """SPEC elasticity metrics on CPU, in percent."""
    peak_nodes: int
    """Most Ready nodes at any sample."""
    peak_instances: int
    """Most instances alive (billing) at any sample."""
    peak_lower_bound_nodes: int
    """Peak of N*: what a static fleet would need."""
    pods: int
    unbound_pods: int
    spot_interruptions: int = 0
    """Spot workers EC2 warned it takes back."""
    interruption_pending_pod_s: float = 0.0
    """Pod-seconds waited by the pods those interruptions displaced, until bound again."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready values: counts as ints, the rest as rounded floats (None when not finite)."""
        out: dict[str, Any] = {}
        for key, value in asdict(self).items():
            if isinstance(value, float):
                out[key] = _round(value, _DIGITS.get(key, 3))
            else:
                out[key] = value
        return out


_DIGITS = {
    "dollars": 4,
    "lower_bound_dollars": 4,
    "cost_ratio": 4,
    "lambda_dollars": 6,
    "spot_savings": 4,
    "node_hours": 4,
    "lower_bound_node_hours": 4,
    "node_hour_ratio": 4,
    "pending_pod_seconds": 1,
    "interruption_pending_pod_s": 1,
    "p50_pending_s": 2,
    "p95_pending_s": 2,
    "max_pending_s": 2,
    "short_lived_share": 4,
    "theta_u": 3,
    "tau_u": 3,
    "theta_o": 3,
    "tau_o": 3,
}


def _round(value: float, digits: int) -> float | None:
    if not math.isfinite(value):
        return None
    return round(value, digits) + 0.0  # + 0.0 turns -0.0 into 0.0


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def _end(inst: InstanceLife, horizon_s: float) -> float:
    return inst.terminated_at if inst.terminated_at is not None else horizon_s


def running_periods(inst: InstanceLife, horizon_s: float) -> list[float]:
    """How long each of its runs lasted: from `running` to its first stop, from each start to the
    next stop, the last to its termination or the horizon. EC2 bills each run on its own."""
    periods, since = [], inst.running_at
    for stopped_at, running_again in inst.stops:
        periods.append(min(stopped_at, horizon_s) - since)
        if running_again is None or running_again >= horizon_s:
            return periods
        since = running_again
    return [*periods, _end(inst, horizon_s) - since]


def node_hours(instances: list[InstanceLife], horizon_s: float) -> float:
    """NH = the sum over runs of max(60 s, run) / 3600 (one run from `running` to the termination
    or the horizon, unless the warm pool stopped it)."""
    return sum(billed_s(run) for inst in instances for run in running_periods(inst, horizon_s)) / HOUR_S


def bill(record: RunRecord, prices: Prices) -> tuple[float, float]:
    """(dollars, spot savings): each instance at on-demand from `running` and its root volume from
    launch, plus the Lambda's runs; and what the spot instances' own prices take off that."""
    on_demand = savings = 0.0
    for inst in record.instances:
        end = _end(inst, record.horizon_s)
        runs = running_periods(inst, record.horizon_s)
        ec2 = sum(prices.instance_dollars(record.instance_type, ON_DEMAND, run) for run in runs)
        # The volume bills from launch to termination, stopped or not.
        on_demand += ec2 + prices.volume_dollars(end - inst.launched_at)
        if inst.lifecycle != ON_DEMAND:
            savings += ec2 - sum(prices.instance_dollars(record.instance_type, inst.lifecycle, run) for run in runs)
    return on_demand + prices.lambda_dollars(record.lambda_invocations), savings


def lower_bound_nodes(sample: Sample, node_cpu_m: int, node_mem_mib: int, min_nodes: int) -> int:
    """N*(t) = max(n_min, ceil(d_cpu / a_cpu), ceil(d_mem / a_mem))."""
    return max(
        min_nodes,
        _ceil_div(sample.demand_cpu_m, node_cpu_m),
        _ceil_div(sample.demand_mem_mib, node_mem_mib),
    )


def pod_waits(pods: list[PodLife], horizon_s: float) -> list[float]:
    """Creation-to-binding waits, sorted; a pod never bound waits until the horizon."""
    waits = [max(0.0, (p.bound_at if p.bound_at is not None else horizon_s) - p.created_at) for p in pods]
    waits.sort()
    return waits


WAIT_CAUSES = ("room", "start", "launch", "unserved")
"""What a pod's wait ended on: room on a node already Ready, a stopped worker started, a new worker
launched, or none (it ended, or the replay did, unbound)."""


def waits_by_cause(pods: list[PodLife], horizon_s: float) -> dict[str, tuple[int, float]]:
    """For each of WAIT_CAUSES, the pods that waited for their first binding and their pod-seconds."""
    out = dict.fromkeys(WAIT_CAUSES, (0, 0.0))
    for p in pods:
        if p.bound_at is None:
            cause, wait = "unserved", (p.ended_at if p.ended_at is not None else horizon_s) - p.created_at
        else:
            cause, wait = p.waited_for, p.bound_at - p.created_at
        if wait > 0 and cause:
            count, total = out[cause]
            out[cause] = (count + 1, total + wait)
    return out


def percentile(sorted_values: list[float], q: float) -> float:
    """Linear-interpolation percentile (numpy's default) of already sorted values; 0.0 if empty."""
    if not sorted_values:
        return 0.0
    pos = (len(sorted_values) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    frac = pos - lo
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * frac


def count_flaps(actions: list[ScaleEvent], window_s: float = FLAP_WINDOW_S) -> int:
    """Actions that reverse an opposite action taken at most `window_s` earlier.

    A launch within the window after a termination, or a termination within the window after a
    launch, counts once (the later action of the pair). Actions are taken in time order, ties in
    recording order. A warm pool's start counts as a launch and its stop as a termination; other
    kinds are ignored.
    """
    last: dict[str, float] = {}
    opposite = {"launch": "terminate", "terminate": "launch"}
    flaps = 0
    for action in sorted(actions, key=lambda a: a.t):  # stable: ties keep recording order
        kind = {"start": "launch", "stop": "terminate"}.get(action.kind, action.kind)
        other = opposite.get(kind)
        if other is None:
            continue
        prev = last.get(other)
        if prev is not None and action.t - prev <= window_s:
            flaps += 1
        last[kind] = action.t
    return flaps


def short_lived_share(instances: list[InstanceLife], limit_s: float = SHORT_LIVED_S) -> float:
    """Share of instances terminated less than `limit_s` after launch.

    Instances still alive at the horizon never count as short-lived (their life is censored), but
    they are in the denominator.
    """
    if not instances:
        return 0.0
    short = sum(1 for i in instances if i.terminated_at is not None and i.terminated_at - i.launched_at < limit_s)
    return short / len(instances)


def _ratio(cost: float, bound: float) -> float:
    if bound > 0:
        return cost / bound
    # the bound is 0 only with min_nodes = 0 and no demand at all
    return math.inf if cost > 0 else 1.0


def score(record: RunRecord, prices: Prices = DEFAULT_PRICES) -> PolicyScore:
    """Score one replay; each sample stands for `record.step_s` seconds."""
    step = record.step_s
    a_cpu, a_mem, n_min = record.node_cpu_m, record.node_mem_mib, record.min_nodes

    nstar_s = 0.0
    pending_s = 0.0
    under = over = 0.0
    under_t = over_t = 0.0
    peak_nodes = peak_instances = peak_nstar = 0
    for smp in record.samples:
        nstar = max(n_min, _ceil_div(smp.demand_cpu_m, a_cpu), _ceil_div(smp.demand_mem_mib, a_mem))
        nstar_s += nstar
        pending_s += smp.pending_pods
        d = float(smp.demand_cpu_m)
        s = float(smp.ready_nodes * a_cpu)
        denom = max(d, THETA_EPS_CPU_M)
        if d > s:
            under += (d - s) / denom
            under_t += 1
        elif s > d:
            over += (s - d) / denom
            over_t += 1
        peak_nodes = max(peak_nodes, smp.ready_nodes)
        peak_instances = max(peak_instances, smp.instances)
        peak_nstar = max(peak_nstar, nstar)

    n_samples = len(record.samples)
    pct = 100.0 / n_samples if n_samples else 0.0  # 100/T * integral, with T = n * step

    nh = node_hours(record.instances, record.horizon_s)
    nh_star = nstar_s * step / HOUR_S
    dollars, spot_savings = bill(record, prices)
    bound = nh_star * prices.node_hourly(record.instance_type)

    waits = pod_waits(record.pods, record.horizon_s)
    return PolicyScore(
        policy=record.policy,
        dollars=dollars,
        lower_bound_dollars=bound,
        cost_ratio=_ratio(dollars, bound),
        lambda_dollars=prices.lambda_dollars(record.lambda_invocations),
        spot_savings=spot_savings,
        node_hours=nh,
        lower_bound_node_hours=nh_star,
        node_hour_ratio=_ratio(nh, nh_star),
        pending_pod_seconds=pending_s * step,
        p50_pending_s=percentile(waits, 50),
        p95_pending_s=percentile(waits, 95),
        max_pending_s=waits[-1] if waits else 0.0,
        scale_actions=len(record.actions),
        flaps=count_flaps(record.actions),
        short_lived_share=short_lived_share(record.instances),
        theta_u=under * pct,
        tau_u=under_t * pct,
        theta_o=over * pct,
        tau_o=over_t * pct,
        peak_nodes=peak_nodes,
        peak_instances=peak_instances,
        peak_lower_bound_nodes=peak_nstar,
        pods=len(record.pods),
        unbound_pods=sum(1 for p in record.pods if p.bound_at is None),
        spot_interruptions=record.spot_interruptions,
        interruption_pending_pod_s=record.interruption_pending_pod_s,
    )


_COLUMNS: tuple[tuple[str, str], ...] = (
    ("policy", "policy"),
    ("dollars", "dollars"),
    ("bound $", "lower_bound_dollars"),
    ("cost ratio", "cost_ratio"),
    ("node-h", "node_hours"),
    ("pending pod-s", "pending_pod_seconds"),
    ("p95 pending s", "p95_pending_s"),
    ("actions", "scale_actions"),
    ("flaps", "flaps"),
)

_FORMATS = {
    "dollars": "{:.2f}",
    "lower_bound_dollars": "{:.2f}",
    "node_hours": "{:.1f}",
    "cost_ratio": "{:.3f}",
    "pending_pod_seconds": "{:.0f}",
    "p95_pending_s": "{:.1f}",
    "scale_actions": "{:d}",
    "flaps": "{:d}",
}


def _cell(score_: PolicyScore, attr: str) -> str:
    value = getattr(score_, attr)
    if isinstance(value, float) and not math.isfinite(value):
        return "inf" if value > 0 else str(value)
    fmt = _FORMATS.get(attr)
    return fmt.format(value) if fmt else str(value)


def format_table(scores: list[PolicyScore], title: str) -> str:
    """An aligned plain-text table, one row a policy (text left-aligned, numbers right-aligned)."""
    header = [name for name, _ in _COLUMNS]
    rows = [[_cell(s, attr) for _, attr in _COLUMNS] for s in scores]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        parts = [cells[0].ljust(widths[0])]
        parts += [c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True)]
        return "  ".join(parts).rstrip()

    rule = "  ".join("-" * w for w in widths)
    out = [title, "=" * max(len(title), len(rule)), line(header), rule]
    out += [line(r) for r in rows]
    out += spot_lines(scores)
    return "\n".join(out) + "\n"


def spot_lines(scores: list[PolicyScore]) -> list[str]:
    """One line a policy that launched spot (the table's dollars price every worker at on-demand), and
    one a policy whose spot workers EC2 took back: what those interruptions cost the pods."""
    return [
        f"spot: {s.policy} billed ${s.dollars - s.spot_savings:.2f}, ${s.spot_savings:.2f} less than on-demand"
        for s in scores
        if s.spot_savings > 0
    ] + [
        f"spot interruptions: {s.policy} {s.spot_interruptions} warned, "
        f"{s.interruption_pending_pod_s:.0f} pending pod-s from the pods they displaced"
        for s in scores
        if s.spot_interruptions > 0
    ]


def to_json(workload_name: str, scores: list[PolicyScore], extra: dict[str, Any]) -> dict[str, Any]:
    """`{"workload": ..., **extra, "policies": {name: score.to_dict()}}`."""
    return {
        "workload": workload_name,
        **extra,
        "policies": {s.policy: s.to_dict() for s in scores},
    }
