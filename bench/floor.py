"""The cost ratio an ideal packer reaches when no running pod is ever moved: issue 13's 1.10 against
what pods that stay where they land leave on the table.

    .venv/bin/python bench/floor.py [--traces DIR] [--seeds N]

The lower bound N*(t) packs the demand afresh at every instant, as if pods could move for free. A
pod that is not moved keeps its node up until it ends, and nobody knows when that is (a Job's pod
moved starts over, so moving it is not free either). This packs each workload's pods with every
advantage a policy cannot have: each pod placed the instant it is created on a node Ready that
instant (no boot, no wait, no tick), each node gone the instant its last pod ends, the pods' sizes
known, their lengths not. Each pod goes to the first node it fits (first fit), or to the fullest one
(best fit); a node of its own when none has room. Each node bills from its first pod to its last
pod's end, at least 60 s, and the cluster never has fewer than MIN_NODES. The ratio is those
node-seconds over the bound's, which is the dollar ratio without the Lambda's runs (both price a
node-second alike). It is a yardstick rather than a proof: a packer that knew the lengths could
group pods that end together, and one that moved pods could do better where moving is free.
"""

from __future__ import annotations

import argparse
import heapq
import itertools
import math
from collections.abc import Callable
from pathlib import Path

from autoscaler.config import Settings
from autoscaler.pricing import MIN_BILLED_S
from heldout import build
from node_fleet.sim.engine import STEP_S
from node_fleet.sim.record import Sample
from node_fleet.sim.report import lower_bound_nodes
from node_fleet.sim.runner import settings_for
from node_fleet.sim.scenarios import SCENARIOS
from node_fleet.sim.workload import Workload
from replay import TRACE_FILES

Room = list[float]  # cpu_m, mem_mib, pods taken on one node
Capacity = tuple[int, int, int]  # a node's cpu_m, mem_mib, pods
Fit = Callable[[list[Room], Capacity], int]
"""Which of the nodes a pod fits on (their rooms, oldest node first) it goes to: an index."""

FITS: dict[str, Fit] = {
    "first fit": lambda fits, cap: 0,
    "best fit": lambda fits, cap: max(range(len(fits)), key=lambda k: fits[k][0] / cap[0] + fits[k][1] / cap[1]),
}


def node_lives(workload: Workload, cap: Capacity, fit: Fit) -> list[tuple[float, float]]:
    """(from, to) of every node the packer uses: pods in order of creation, never moved."""
    nodes: dict[int, Room] = {}
    born: dict[int, float] = {}
    ends: list[tuple[float, int, int]] = []  # (end, pod index, node)
    lives = []
    new_ids = itertools.count()
    horizon = workload.horizon_s

    def leave_until(t: float) -> None:
        while ends and ends[0][0] <= t:
            end, i, n = heapq.heappop(ends)
            pod, room = workload.pods[i], nodes[n]
            room[0] -= pod.cpu_m
            room[1] -= pod.mem_mib
            room[2] -= 1
            if room[2] == 0:
                lives.append((born.pop(n), end))
                del nodes[n]

    for i, pod in sorted(enumerate(workload.pods), key=lambda e: e[1].start_s):
        end = horizon if pod.end_s is None else min(pod.end_s, horizon)
        if end <= pod.start_s:
            continue
        leave_until(pod.start_s)
        fits = [
            n
            for n, room in nodes.items()
            if room[0] + pod.cpu_m <= cap[0] and room[1] + pod.mem_mib <= cap[1] and room[2] < cap[2]
        ]
        if fits:
            n = fits[fit([nodes[n] for n in fits], cap)]
        else:
            n = next(new_ids)
            nodes[n], born[n] = [0.0, 0.0, 0.0], pod.start_s
        room = nodes[n]
        room[0] += pod.cpu_m
        room[1] += pod.mem_mib
        room[2] += 1
        heapq.heappush(ends, (end, i, n))
    leave_until(math.inf)
    return lives


def ratio(workload: Workload, settings: Settings, fit: Fit) -> float:
    """The packer's node-seconds over the lower bound's, both on the simulator's 10 s steps."""
    steps = int(workload.horizon_s // STEP_S)
    alive, cpu, mem = [0] * (steps + 1), [0] * (steps + 1), [0] * (steps + 1)

    def add(counts: list[int], start: float, end: float, value: int) -> None:
        first, last = math.ceil(start / STEP_S), min(steps, math.ceil(end / STEP_S))
        if first < last:
            counts[first] += value
            counts[last] -= value

    cap = (settings.node_cpu_m, settings.node_mem_mib, settings.node_max_pods)
    for start, end in node_lives(workload, cap, fit):
        add(alive, start, max(end, start + MIN_BILLED_S), 1)
    for pod in workload.pods:
        end = workload.horizon_s if pod.end_s is None else pod.end_s
        add(cpu, pod.start_s, end, pod.cpu_m)
        add(mem, pod.start_s, end, pod.mem_mib)
    used = bound = 0
    nodes = d_cpu = d_mem = 0
    for k in range(steps):
        nodes, d_cpu, d_mem = nodes + alive[k], d_cpu + cpu[k], d_mem + mem[k]
        used += max(settings.min_nodes, nodes)
        sample = Sample(
            k * STEP_S,
            ready_nodes=0,
            instances=0,
            demand_cpu_m=d_cpu,
            demand_mem_mib=d_mem,
            pending_pods=0,
            used_cpu_m=0.0,
        )
        bound += lower_bound_nodes(sample, settings.node_cpu_m, settings.node_mem_mib, settings.min_nodes)
    return used / bound


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--traces", type=Path, default=Path(__file__).resolve().parents[1] / ".." / "shared" / "traces")
    parser.add_argument("--seeds", type=int, default=8, help="batch at seeds 1..N (default 8)")
    args = parser.parse_args()
    items = [(name, name, {}) for name in SCENARIOS]
    items += [(f"batch seed {s}", "batch", {"seed": s}) for s in range(2, args.seeds + 1)]
    items += [(name, name, {}) for name in TRACE_FILES if (args.traces / TRACE_FILES[name]).exists()]
    print(f"{'workload':<14} " + " ".join(f"{name:>9}" for name in FITS))
    for label, kind, opts in items:
        workload = build(kind, opts, args.traces)
        settings = settings_for(workload, Settings(), None)
        print(f"{label:<14} " + " ".join(f"{ratio(workload, settings, fit):>9.3f}" for fit in FITS.values()))


if __name__ == "__main__":
    main()
