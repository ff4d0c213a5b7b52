"""How close node-fleet's own levers come to issue 13's goal on each workload.

    .venv/bin/python bench/frontier.py [--traces DIR] [--only NAME,...] [--jobs N] [--json FILE]
    .venv/bin/python bench/frontier.py --from-json FILE

bench/replay.py measures the defaults and each lever alone. This replays node-fleet over a grid of
its levers on every workload (`node-fleet tune`'s machinery: the Lambda's code path, scored as
`simulate` scores it) and asks of each workload: of the points that meet the goal's two dollar
conditions (dollars at most ca-10s's, and at most 1.10 times the lower bound), which waits least,
and is that at most half of ca-10s's pending pod-seconds? Where no point of the grid gets there,
the row says how far the best one is: that workload's figure for the closing note. Last, the
points that meet the goal on the most workloads at once: the candidates for one set of defaults.
`--from-json` prints the same from a run's --json file, without replaying.
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import dataclass
from pathlib import Path

from autoscaler.config import Settings
from node_fleet import tune
from node_fleet.sim.engine import replay
from node_fleet.sim.report import score
from node_fleet.sim.runner import settings_for
from replay import GOAL, workloads

GRID = {
    "WARM_POOL_UNNEEDED_TIME_S": ("120", "300", "600"),
    "RAMP_WINDOW_S": ("0", "300", "1800"),
    "SCALE_DOWN_UNNEEDED_TIME_S": ("300", "600"),
    "FORECAST_MAX_PREWARM": ("0", "2"),
    "WARM_POOL_SIZE": ("4", "10"),
}
"""The levers that trade dollars for waiting, each over its useful range: how long a worker is kept
before it is stopped or terminated, room ahead of a ramp, the forecast, and how many stopped
workers wait to be started (72 points)."""


@dataclass(frozen=True)
class Reference:
    """ca-10s on one workload, as the goal reads it."""

    dollars: float
    pending_pod_seconds: float
    lower_bound_dollars: float

    @property
    def cost_ratio(self) -> float:
        return self.dollars / self.lower_bound_dollars


@dataclass(frozen=True)
class Run:
    workload: str
    ca: Reference
    points: list[tune.Point]

    def to_dict(self) -> dict:
        return {
            "workload": self.workload,
            "ca_10s": {"dollars": self.ca.dollars, "pending_pod_seconds": self.ca.pending_pod_seconds},
            "lower_bound_dollars": self.ca.lower_bound_dollars,
            "points": [p.to_dict() for p in self.points],
        }

    @classmethod
    def from_dict(cls, raw: dict) -> Run:
        ca = Reference(raw["ca_10s"]["dollars"], raw["ca_10s"]["pending_pod_seconds"], raw["lower_bound_dollars"])
        points = [
            tune.Point(
                p["settings"],
                (),
                p["dollars"],
                p["pending_pod_seconds"],
                p["p95_pending_s"],
                p["scale_actions"],
                p["flaps"],
            )
            for p in raw["points"]
        ]
        return cls(raw["workload"], ca, points)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--traces", type=Path, default=Path(__file__).resolve().parents[1] / ".." / "shared" / "traces")
    parser.add_argument("--jobs", type=int, default=tune.default_processes())
    parser.add_argument("--only", help="these workloads only, comma-separated (default: every one)")
    parser.add_argument("--json", type=Path, help="also write every point to this JSON file")
    parser.add_argument("--from-json", type=Path, help="print the tables of an earlier run's --json file")
    args = parser.parse_args()

    if args.from_json:
        runs = [Run.from_dict(raw) for raw in json.loads(args.from_json.read_text())]
    else:
        only = set(args.only.split(",")) if args.only else None
        runs = [run(w, args.jobs) for w in workloads(args.traces) if only is None or w.name in only]
    print("grid: " + "; ".join(f"{k} {', '.join(v)}" for k, v in GRID.items()))
    print(
        f"{'workload':<11} {'ca-10s $':>8} {'bound $':>7} {'ca pend':>7} | {'best':>5} {'goal':>4} | "
        f"{'min ratio':>9} | {'halves ca':>9} {'x ca $':>6} {'ratio':>6}"
    )
    for r in runs:
        print(
            f"{r.workload:<11} {r.ca.dollars:>8.2f} {r.ca.lower_bound_dollars:>7.2f} {r.ca.pending_pod_seconds:>7.0f} "
            f"| {summary(r.points, r.ca)}"
        )
    print()
    print("best: the grid point that waits least within both dollar conditions")
    for r in runs:
        print(f"{r.workload}: {best_point(r.points, r.ca)}")
    print()
    print("the points that meet the goal on the most workloads (then: that cost no more than ca-10s on the most)")
    for env, met, cheaper in most_met(runs)[:3]:
        print(f"{len(met)} met ({', '.join(met) or '-'}), {len(cheaper)} within ca-10s's dollars: {env}")
    if args.json:
        args.json.write_text(json.dumps([r.to_dict() for r in runs], indent=1))


def run(workload, jobs: int) -> Run:
    settings = settings_for(workload, Settings(), None)
    ca = score(replay(workload, GOAL.reference, settings))
    environ = {k: v for k, v in os.environ.items() if k not in GRID}
    found = tune.tune(workload, environ, GRID, settings.max_nodes, jobs)
    return Run(workload.name, Reference(ca.dollars, ca.pending_pod_seconds, ca.lower_bound_dollars), found.points)


def most_met(runs: list[Run]) -> list[tuple[str, list[str], list[str]]]:
    """Each grid point (its settings), the workloads on which it meets the goal, and those on which it
    costs no more than ca-10s: most met first, then most within ca-10s's dollars."""
    met: dict[str, list[str]] = {}
    cheaper: dict[str, list[str]] = {}
    for r in runs:
        max_pending, _ = GOAL.box(r.ca)
        affordable = {id(p) for p in _affordable(r.points, r.ca)}
        for p in r.points:
            env = " ".join(f"{k}={v}" for k, v in p.env.items())
            met.setdefault(env, [])
            cheaper.setdefault(env, [])
            if p.dollars <= r.ca.dollars:
                cheaper[env].append(r.workload)
            if id(p) in affordable and p.pending_pod_seconds <= max_pending:
                met[env].append(r.workload)
    ranked = sorted(met, key=lambda env: (-len(met[env]), -len(cheaper[env]), env))
    return [(env, met[env], cheaper[env]) for env in ranked]


def _affordable(points: list[tune.Point], ca: Reference) -> list[tune.Point]:
    """The points within both dollar conditions: the goal's cost ratio, which is never above ca-10s's."""
    _, max_ratio = GOAL.box(ca)
    return [p for p in points if p.dollars <= max_ratio * ca.lower_bound_dollars]


def summary(points: list[tune.Point], ca: Reference) -> str:
    """best: the least waiting (as a share of ca-10s's) within both dollar conditions, and whether
    that meets the goal; min ratio: the cheapest point's cost ratio; halves ca: of the points that
    wait at most half as long as ca-10s, the cheapest one's dollars against ca-10s's and its ratio.
    Which of the three conditions binds is read off the last two."""
    max_pending, _ = GOAL.box(ca)
    bound = ca.lower_bound_dollars
    best = min((p.pending_pod_seconds for p in _affordable(points, ca)), default=None)
    share = f"{best / ca.pending_pod_seconds:>5.2f}" if best is not None and ca.pending_pod_seconds else f"{'-':>5}"
    met = best is not None and best <= max_pending
    cheapest = min(p.dollars for p in points)
    halving = [p.dollars for p in points if p.pending_pod_seconds <= max_pending]
    halves = (
        f"{'yes':>9} {min(halving) / ca.dollars:>6.3f} {min(halving) / bound:>6.3f}"
        if halving
        else f"{'none':>9} {'-':>6} {'-':>6}"
    )
    return f"{share} {'met' if met else 'no':>4} | {cheapest / bound:>9.3f} | {halves}"


def best_point(points: list[tune.Point], ca: Reference) -> str:
    affordable = _affordable(points, ca)
    if not affordable:
        return "none within both dollar conditions"
    p = min(affordable, key=lambda p: (p.pending_pod_seconds, p.dollars))
    return " ".join(f"{k}={v}" for k, v in p.env.items()) + f" (${p.dollars:.2f}, {p.pending_pod_seconds:.0f} pod-s)"


if __name__ == "__main__":
    main()
