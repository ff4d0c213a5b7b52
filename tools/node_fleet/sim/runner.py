"""Runs the compared policies on one workload and scores them: what `simulate` and the bench share."""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from autoscaler.config import Settings
from autoscaler.pricing import DEFAULT_PRICES, Prices
from node_fleet.sim.engine import peak_lower_bound, replay
from node_fleet.sim.policies import POLICY_NAMES
from node_fleet.sim.record import RunRecord
from node_fleet.sim.report import PolicyScore, score, to_json
from node_fleet.sim.spot import NO_SPOT, SpotModel
from node_fleet.sim.workload import Workload

HEADROOM = 1.25
"""With no max_nodes given, the replay allows this much above the workload's peak N*, so the
comparison is about the policies, not about the clamp."""


@dataclass(frozen=True)
class Comparison:
    workload: Workload
    settings: Settings
    tick_s: float
    records: list[RunRecord]
    scores: list[PolicyScore]
    prices: Prices = DEFAULT_PRICES

    @property
    def price_basis(self) -> str:
        """The prices the dollars come from, in one line."""
        return self.prices.describe(self.records[0].instance_type)

    def to_json(self) -> dict:
        return to_json(
            self.workload.name,
            self.scores,
            {
                "description": self.workload.description,
                "tick_s": self.tick_s,
                "prices": self.price_basis,
                "horizon_s": self.workload.horizon_s,
                "settings": asdict(self.settings),
            },
        )


def settings_for(workload: Workload, base: Settings, max_nodes: int | None) -> Settings:
    """`base` with max_nodes given, or sized to the workload's peak (see HEADROOM)."""
    if max_nodes is None:
        peak = peak_lower_bound(workload, base)
        max_nodes = max(base.max_nodes, math.ceil(peak * HEADROOM))
    return base.replace(max_nodes=max_nodes)


def compare(
    workload: Workload,
    settings: Settings,
    policies: Sequence[str] = POLICY_NAMES,
    tick_s: float = 60.0,
    progress: bool = False,
    prices: Prices = DEFAULT_PRICES,
    spot: SpotModel = NO_SPOT,
) -> Comparison:
    records = []
    for name in policies:
        bar = _ProgressBar(f"{workload.name} {name}") if progress else None
        records.append(replay(workload, name, settings, tick_s, progress=bar, spot=spot))
        if bar is not None:
            bar.done()
    return Comparison(workload, settings, tick_s, records, [score(r, prices) for r in records], prices)


class _ProgressBar:
    WIDTH = 30

    def __init__(self, label: str) -> None:
        self.label = label

    def __call__(self, share: float) -> None:
        filled = int(share * self.WIDTH)
        sys.stderr.write(f"\r{self.label:40.40} [{'#' * filled}{' ' * (self.WIDTH - filled)}] {share:4.0%}")
        sys.stderr.flush()

    def done(self) -> None:
        sys.stderr.write("\n")
