"""The `node-fleet` command.

Errors are one line on stderr, never a traceback (`--traceback` shows it); the exit codes are those of
`node_fleet.exits`, listed in `node-fleet --help` and README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from autoscaler.config import ConfigError, Settings
from node_fleet import exits, replay_options
from node_fleet.sim.workload import TraceError

DEMO_PLOT = Path("out/demo.png")
DEMO_LOG = Path("out/demo.log")


EXIT_CODES = f"""exit codes:
  {exits.OK}    done (invoke: the handler answered; demo: the scenario's expectations were met; gate: clear)
  {exits.FAILED}    input it cannot use, an error (one line says which), or the demo's expectations not met
  {exits.CANNOT_START}    the command line is wrong, or Prometheus is missing (demo, invoke --local)
  {exits.ANSWER_FAILED}    invoke: the handler answered with a rejection or an error; gate: scale-down is held
  {exits.RAISED}    invoke: the handler raised
  {exits.INTERRUPTED}  interrupted (Ctrl-C)"""


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except (ConfigError, TraceError, ValueError, OSError) as exc:
        if args.traceback:
            raise
        print(f"node-fleet: {exc}", file=sys.stderr)
        return exits.FAILED
    except KeyboardInterrupt:
        print("node-fleet: interrupted", file=sys.stderr)
        return exits.INTERRUPTED
    except Exception as exc:  # e.g. a cluster that does not answer: one line, the traceback on demand
        if args.traceback:
            raise
        print(f"node-fleet: {type(exc).__name__}: {exc} (--traceback shows where)", file=sys.stderr)
        return exits.FAILED


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("node-fleet")
    except PackageNotFoundError:  # run from a checkout without installing it
        return "unknown (not installed)"


def _parser() -> argparse.ArgumentParser:
    from node_fleet.sim.policies import POLICY_NAMES
    from node_fleet.sim.scenarios import SCENARIOS

    parser = argparse.ArgumentParser(
        prog="node-fleet",
        description="Autoscaler for K3s workers on EC2.",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    parser.add_argument("--traceback", action="store_true", help="on an error, show the traceback too")
    sub = parser.add_subparsers(required=True, metavar="COMMAND")

    sim = sub.add_parser("simulate", help="replay a workload under every policy and score them")
    source = sim.add_mutually_exclusive_group(required=True)
    source.add_argument("--scenario", choices=sorted(SCENARIOS), help="a built-in workload")
    source.add_argument("--trace", type=Path, help="a trace file (see --format)")
    replay_options.add(sim)
    sim.add_argument("--policy", default="all", choices=("all", *POLICY_NAMES))
    sim.add_argument("--tick", type=float, default=60.0, help="seconds between cycles (ca-10s/ca-60s keep theirs)")
    sim.add_argument("--seed", type=int, default=1, help="seed of the scenario generator")
    sim.add_argument(
        "--spot-share", type=float, default=0.0, help="share of each launch asked as spot, 0..1 (SPOT_SHARE)"
    )
    sim.add_argument(
        "--spot-interruptions",
        type=float,
        default=0.0,
        help="spot interruption warnings per spot instance-hour (default: 0, EC2 never takes one back)",
    )
    sim.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    sim.add_argument("--plot", type=Path, help="write a PNG of the run")
    sim.set_defaults(run=_simulate)

    from node_fleet import tune_cli

    tune_cli.add_parser(sub)

    gate = sub.add_parser("gate", help="may scale-down proceed? the GitOps gate over Flux objects")
    gate_source = gate.add_mutually_exclusive_group(required=True)
    gate_source.add_argument(
        "--objects", type=Path, help="JSON or YAML: a list of objects, a Kubernetes List, or `---` documents"
    )
    gate_source.add_argument("--kubeconfig", type=Path, help="read Kustomizations, HelmReleases and Canaries")
    gate.set_defaults(run=_gate)

    what_if = sub.add_parser(
        "plan",
        help="what would node-fleet do to this cluster now? (read only)",
        description="Run the planner once over a cluster, every timer run out (unneeded time, cool-downs, the "
        "CPU window), and print the decision and each worker's verdict: would node-fleet remove it now, had it "
        "waited long enough? Settings come from the environment, as in the Lambda. Nothing is written.",
    )
    cluster_source = what_if.add_mutually_exclusive_group(required=True)
    cluster_source.add_argument(
        "--cluster",
        type=Path,
        help="what `kubectl get nodes,pods,pdb,pv,pvc,daemonsets,storageclasses -A -o json` prints (JSON or YAML)",
    )
    cluster_source.add_argument(
        "--kubeconfig", type=Path, help="read a live cluster instead (lists only; K8S_CONTEXT picks a context)"
    )
    what_if.add_argument(
        "--instances",
        type=Path,
        help='JSON list of {"id", "zone", "state", "launched_at", "private_ip", "private_dns_name", "vpc_id", '
        '"tags"} (default: each Node that is not the control plane is its own running worker)',
    )
    what_if.add_argument("--now", help="ISO 8601 time to plan at (default: now)")
    what_if.add_argument("--prometheus", metavar="URL", help="read usage from Prometheus (default: usage taken as low)")
    what_if.add_argument("--json", action="store_true", help="print one JSON object instead of the tables")
    what_if.set_defaults(run=_plan)

    from node_fleet import local_invoke

    invoke = sub.add_parser(
        "invoke",
        help="run a function of template.yaml in process, as `sam local invoke` would",
        description="Run a function of template.yaml in this process, as `sam local invoke` would. With --local, "
        "against an embedded stack started for the call (no AWS account, no cluster); a Function URL request "
        "(events/gitops_webhook_progressing.json) is then re-signed with the stack's HMAC key and a fresh timestamp.",
    )
    local_invoke.add_arguments(invoke)
    from node_fleet.demo.local import LOCAL_HELP

    invoke.add_argument("--local", action="store_true", help=LOCAL_HELP)
    invoke.set_defaults(run=_invoke)

    demo = sub.add_parser(
        "demo",
        help="the main job on an embedded default: the real handlers against an embedded stack, live",
        description="Start an embedded stack (moto, a fake Kubernetes API with simulated kubelets, a real "
        "Prometheus, Flux Kustomizations) and run both functions as template.yaml deploys them on an accelerated "
        "schedule: a flash sale, the quiet after it with a Flux reconcile holding scale-down, and a launch that "
        "never joins. Prints a timeline and a summary, writes a PNG. Exit 0 when the scenario's expectations "
        "were met, 1 when not, 2 when Prometheus is missing (sudo apt-get install prometheus). "
        "The simulator's replay of the flash sale is `node-fleet simulate --scenario flash-sale`.",
    )
    demo.add_argument("--plot", type=Path, default=DEMO_PLOT, help=f"PNG of the run (default: {DEMO_PLOT})")
    demo.add_argument(
        "--log", type=Path, default=DEMO_LOG, help=f"the handlers' logs and metrics (default: {DEMO_LOG})"
    )
    demo.add_argument("--quick", action="store_true", help="shorter ticks and timers (about two minutes)")
    demo.add_argument(
        "--json", action="store_true", help="print one JSON object of the run on stdout (the live lines go to stderr)"
    )
    demo.set_defaults(run=_demo)
    return parser


def _invoke(args: argparse.Namespace) -> int:
    if args.local:
        from node_fleet.demo.local import run_local

        return run_local(args)
    from node_fleet import local_invoke

    return local_invoke.run(args)


def _simulate(args: argparse.Namespace) -> int:
    from node_fleet.sim import traces
    from node_fleet.sim.policies import POLICY_NAMES
    from node_fleet.sim.runner import compare, settings_for
    from node_fleet.sim.scenarios import scenario
    from node_fleet.sim.spot import SpotModel

    if args.tick <= 0:
        raise ValueError(f"--tick must be > 0 seconds, got {args.tick}")
    replay_options.check_max_nodes(args)
    window = replay_options.trace_window(args)
    workload = scenario(args.scenario, args.seed) if args.scenario else traces.load(args.trace, args.format, **window)
    settings = settings_for(workload, Settings.from_env(os.environ), args.max_nodes)
    policies = POLICY_NAMES if args.policy == "all" else (args.policy,)
    spot = SpotModel(args.spot_share, args.spot_interruptions, args.seed)
    result = compare(workload, settings, policies, args.tick, progress=sys.stderr.isatty(), spot=spot)
    if args.json:
        print(json.dumps(result.to_json(), allow_nan=False))
    else:
        _print_table(result)
    if args.plot:
        _plot(result, args.plot)
    return 0


def _gate(args: argparse.Namespace) -> int:
    from autoscaler.gitops.gate import gate_objects

    if args.objects is not None:
        data = _read_objects(args.objects)
    else:
        from autoscaler.adapters.kube import KubeCluster
        from autoscaler.config.kube import KubeOptions
        from autoscaler.gitops.reader import list_objects

        data = list_objects(KubeCluster.from_options(KubeOptions(kubeconfig=str(args.kubeconfig))))
    answer = gate_objects(data)
    print(json.dumps(answer))
    return exits.GATE_HOLDS if answer["blocked"] else exits.OK


def _read_objects(path: Path) -> Any:
    """Flux objects as users keep them: JSON, or YAML with one object, a List, or several `---` documents."""
    text = path.read_text()
    try:
        return json.loads(text)
    except json.JSONDecodeError as json_error:
        if path.suffix == ".json":
            raise ValueError(f"{path}: not JSON ({json_error.msg} at line {json_error.lineno})") from None
    import yaml

    try:
        documents = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ValueError(f"{path}: neither JSON nor YAML ({getattr(exc, 'problem', None) or exc}{where})") from None
    items: list[Any] = []
    for document in documents:
        if isinstance(document, list):
            items.extend(document)
        elif isinstance(document, dict) and str(document.get("kind", "")).endswith("List"):
            items.extend(document.get("items") or [])
        else:
            items.append(document)
    return items


def _plan(args: argparse.Namespace) -> int:
    import time

    from node_fleet import whatif

    settings = Settings.from_env(os.environ)
    now = whatif.parse_now(args.now) if args.now else time.time()
    if args.cluster is not None:
        cluster = whatif.read_cluster_file(args.cluster)
    else:
        cluster = whatif.read_cluster_live(args.kubeconfig, os.environ.get("K8S_CONTEXT") or None)
    notes = []
    if args.instances is not None:
        instances, notes = whatif.read_instances(args.instances, settings, os.environ)
    else:
        instances = whatif.instances_from_nodes(cluster.nodes)
    if args.prometheus:
        metrics = whatif.prometheus_usage(args.prometheus, os.environ)
    else:
        metrics = whatif.low_usage(cluster.nodes)
        notes.append(whatif.USAGE_ASSUMED_LOW)
    answer = whatif.what_if(cluster, instances, metrics, settings, now, notes)
    print(json.dumps(whatif.to_json(answer)) if args.json else whatif.format_answer(answer))
    return 0


def _demo(args: argparse.Namespace) -> int:
    import signal

    from node_fleet.demo.run import run_demo

    # Ctrl-C must reach the demo as KeyboardInterrupt (so it stops what it started), even when this
    # process was started with SIGINT ignored; SIGTERM stops it the same way.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler), signal.signal(signal.SIGTERM, _terminated)
    try:
        return run_demo(args.plot, args.log, quick=args.quick, as_json=args.json)
    finally:
        signal.signal(signal.SIGINT, previous[0])
        signal.signal(signal.SIGTERM, previous[1])


def _terminated(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _print_table(result) -> None:
    from node_fleet.sim.report import format_table

    s = result.settings
    print(f"{result.workload.name}: {result.workload.description}")
    print(f"workers {s.node_cpu_m}m/{s.node_mem_mib}Mi, min {s.min_nodes}, max {s.max_nodes}, tick {result.tick_s:g}s")
    print(f"prices: {result.price_basis}")
    print(format_table(result.scores, result.workload.name))


def _plot(result, path: Path) -> None:
    from node_fleet.sim.plot import plot_runs

    path.parent.mkdir(parents=True, exist_ok=True)
    plot_runs(result.records, result.scores, path)
    print(f"plot written to {path}", file=sys.stderr)  # stdout holds only the answer (one JSON object with --json)


if __name__ == "__main__":
    sys.exit(main())
