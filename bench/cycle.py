"""Time and memory to list, parse and plan one cycle against the fake API server.

    .venv/bin/python bench/cycle.py [--nodes 100,1000] [--pods-per-node 30] [--runs 3]

For each cluster size, the fake API server (node_fleet.stack.kube_api) runs in its own process with a
synthetic cluster (`synthetic_cluster`: one control-plane node, N workers with 30 pods each
carrying labels, tolerations, some spread constraints and anti-affinity, one local-path
volume a node, 200 PDBs, 3 DaemonSets). Each measurement is a fresh Python process (so its peak
RSS is its own) that lists through the `kubernetes` client, builds a ClusterSnapshot, and runs
planner.plan with fixed metrics. Paths:

- raw:    the adapter (autoscaler.adapters.kube.KubeCluster): the four Cluster port reads (nodes;
          pods with their PDBs, claims, volumes and classes; budgets; DaemonSets), pages of 500,
          decoded keeping only the fields the parser reads.
- models: the client's typed APIs (CoreV1Api.list_node / list_pod_for_all_namespaces,
          PolicyV1Api), same pages, each object deserialized into the client's models, then
          converted to Node/Pod (resources, owners and PDBs only: no placement, volumes or
          DaemonSets, so it does less than raw).
- wire:   the same page requests read as bytes and not parsed: the floor set by the transport
          and the fake server.

Figures: `import` is importing the client and building it (a cold start's share), `list+parse`
is listing and converting everything (wall clock; `cpu` is the measured process's own CPU time
for it, steadier on a shared machine, without the server's share), `plan` is planner.plan on
the result (wall, then CPU), all the median of --runs runs. `rss` is the process's peak resident set (ru_maxrss) and its growth over the
process after imports; `traced` is the tracemalloc peak of list+parse+plan, from one more run.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONTINUE = re.compile(rb'"continue":\s*"([^"]*)"')
NOW = 1_740_830_400.0  # 2025-03-01T12:00:00Z, after every synthetic timestamp


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# -- the measured process ------------------------------------------------------------------------


def worker(path: str, url: str, token: str, trace: bool) -> dict:
    started = time.perf_counter()
    from autoscaler.adapters.kube import KubeCluster
    from autoscaler.config.kube import KubeOptions

    options = KubeOptions.from_env(
        {"K8S_API_URL": url, "K8S_TOKEN_PARAM": "/bench/token", "K8S_TIMEOUT_S": "120"}, token=token
    )
    cluster = KubeCluster.from_options(options)
    if path == "models":
        from kubernetes.client import CoreV1Api, PolicyV1Api

        core, policy = CoreV1Api(cluster._api), PolicyV1Api(cluster._api)
    from autoscaler.config import Settings
    from autoscaler.model import ClusterSnapshot, Instance, InstanceState, MetricsView, ScalingState
    from autoscaler.planner import plan

    import_s = time.perf_counter() - started
    rss_setup = rss_mb()
    if trace:
        import tracemalloc

        tracemalloc.start()

    t0, c0 = time.perf_counter(), time.process_time()
    budgets, daemonsets = {}, []
    if path == "raw":
        nodes, pods = cluster.list_nodes(), cluster.list_pods()
        budgets, daemonsets = cluster.disruption_budgets(), cluster.daemonset_pods()
    elif path == "models":
        nodes, pods = list_with_models(core, policy, options.page_size)
    else:
        wire_bytes = fetch_only(cluster, options.page_size)
        nodes, pods = [], []
    t1, c1 = time.perf_counter(), time.process_time()

    decision = None
    if path != "wire":
        workers = [n for n in nodes if not n.control_plane and n.instance_id]
        instances = tuple(
            Instance(n.instance_id, InstanceState.RUNNING, n.az or "", "t3.large", NOW - 86_400) for n in workers
        )
        light = {n.name for i, n in enumerate(sorted(workers, key=lambda n: n.instance_id)) if i % 10 == 0}
        usage = {n.name: 0.1 if n.name in light else 0.55 for n in workers}
        metrics = MetricsView(cluster_cpu=0.5, node_cpu=usage, cluster_mem=0.5, node_mem=usage)
        snapshot = ClusterSnapshot(
            tuple(nodes),
            tuple(pods),
            instances,
            metrics,
            ("eu-west-1a", "eu-west-1b", "eu-west-1c"),
            pdbs=budgets,
            daemonsets=tuple(daemonsets),
        )
        state = ScalingState(unneeded_since={name: NOW - 3600 for name in light})
        settings = Settings(min_nodes=2, max_nodes=1000, max_drains_in_parallel=5)
        decision = plan(snapshot, state, settings, NOW)
    t2, c2 = time.perf_counter(), time.process_time()

    out = {
        "import_s": import_s,
        "list_s": t1 - t0,
        "list_cpu_s": c1 - c0,
        "plan_s": t2 - t1,
        "plan_cpu_s": c2 - c1,
        "nodes": len(nodes),
        "pods": len(pods),
        "rss_setup_mb": rss_setup,
        "rss_peak_mb": rss_mb(),
        "decision": f"{decision.action.value} {list(decision.remove)[:2]}..." if decision else "",
    }
    if path == "wire":
        out["bytes"] = wire_bytes
    if trace:
        out["traced_peak_mb"] = tracemalloc.get_traced_memory()[1] / 2**20
    return out


def fetch_only(cluster, page_size: int) -> int:
    """Every page the raw path requests, read as bytes and dropped."""
    total = 0
    for path, query in (
        ("/api/v1/nodes", {}),
        ("/apis/policy/v1/poddisruptionbudgets", {}),
        ("/api/v1/persistentvolumeclaims", {}),
        ("/api/v1/persistentvolumes", {}),
        ("/apis/storage.k8s.io/v1/storageclasses", {}),
        ("/api/v1/pods", {"fieldSelector": "status.phase!=Succeeded,status.phase!=Failed"}),
        ("/apis/apps/v1/daemonsets", {}),
    ):
        token = None
        while True:
            params = [("limit", page_size), *query.items(), *([("continue", token)] if token else [])]
            _, data = cluster._call("GET", path, query=params)
            total += len(data)
            # Find the continue token without parsing the page: it sits in the leading metadata.
            found = CONTINUE.search(data[:2048])
            token = found.group(1).decode() if found else None
            if not token:
                break
    return total


def list_with_models(core, policy, page_size: int):
    from autoscaler.adapters.kube_storage import DisruptionBudget
    from autoscaler.scheduling import LabelSelector, Requirement

    def pages(call, **kwargs):
        token = None
        while True:
            page = call(limit=page_size, _continue=token, **kwargs)
            yield from page.items
            token = page.metadata._continue
            if not token:
                return

    nodes = [node_from_model(m) for m in pages(core.list_node)]
    budgets: dict[str, list[DisruptionBudget]] = {}
    for m in pages(policy.list_pod_disruption_budget_for_all_namespaces):
        sel = m.spec.selector
        budget = DisruptionBudget(
            namespace=m.metadata.namespace,
            name=m.metadata.name,
            disruptions_allowed=(m.status.disruptions_allowed if m.status else 0) or 0,
            selector=None
            if sel is None
            else LabelSelector(
                tuple(sorted((sel.match_labels or {}).items())),
                tuple(Requirement(e.key, e.operator, tuple(e.values or ())) for e in sel.match_expressions or ()),
            ),
        )
        budgets.setdefault(budget.namespace, []).append(budget)
    pods = [
        pod_from_model(m, budgets)
        for m in pages(core.list_pod_for_all_namespaces, field_selector="status.phase!=Succeeded,status.phase!=Failed")
        if m.status.phase not in ("Succeeded", "Failed")
    ]
    return nodes, pods


def node_from_model(m):
    from autoscaler.adapters.kube_parse import CONTROL_PLANE_LABELS, parse_provider_id
    from autoscaler.adapters.kube_values import cpu_millis, mem_bytes
    from autoscaler.model import Node

    labels = m.metadata.labels or {}
    alloc = m.status.allocatable or {}
    az, instance_id = parse_provider_id(m.spec.provider_id)
    return Node(
        name=m.metadata.name,
        alloc_cpu_m=cpu_millis(str(alloc.get("cpu", "0")), round_up=False),
        alloc_mem_mib=mem_bytes(str(alloc.get("memory", "0")), round_up=False) // 2**20,
        instance_id=instance_id,
        az=az,
        ready=any(c.type == "Ready" and c.status == "True" for c in m.status.conditions or ()),
        cordoned=bool(m.spec.unschedulable),
        control_plane=any(k in labels and labels[k] != "false" for k in CONTROL_PLANE_LABELS),
        annotations=dict(m.metadata.annotations or {}),
        created_at=m.metadata.creation_timestamp.timestamp(),
    )


def pod_from_model(m, budgets):
    from autoscaler.adapters.kube_values import cpu_millis, mem_bytes
    from autoscaler.model import Pod

    def requests(c):
        r = (c.resources.requests if c.resources else None) or {}
        return (cpu_millis(str(r["cpu"])) if "cpu" in r else 0, mem_bytes(str(r["memory"])) if "memory" in r else 0)

    spec, meta = m.spec, m.metadata
    cpu = mem = 0
    for c in spec.containers:
        c_cpu, c_mem = requests(c)
        cpu, mem = cpu + c_cpu, mem + c_mem
    init_cpu = init_mem = 0
    for c in spec.init_containers or ():
        c_cpu, c_mem = requests(c)
        init_cpu, init_mem = max(init_cpu, c_cpu), max(init_mem, c_mem)
    cpu, mem = max(cpu, init_cpu), max(mem, init_mem)
    labels = meta.labels or {}
    since = None
    if not spec.node_name:
        for cond in m.status.conditions or ():
            if cond.type == "PodScheduled" and cond.status == "False" and cond.reason == "Unschedulable":
                since = cond.last_transition_time.timestamp()
    owner = next((r.kind for r in meta.owner_references or () if r.controller), None)
    grace = spec.termination_grace_period_seconds
    return Pod(
        name=meta.name,
        namespace=meta.namespace,
        cpu_m=cpu,
        mem_mib=-(-mem // 2**20),
        node=spec.node_name,
        owner_kind=owner,
        annotations=dict(meta.annotations or {}),
        has_pdb=any(b.selects(meta.namespace, labels) for b in budgets.get(meta.namespace, ())),
        local_storage=any(v.empty_dir is not None or v.host_path is not None for v in spec.volumes or ()),
        unschedulable_since=since,
        grace_period_s=30 if grace is None else grace,
    )


# -- the driver ----------------------------------------------------------------------------------


def measure(path: str, url: str, token: str, trace: bool) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--worker", path, url, token, *(["--trace"] if trace else [])],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(str(ROOT / d) for d in ("src", "tools"))},
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description="list + parse + plan, raw JSON vs the client's models")
    parser.add_argument("--nodes", default="100,1000")
    parser.add_argument("--pods-per-node", type=int, default=30)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--paths", default="wire,raw,models")
    parser.add_argument("--worker", nargs=3, metavar=("PATH", "URL", "TOKEN"), help=argparse.SUPPRESS)
    parser.add_argument("--trace", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(*args.worker, args.trace)))
        return

    print(
        f"{'cluster':<24}{'path':<8}{'import':>8}{'list+parse':>12}{'cpu':>7}{'plan':>8}{'cpu':>7}{'rss peak':>10}"
        f"{'rss growth':>12}{'traced':>9}"
    )
    for size in (int(s) for s in args.nodes.split(",")):
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "node_fleet.stack.kube_api",
                "--nodes",
                str(size),
                "--pods-per-node",
                str(args.pods_per_node),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(str(ROOT / d) for d in ("src", "tools"))},
        )
        try:
            ready = server.stdout.readline().split()
            if not ready or ready[0] != "READY":
                raise SystemExit(f"the fake API server did not start: {ready}")
            url, token = ready[1], ready[2]
            for path in args.paths.split(","):
                runs = [measure(path, url, token, trace=False) for _ in range(args.runs)]
                traced = measure(path, url, token, trace=True) if path != "wire" else {}
                med = {
                    k: statistics.median(r[k] for r in runs)
                    for k in ("import_s", "list_s", "list_cpu_s", "plan_s", "plan_cpu_s", "rss_peak_mb")
                }
                growth = statistics.median(r["rss_peak_mb"] - r["rss_setup_mb"] for r in runs)
                label = f"{size} nodes, {runs[0]['pods'] or size * args.pods_per_node} pods"
                traced_mb = f"{traced['traced_peak_mb']:.0f} MB" if traced else "-"
                plan_s = f"{med['plan_s'] * 1000:.0f}ms" if path != "wire" else "-"
                plan_cpu = f"{med['plan_cpu_s'] * 1000:.0f}ms" if path != "wire" else "-"
                print(
                    f"{label:<24}{path:<8}{med['import_s']:>7.2f}s{med['list_s']:>11.2f}s{med['list_cpu_s']:>6.2f}s"
                    f"{plan_s:>8}{plan_cpu:>7}"
                    f"{med['rss_peak_mb']:>7.0f} MB{growth:>9.0f} MB{traced_mb:>9}"
                    + (f"   ({runs[0]['bytes'] / 2**20:.0f} MiB of JSON)" if path == "wire" else ""),
                    flush=True,
                )
        finally:
            server.stdin.close()
            server.wait(timeout=30)


if __name__ == "__main__":
    main()
