"""Replays a workload against the virtual cluster under one policy and records the run."""

from __future__ import annotations

import math
from collections.abc import Callable

from autoscaler.binpack import estimate_new_nodes
from autoscaler.config import Settings
from autoscaler.ports import Ports
from node_fleet.sim.cluster import ClusterModel, VirtualCluster
from node_fleet.sim.policies import FIXED_TICKS, LAMBDA_POLICIES, make_policy
from node_fleet.sim.ports import Clock, MemoryStateStore, SimCluster, SimFleet, SimMetrics
from node_fleet.sim.record import RunRecord
from node_fleet.sim.spot import NO_SPOT, SpotModel, deliver
from node_fleet.sim.workload import Workload

STEP_S = 10.0
"""The world advances in steps of this size (pods arrive, bind and end; samples are taken), the same
for every policy: a policy that ticked between steps and advanced the world at its ticks would bind
its pods sooner than the others for that alone."""


def replay(
    workload: Workload,
    policy: str,
    settings: Settings,
    tick_s: float = 60.0,
    model: ClusterModel | None = None,
    progress: Callable[[float], None] | None = None,
    spot: SpotModel = NO_SPOT,
) -> RunRecord:
    """Run `policy` over `workload`. `progress` is called with the share of the horizon done."""
    model = model or ClusterModel(
        node_cpu_m=settings.node_cpu_m,
        node_mem_mib=settings.node_mem_mib,
        node_max_pods=settings.node_max_pods,
        node_labels=settings.labels,
        node_taints=settings.taints,
        spot=spot,
    )
    tick_s = FIXED_TICKS.get(policy, tick_s)
    if policy in LAMBDA_POLICIES:
        tick_s = min(tick_s, settings.tick_s)  # TICK_S: each of a minute's ticks its own invocation
    record = RunRecord(
        policy=policy,
        workload=workload.name,
        horizon_s=workload.horizon_s,
        step_s=STEP_S,
        tick_s=tick_s,
        node_cpu_m=model.node_cpu_m,
        node_mem_mib=model.node_mem_mib,
        min_nodes=settings.min_nodes,
        instance_type=model.instance_type,
    )
    vc = VirtualCluster(workload, model, record)
    vc.boot(peak_lower_bound(workload, settings) if policy == "static-peak" else _warm_start(workload, settings))
    clock = Clock()
    ports = Ports(SimFleet(vc, clock), SimCluster(vc, clock), SimMetrics(vc), MemoryStateStore())
    act = make_policy(policy, settings)
    on_lambda = policy in LAMBDA_POLICIES
    steps = int(workload.horizon_s // STEP_S)
    ticks = 0
    for k in range(steps):
        now = k * STEP_S
        clock.now = now
        vc.step(now)
        for instance_id in vc.spot.new_warnings if on_lambda else ():
            deliver(ports, settings, now, instance_id)  # EC2's warning through EventBridge, at once
            record.lambda_invocations += 1
        # The ticks up to the next step, each at its own time: one between two steps sees the world
        # as the last step left it (up to a step late, never early).
        while (tick_at := ticks * tick_s) < now + STEP_S:
            clock.now = tick_at
            act(ports, tick_at)
            ticks += 1
            if on_lambda:
                record.lambda_invocations += 1
        if progress is not None and k % 500 == 0:
            progress(k / steps)
    if progress is not None:
        progress(1.0)
    return record


def _warm_start(workload: Workload, settings: Settings) -> int:
    """A running cluster already holds the pods present at t=0."""
    first = [(p.cpu_m, p.mem_mib) for p in workload.pods if p.start_s <= 0]
    need = estimate_new_nodes(first, settings.node_cpu_m, settings.node_mem_mib).new_nodes
    return max(settings.min_nodes, min(settings.max_nodes, need))


def peak_lower_bound(workload: Workload, settings: Settings) -> int:
    """The peak over the replay of N*(t) = max(min, ceil(d_cpu/a_cpu), ceil(d_mem/a_mem))."""
    events: list[tuple[float, int, int]] = []
    for p in workload.pods:
        events.append((p.start_s, p.cpu_m, p.mem_mib))
        if p.end_s is not None:
            events.append((p.end_s, -p.cpu_m, -p.mem_mib))
    events.sort(key=lambda e: (e[0], e[1]))
    cpu = mem = peak = 0
    for _, dc, dm in events:
        cpu += dc
        mem += dm
        peak = max(peak, math.ceil(cpu / settings.node_cpu_m), math.ceil(mem / settings.node_mem_mib))
    return max(settings.min_nodes, peak)
