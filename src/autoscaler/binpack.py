"""First-fit-decreasing packing on (CPU, memory): how many new nodes, and do these pods fit.

Pure functions over plain numbers so that the planner, the simulator's scheduler and the
baselines share one implementation.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

Request = tuple[int, int]
"""(cpu_m, mem_mib) of one pod."""


@dataclass(slots=True)
class Bin:
    """Free capacity of one node, consumed as pods are placed."""

    cpu_m: int
    mem_mib: int

    def take(self, cpu_m: int, mem_mib: int) -> bool:
        if cpu_m <= self.cpu_m and mem_mib <= self.mem_mib:
            self.cpu_m -= cpu_m
            self.mem_mib -= mem_mib
            return True
        return False


def decreasing(requests: Iterable[Request], node_cpu_m: int, node_mem_mib: int) -> list[Request]:
    """Largest first by dominant share of a node, the order that makes first-fit pack well."""
    return sorted(requests, key=lambda r: max(r[0] / node_cpu_m, r[1] / node_mem_mib), reverse=True)


@dataclass(frozen=True, slots=True)
class Estimate:
    new_nodes: int
    """Nodes of the worker shape to add so every placeable pod has room."""
    too_large: int
    """Pods bigger than an empty worker: no number of nodes helps them."""


def estimate_new_nodes(
    pending: Iterable[Request],
    node_cpu_m: int,
    node_mem_mib: int,
    upcoming: Sequence[Bin] = (),
) -> Estimate:
    """First-fit decreasing of `pending` onto `upcoming` (capacity already on its way), then
    onto as many new empty nodes as it takes."""
    bins = [Bin(b.cpu_m, b.mem_mib) for b in upcoming]
    first_new = len(bins)
    too_large = 0
    for cpu, mem in decreasing(pending, node_cpu_m, node_mem_mib):
        if cpu > node_cpu_m or mem > node_mem_mib:
            too_large += 1
            continue
        if not any(b.take(cpu, mem) for b in bins):
            fresh = Bin(node_cpu_m, node_mem_mib)
            fresh.take(cpu, mem)
            bins.append(fresh)
    return Estimate(new_nodes=len(bins) - first_new, too_large=too_large)


def place_all(requests: Iterable[Request], bins: Sequence[Bin], node_cpu_m: int, node_mem_mib: int) -> bool:
    """Try to place every request in `bins` (first-fit decreasing). On success the bins are
    consumed and True is returned; on failure the bins are left exactly as they were."""
    taken: list[tuple[Bin, int, int]] = []
    for cpu, mem in decreasing(requests, node_cpu_m, node_mem_mib):
        target = next((b for b in bins if b.take(cpu, mem)), None)
        if target is None:
            for b, c, m in taken:
                b.cpu_m += c
                b.mem_mib += m
            return False
        taken.append((target, cpu, mem))
    return True
