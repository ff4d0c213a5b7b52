"""Every policy on the built-in scenarios and on each shared trace found, in one table.

    .venv/bin/python bench/replay.py [--traces DIR] [--json FILE] [--plots DIR]

The full traces are read from ../shared/traces/ (beside the project; samples/traces/ holds only
excerpts). Dollars price every worker at on-demand with its root volume, plus the Lambda's runs
for node-fleet (autoscaler.pricing); a policy that launched spot gets its savings on a line of its
own. Under the table, issue 13's goal for each workload: node-fleet's pending pod-seconds at most
half of ca-10s's, its dollars at most ca-10s's, and its cost ratio at most 1.10.

Below the policies, node-fleet again with one lever changed from its defaults (LEVERS), so each
lever is measured alone and in combination on the same run. With --plots, one PNG per workload:
capacity and pending pods over time, and the cost/service plane of every row.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from autoscaler.config import Settings
from autoscaler.pricing import DEFAULT_INSTANCE_TYPE, DEFAULT_PRICES
from node_fleet.sim import traces
from node_fleet.sim.engine import replay
from node_fleet.sim.plot import Goal, plot_runs
from node_fleet.sim.report import WAIT_CAUSES, score, spot_lines, waits_by_cause
from node_fleet.sim.runner import compare, settings_for
from node_fleet.sim.scenarios import SCENARIOS, scenario

TRACE_FILES = {
    "nasa": "nasa-http-1995-rps.tbz2",
    "elb": "nab-aws-elb-request-count.csv",
    "azure": "azure-functions-2019-1000-invocations.csv",
    "alibaba": "alibaba-2023-openb-pod-list.csv",
}
LEVERS = {
    "nf/ca-rules": {
        "warm_pool_size": 0,
        "tick_s": 60,
        "launch_late_after_s": 900,
        "ramp_window_s": 0,
        "scale_down_utilization_threshold": 0.5,
    },
    "nf/no-spare": {"spare_room_pods": 0},
    "nf/tick-10": {"tick_s": 10},
    "nf/util-50": {"scale_down_utilization_threshold": 0.5},
    "nf/stopped-1.5h": {"warm_pool_max_stopped_s": 5400},
    "nf/2026-12-05": {"tick_s": 10, "scale_down_utilization_threshold": 0.5, "warm_pool_max_stopped_s": 5400},
    "nf/no-late": {"launch_late_after_s": 900},
    "nf/no-pool": {"warm_pool_size": 0},
    "nf/stop-10m": {"warm_pool_unneeded_time_s": 600},
    "nf/tick-60": {"tick_s": 60},
    "nf/no-ramp": {"ramp_window_s": 0},
    "nf/ramp-5m": {"ramp_window_s": 300},
    "nf/pool-4": {"warm_pool_size": 4},
    "nf/keep-stopped": {"warm_pool_max_stopped_s": 7 * 86_400},
    "nf/forecast": {"forecast_max_prewarm": 2},
    "nf/forecast+calm": {"forecast_max_prewarm": 2, "forecast_unneeded_time_s": 300},
    "nf/5min": {"scale_down_unneeded_time_s": 300},
}
"""node-fleet with one lever changed from its defaults (late launches replaced after 180 s, a warm
pool of 10 its workers are stopped into after 2 minutes unneeded and kept in for an hour, 15 s
ticks, nodes up to 65 % requested packed onto others, room for a ramp to go on when pods wait
again within 30 minutes of a scale-up and room kept for one more pod in that window, no forecast),
`2026-12-05` the defaults before the last three of those (10 s ticks, Cluster Autoscaler's 50 %,
1.5 hours stopped), and `ca-rules` with all of its own levers off: Cluster Autoscaler's rules at a
60 s tick, what node-fleet's defaults were before issue 13. Half the unneeded time (`5min`) is
cheaper, but goes against the brief's 10 minutes of low CPU for workers that are terminated;
`forecast+calm` halves it only when the forecast predicts no rise. The forecast acts only once a
replay has a day behind it (diurnal-3d, nasa's second day, elb's later days)."""
WAITS_OF = ("ca-10s", "node-fleet", "nf/2026-12-05", "nf/no-spare", "nf/stop-10m")
"""The rows whose pods' waits are broken down by what ended them (report.waits_by_cause)."""
PENDING_SHARE_GOAL = 0.5
"""node-fleet's pending pod-seconds at most this share of ca-10s's."""
COST_RATIO_GOAL = 1.10
GOAL = Goal("ca-10s", PENDING_SHARE_GOAL, COST_RATIO_GOAL)


def workloads(trace_dir: Path):
    for name in SCENARIOS:
        yield scenario(name)
    for fmt, file in TRACE_FILES.items():
        path = trace_dir / file
        if path.exists():
            yield traces.load(path, fmt)
        else:
            print(f"(trace {path} not found: skipped)")


def goal_conditions(ours, ca) -> list[tuple[str, bool, str]]:
    """Issue 13's three conditions for score `ours` against ca-10s's `ca`: (name, whether met, the
    figures)."""
    pending_cap = PENDING_SHARE_GOAL * ca.pending_pod_seconds
    return [
        (
            "waiting",
            ours.pending_pod_seconds <= pending_cap,
            f"pending {ours.pending_pod_seconds:.0f} <= {pending_cap:.0f}",
        ),
        ("dollars", ours.dollars <= ca.dollars, f"dollars {ours.dollars:.3f} <= {ca.dollars:.3f}"),
        ("ratio", ours.cost_ratio <= COST_RATIO_GOAL, f"ratio {ours.cost_ratio:.4f} <= {COST_RATIO_GOAL:.2f}"),
    ]


def goal_check(scores, policy: str = "node-fleet") -> str:
    """Issue 13's three conditions for `policy` against ca-10s, with the figures."""
    by = {s.policy: s for s in scores}
    checks = goal_conditions(by[policy], by["ca-10s"])
    verdict = "met" if all(ok for _, ok, _ in checks) else "not met"
    return f"{verdict:<8} " + "; ".join(f"{text} {'yes' if ok else 'no'}" for _, ok, text in checks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--traces", type=Path, default=Path(__file__).resolve().parents[1] / ".." / "shared" / "traces")
    parser.add_argument("--json", type=Path, help="also write every result to this JSON file")
    parser.add_argument("--plots", type=Path, help="write <workload>.png into this folder")
    args = parser.parse_args()

    header = (
        f"{'workload':<11} {'policy':<18} {'dollars':>8} {'bound $':>8} {'ratio':>6} {'pending pod-s':>14} "
        f"{'p95 s':>8} {'actions':>7} {'flaps':>5} {'node-h':>7}"
    )
    print(f"prices: {DEFAULT_PRICES.describe(DEFAULT_INSTANCE_TYPE)}")
    print(header)
    print("-" * len(header))
    results, goals, waits = [], {}, {}
    for workload in workloads(args.traces):
        started = time.perf_counter()
        result = compare(workload, settings_for(workload, Settings(), None))
        levers = [_lever(workload, result.settings, name, changes) for name, changes in LEVERS.items()]
        elapsed = time.perf_counter() - started
        records = [*result.records, *levers]
        scores = [*result.scores, *(score(r) for r in levers)]
        for s in scores:
            print(
                f"{workload.name:<11} {s.policy:<18} {s.dollars:>8.2f} {s.lower_bound_dollars:>8.2f} "
                f"{s.cost_ratio:>6.3f} {s.pending_pod_seconds:>14.0f} {s.p95_pending_s:>8.1f} "
                f"{s.scale_actions:>7} {s.flaps:>5} {s.node_hours:>7.1f}"
            )
        if args.plots:
            args.plots.mkdir(parents=True, exist_ok=True)
            plot_runs(records, scores, args.plots / f"{workload.name}.png", GOAL)
        for line in spot_lines(result.scores):
            print(f"{'':<11} {line}")
        for policy in ("node-fleet", *LEVERS):
            goals[f"{workload.name} {policy}"] = goal_check(scores, policy)
        for r in records:
            if r.policy in WAITS_OF:
                waits[f"{workload.name} {r.policy}"] = waits_by_cause(r.pods, r.horizon_s)
        print(f"{'':<11} (max_nodes {result.settings.max_nodes}, {elapsed:.1f}s for all policies)")
        results.append({**result.to_json(), "levers": [x.to_dict() for x in scores[len(result.scores) :]]})
    print()
    for name, text in goals.items():
        print(f"goal on {name:<29} {text}")
    print()
    print(f"{'waited for (pods x mean s)':<29} " + " ".join(f"{c:>15}" for c in WAIT_CAUSES))
    for name, by_cause in waits.items():
        cells = (f"{n} x {total / n:.1f}" if n else "0" for n, total in by_cause.values())
        print(f"{name:<29} " + " ".join(f"{c:>15}" for c in cells))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, allow_nan=False))


def _lever(workload, settings: Settings, name: str, changes: dict):
    record = replay(workload, "node-fleet", settings.replace(**changes))
    record.policy = name
    return record


if __name__ == "__main__":
    main()
