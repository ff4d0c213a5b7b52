"""The `node-fleet tune` subcommand: its options and its run (the work is `node_fleet.tune`'s)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from autoscaler.config import Settings
from node_fleet import exits, replay_options, tune

DAYS = 7.0
STEP_S = 60


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """The subcommand's parser."""
    rows = "; ".join(f"{lever.env} {','.join(lever.values)}" for lever in tune.GRID)
    parser = sub.add_parser(
        "tune",
        help="replay a cluster's history under a grid of settings; print the Pareto front and settings to use",
        description="Replay a workload (a trace, or the cluster's own history in Prometheus) with node-fleet "
        f"under every combination of a grid of settings ({rows}), score each in dollars and pending "
        "pod-seconds as `simulate` does, and print the Pareto front, the current settings' point (the "
        "environment's settings, the defaults where unset) and the recommended settings as KEY=value lines. "
        f"Recommended: {tune.RULE}.",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--trace", type=Path, help="a trace file (see --format)")
    source.add_argument(
        "--prometheus",
        metavar="URL",
        help="read the requests of the Pending and Running pods from Prometheus (kube-state-metrics); "
        "PROMETHEUS_* variables apply",
    )
    parser.add_argument("--days", type=float, help=f"with --prometheus: days of history (default: {DAYS:g})")
    parser.add_argument("--step-s", type=int, help=f"with --prometheus: seconds between samples (default: {STEP_S})")
    parser.add_argument(
        "--grid",
        action="append",
        default=[],
        metavar="KEY=V1,V2",
        help="values to try for a setting, replacing its row of the grid or adding one (repeatable)",
    )
    parser.add_argument("--quick", action="store_true", help="fewer values a setting (16 replays instead of 162)")
    parser.add_argument(
        "--jobs",
        type=int,
        default=tune.default_processes(),
        help="replays at once, one process each (default: %(default)s)",
    )
    replay_options.add(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the text")
    parser.add_argument("--plot", type=Path, help="write a PNG of the front")
    parser.set_defaults(run=run)
    return parser


def run(args: argparse.Namespace) -> int:
    from node_fleet.sim.runner import settings_for

    if args.jobs < 1:
        raise ValueError(f"--jobs must be >= 1, got {args.jobs}")
    replay_options.check_max_nodes(args)
    grid = tune.grid_values(args.quick, [tune.parse_grid_option(g) for g in args.grid])
    if args.prometheus:
        from node_fleet.prometheus_history import Window, read_workload

        if args.start_s is not None or args.duration_s is not None or args.format != "pods":
            raise ValueError("--format, --start-s and --duration-s read --trace; with --prometheus, use --days")
        window = Window(time.time(), DAYS if args.days is None else args.days, args.step_s or STEP_S)
        workload = read_workload(args.prometheus, window, os.environ)
    else:
        if args.days is not None or args.step_s is not None:
            raise ValueError("--days and --step-s read --prometheus; with --trace, use --start-s and --duration-s")
        workload = replay_options.trace_workload(args)
    max_nodes = settings_for(workload, Settings.from_env(os.environ), args.max_nodes).max_nodes
    result = tune.tune(workload, os.environ, grid, max_nodes, args.jobs)
    if args.json:
        print(json.dumps(tune.to_json(result), allow_nan=False))
    else:
        print(tune.format_text(result), end="")
    if args.plot:
        from node_fleet.tune_plot import plot_front

        args.plot.parent.mkdir(parents=True, exist_ok=True)
        plot_front(result, args.plot)
        print(f"plot written to {args.plot}", file=sys.stderr)  # stdout holds only the answer
    return exits.OK
