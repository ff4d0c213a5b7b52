"""Every policy on the built-in scenarios and on each shared trace found, in one table.

    .venv/bin/python bench/replay.py [--traces DIR] [--json]

Traces are read from ../shared/traces/ (beside the project) and never copied into it. The
last column checks the goal: node-fleet no worse than ca-60s and target-tracking on both
cost ratio and pending pod-seconds, and a cost ratio of at most 1.15.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from autoscaler.config import Settings
from node_fleet.sim import traces
from node_fleet.sim.runner import compare, settings_for
from node_fleet.sim.scenarios import SCENARIOS, scenario

TRACE_FILES = {
    "nasa": "nasa-http-1995-rps.tbz2",
    "elb": "nab-aws-elb-request-count.csv",
    "azure": "azure-functions-2019-1000-invocations.csv",
    "alibaba": "alibaba-2023-openb-pod-list.csv",
}
COST_GOAL = 1.15


def workloads(trace_dir: Path):
    for name in SCENARIOS:
        yield scenario(name)
    for fmt, file in TRACE_FILES.items():
        path = trace_dir / file
        if path.exists():
            yield traces.load(path, fmt)
        else:
            print(f"(trace {path} not found: skipped)")


def verdict(scores) -> str:
    by = {s.policy: s for s in scores}
    ours = by["node-fleet"]
    problems = [
        f"{metric} worse than {other}"
        for other in ("ca-60s", "target-tracking")
        for metric in ("cost_ratio", "pending_pod_seconds")
        if getattr(ours, metric) > getattr(by[other], metric) + 1e-9
    ]
    if ours.cost_ratio > COST_GOAL:
        problems.append(f"cost ratio {ours.cost_ratio:.3f} > {COST_GOAL}")
    return "ok" if not problems else "; ".join(problems)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--traces", type=Path, default=Path(__file__).resolve().parents[1] / ".." / "shared" / "traces")
    parser.add_argument("--json", type=Path, help="also write every result to this JSON file")
    args = parser.parse_args()

    header = f"{'workload':<11} {'policy':<16} {'node-h':>8} {'NH*':>8} {'cost':>6} {'pending pod-s':>14} {'p95 s':>8} {'actions':>7} {'flaps':>5}"
    print(header)
    print("-" * len(header))
    results, verdicts = [], {}
    for workload in workloads(args.traces):
        started = time.perf_counter()
        result = compare(workload, settings_for(workload, Settings(), None))
        elapsed = time.perf_counter() - started
        for s in result.scores:
            print(
                f"{workload.name:<11} {s.policy:<16} {s.node_hours:>8.1f} {s.lower_bound_node_hours:>8.1f} "
                f"{s.cost_ratio:>6.3f} {s.pending_pod_seconds:>14.0f} {s.p95_pending_s:>8.1f} "
                f"{s.scale_actions:>7} {s.flaps:>5}"
            )
        verdicts[workload.name] = verdict(result.scores)
        print(f"{'':<11} (max_nodes {result.settings.max_nodes}, {elapsed:.1f}s for all policies)")
        results.append(result.to_json())
    print()
    for name, text in verdicts.items():
        print(f"goal on {name:<11} {text}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, allow_nan=False))


if __name__ == "__main__":
    main()
