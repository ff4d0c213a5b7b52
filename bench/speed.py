"""How long one simulated day of a 50-node cluster takes to replay at 60 s ticks.

    .venv/bin/python bench/speed.py

The workload is the built-in diurnal scenario scaled up (its pods copied with new names) until
its peak needs about 50 workers; the policy is node-fleet.
"""

from __future__ import annotations

import math
import time
from dataclasses import replace

from autoscaler.config import Settings
from node_fleet.sim.engine import peak_lower_bound, replay
from node_fleet.sim.scenarios import scenario
from node_fleet.sim.workload import Workload

TARGET_PEAK = 50


def fifty_node_day() -> Workload:
    base = scenario("diurnal")
    copies = math.ceil(TARGET_PEAK / peak_lower_bound(base, Settings()))
    pods = tuple(replace(p, name=f"{p.name}-{k}") for k in range(copies) for p in base.pods)
    return Workload(f"diurnal x{copies}", pods, base.horizon_s, base.description)


def main() -> None:
    workload = fifty_node_day()
    settings = Settings(max_nodes=70)
    started = time.perf_counter()
    record = replay(workload, "node-fleet", settings, tick_s=60)
    elapsed = time.perf_counter() - started
    peak = max(s.ready_nodes for s in record.samples)
    print(
        f"{workload.name}: {len(workload.pods)} pods, {workload.horizon_s / 3600:.0f} h, peak {peak} Ready workers, "
        f"{len(record.samples)} steps: replayed in {elapsed:.2f} s"
    )


if __name__ == "__main__":
    main()
