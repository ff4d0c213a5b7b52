"""The command-line options `simulate` and `tune` share: which part of a trace to replay, and the cap
on workers."""

from __future__ import annotations

import argparse

from node_fleet.sim.workload import Workload


def add(parser: argparse.ArgumentParser) -> None:
    from node_fleet.sim.traces import FORMATS

    parser.add_argument("--format", choices=FORMATS, default="pods", help="format of --trace (default: pods)")
    parser.add_argument(
        "--start-s",
        type=float,
        help="replay --trace from this second of it (default: the format's window; 0 for the excerpts in samples/traces)",
    )
    parser.add_argument("--duration-s", type=float, help="replay this many seconds of --trace (default: the format's)")
    parser.add_argument(
        "--max-nodes",
        type=int,
        help="cap on workers (default: MAX_NODES, or 1.25 x the workload's peak N* if that is larger)",
    )


def check_max_nodes(args: argparse.Namespace) -> None:
    if args.max_nodes is not None and args.max_nodes < 1:
        raise ValueError(f"--max-nodes must be >= 1, got {args.max_nodes}")


def trace_window(args: argparse.Namespace) -> dict[str, float]:
    window = {k: v for k, v in (("start_s", args.start_s), ("duration_s", args.duration_s)) if v is not None}
    if window and (getattr(args, "scenario", None) or args.format == "pods"):
        raise ValueError("--start-s and --duration-s cut a trace of the nasa, elb, azure or alibaba format")
    return window


def trace_workload(args: argparse.Namespace) -> Workload:
    """The workload of --trace, --format, --start-s and --duration-s."""
    from node_fleet.sim import traces

    return traces.load(args.trace, args.format, **trace_window(args))
