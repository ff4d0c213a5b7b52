"""How close node-fleet's own levers come to issue 13's goal on each workload.

    .venv/bin/python bench/frontier.py [--traces DIR] [--jobs N] [--json FILE]

bench/replay.py measures the defaults and each lever alone. This replays node-fleet over a grid of
its levers on every workload (`node-fleet tune`'s machinery: the Lambda's code path, scored as
`simulate` scores it) and asks of each workload: of the points that meet the goal's two dollar
conditions (dollars at most ca-10s's, and at most 1.10 times the lower bound), which waits least,
and is that at most half of ca-10s's pending pod-seconds? Where no point of the grid gets there,
the row says how far the best one is: that workload's figure for the closing note.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from autoscaler.config import Settings
from node_fleet import tune
from node_fleet.sim.engine import replay
from node_fleet.sim.report import score
from node_fleet.sim.runner import settings_for
from replay import COST_RATIO_GOAL, PENDING_SHARE_GOAL, workloads

GRID = {
    "WARM_POOL_UNNEEDED_TIME_S": ("120", "300", "600"),
    "RAMP_WINDOW_S": ("0", "300", "900"),
    "SCALE_DOWN_UNNEEDED_TIME_S": ("300", "600"),
    "FORECAST_MAX_PREWARM": ("0", "2"),
}
"""The levers that trade dollars for waiting, each over its useful range: how long a worker is kept
before it is stopped or terminated, room ahead of a ramp, and the forecast (36 points)."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--traces", type=Path, default=Path(__file__).resolve().parents[1] / ".." / "shared" / "traces")
    parser.add_argument("--jobs", type=int, default=tune.default_processes())
    parser.add_argument("--json", type=Path, help="also write every point to this JSON file")
    args = parser.parse_args()

    print("grid: " + "; ".join(f"{k} {', '.join(v)}" for k, v in GRID.items()))
    print(
        f"{'workload':<11} {'ca-10s $':>9} {'bound $':>8} {'$ cap':>7} {'ca pend':>8} {'best pend':>9} "
        f"{'share':>6} {'goal':>5}  best point (dollars, ratio)"
    )
    environ = {k: v for k, v in os.environ.items() if k not in GRID}
    results = []
    for workload in workloads(args.traces):
        started = time.perf_counter()
        settings = settings_for(workload, Settings(), None)
        ca = score(replay(workload, "ca-10s", settings))
        cap = min(ca.dollars, COST_RATIO_GOAL * ca.lower_bound_dollars)
        found = tune.tune(workload, environ, GRID, settings.max_nodes, args.jobs)
        affordable = [p for p in found.points if p.dollars <= cap]
        best = min(affordable, key=lambda p: (p.pending_pod_seconds, p.dollars), default=None)
        share = best.pending_pod_seconds / ca.pending_pod_seconds if best and ca.pending_pod_seconds else None
        met = share is not None and share <= PENDING_SHARE_GOAL
        where = (
            " ".join(f"{k}={v}" for k, v in best.env.items())
            + f" (${best.dollars:.2f}, {best.dollars / ca.lower_bound_dollars:.3f})"
            if best
            else "no point within the dollar cap"
        )
        print(
            f"{workload.name:<11} {ca.dollars:>9.2f} {ca.lower_bound_dollars:>8.2f} {cap:>7.2f} "
            f"{ca.pending_pod_seconds:>8.0f} {best.pending_pod_seconds if best else float('nan'):>9.0f} "
            f"{share if share is not None else float('nan'):>6.2f} {'met' if met else 'no':>5}  {where}"
            f"  [{time.perf_counter() - started:.0f}s]"
        )
        results.append(
            {
                "workload": workload.name,
                "ca_10s": {"dollars": ca.dollars, "pending_pod_seconds": ca.pending_pod_seconds},
                "lower_bound_dollars": ca.lower_bound_dollars,
                "dollar_cap": cap,
                "points": [p.to_dict() for p in found.points],
            }
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
