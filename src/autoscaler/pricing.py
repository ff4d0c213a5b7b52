"""What workers and the autoscaler's own runs cost, in US dollars: a price book, pure (no I/O).

The simulator bills its replays with it, and each cycle of the Lambda reports what the fleet costs
an hour by it (`hourly_cost`: metric FleetDollarsPerHour, and the decision log line). The
defaults are AWS's public list prices for template.yaml's defaults: the worker type is the first of
`InstanceTypes` (m7g.large, Linux, on-demand), the root volume `WorkerVolumeSizeGiB` (40 GiB gp3),
the function 512 MB on arm64. The template has no region of its own (it deploys where `sam deploy`
points), so the prices are those of us-east-1 (N. Virginia), the reference region of AWS's pricing
pages. Where each figure comes from, and when it was read:

- m7g.large on-demand, $0.0816 an hour: us-east-1 Linux, as a FinOps write-up citing AWS's rate card
  gave it on 2026-06-17 (factualminds.com, "Amazon EC2 On-Demand Pricing ... (2026)"); AWS's own
  pricing page renders its table in the browser, so no stored copy of it could be read.
- t3.large $0.0832 (go-cloud.io's 2026 EC2 pricing guide, us-east-1); m6g.large $0.077 and
  t4g.large $0.0672: AWS's long-standing us-east-1 list prices, not checked against a stored copy.
- Spot: no fixed public price exists (EC2 moves it every few minutes, per type and zone). The
  figure used is an assumption, 40 % of on-demand (a 60 % saving; AWS advertises "up to 90 %"),
  not a measured price; use `aws ec2 describe-spot-price-history` for yours.
- EBS gp3 storage, $0.08 a GB-month, us-east-1 (AWS's EBS pricing page as quoted by saisci.com's
  gp2/gp3 comparison, updated 2021-02-04; not re-checked against a 2026 copy). The baseline 3,000
  IOPS and 125 MB/s are free; a GB-month is prorated per second over a 30-day month, as AWS's EBS
  pricing example does, with a 60 s minimum.
- Lambda on arm64: $0.20 per million requests and $0.0000133334 per GB-second (the first tier),
  us-east-1 (AWS's Lambda pricing page, which renders its rates in the browser, as cloudchipr.com's
  2024 guide and others quote it).
- The billed duration of one autoscaler cycle, 1 s, is an assumption, not a price: bench/cycle.py
  measured list, parse and plan at 100 nodes in 0.3 to 0.6 s, and the AWS calls come on top.

EC2 Linux bills per second from `running`, with a 60 s minimum; the volume bills from launch.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from autoscaler.model import Instance

MIN_BILLED_S = 60.0
"""EC2 (Linux) and EBS bill per second with a one-minute minimum."""

HOUR_S = 3600.0
EBS_MONTH_S = 30 * 86_400.0
"""AWS's EBS pricing example prorates a GB-month over a 30-day month."""

SPOT = "spot"
ON_DEMAND = "on-demand"

DEFAULT_INSTANCE_TYPE = "m7g.large"
"""template.yaml's first InstanceTypes: 2 vCPU, 8 GiB, the worker shape NodeCpuM x NodeMemMib."""


@dataclass(frozen=True, slots=True)
class InstancePrice:
    on_demand_hourly: float
    spot_hourly: float

    def hourly(self, lifecycle: str) -> float:
        return self.spot_hourly if lifecycle == SPOT else self.on_demand_hourly


ASSUMED_SPOT_SHARE = 0.4
"""Spot as a share of on-demand: an assumption (see above), since spot has no fixed public price."""


def _with_assumed_spot(on_demand_hourly: float) -> InstancePrice:
    return InstancePrice(on_demand_hourly, round(on_demand_hourly * ASSUMED_SPOT_SHARE, 4))


DEFAULT_INSTANCE_PRICES: Mapping[str, InstancePrice] = MappingProxyType(
    {
        "m7g.large": _with_assumed_spot(0.0816),
        "m6g.large": _with_assumed_spot(0.077),
        "t4g.large": _with_assumed_spot(0.0672),
        "t3.large": _with_assumed_spot(0.0832),
    }
)


def billed_s(seconds: float) -> float:
    return max(MIN_BILLED_S, seconds)


@dataclass(frozen=True, slots=True)
class Prices:
    """One region's prices; every amount in US dollars."""

    region: str = "us-east-1"
    instances: Mapping[str, InstancePrice] = field(default_factory=lambda: DEFAULT_INSTANCE_PRICES)
    ebs_gb_month: float = 0.08
    root_volume_gib: int = 40
    lambda_per_request: float = 0.20 / 1e6
    lambda_per_gb_s: float = 0.0000133334
    lambda_memory_mb: int = 512
    lambda_billed_s: float = 1.0

    def instance(self, instance_type: str) -> InstancePrice:
        price = self.instances.get(instance_type)
        if price is None:
            known = ", ".join(sorted(self.instances))
            raise ValueError(f"no price for instance type {instance_type!r} in {self.region}: known are {known}")
        return price

    def describe(self, instance_type: str) -> str:
        price = self.instance(instance_type)
        return (
            f"{self.region}, {instance_type} ${price.on_demand_hourly:g}/h on-demand (${price.spot_hourly:g}/h spot), "
            f"{self.root_volume_gib} GiB gp3 at ${self.ebs_gb_month:g}/GB-month, Lambda {self.lambda_memory_mb} MB "
            f"arm64 billed {self.lambda_billed_s:g} s a run"
        )

    def instance_dollars(self, instance_type: str, lifecycle: str, running_s: float) -> float:
        """EC2's charge for an instance `running_s` seconds in `running`."""
        return self.instance(instance_type).hourly(lifecycle) * billed_s(running_s) / HOUR_S

    def volume_dollars(self, alive_s: float) -> float:
        """The root volume's charge for `alive_s` seconds from launch to termination."""
        return self.root_volume_gib * self.ebs_gb_month * billed_s(alive_s) / EBS_MONTH_S

    def node_hourly(self, instance_type: str) -> float:
        """One on-demand worker with its root volume, for an hour: the unit of the fluid lower bound."""
        return self.instance(instance_type).on_demand_hourly + self.volume_dollars(HOUR_S)

    def lambda_dollars(self, invocations: int) -> float:
        """`invocations` runs of the function, each billed `lambda_billed_s` at its memory."""
        per_run = self.lambda_per_request + self.lambda_memory_mb / 1024 * self.lambda_billed_s * self.lambda_per_gb_s
        return invocations * per_run


DEFAULT_PRICES = Prices()


@dataclass(frozen=True, slots=True)
class HourlyCost:
    """What the fleet costs an hour at the moment of a cycle, by part, in US dollars."""

    workers: float
    """Pending and running workers at their type's and market's price."""
    volumes: float
    """The root volumes of every worker not terminated (stopped ones of the warm pool too)."""
    autoscaler: float
    """The function's own runs at one a tick."""
    unpriced: tuple[str, ...] = ()
    """Instance types the price book does not know: their workers are left out of `workers`."""

    @property
    def total(self) -> float:
        return self.workers + self.volumes + self.autoscaler


def hourly_cost(instances: Iterable[Instance], tick_s: float, prices: Prices = DEFAULT_PRICES) -> HourlyCost:
    workers = volumes = 0.0
    unpriced: set[str] = set()
    for inst in instances:
        if inst.alive or inst.warm:
            volumes += prices.volume_dollars(HOUR_S)
        if inst.alive:
            if inst.instance_type in prices.instances:
                workers += prices.instances[inst.instance_type].hourly(inst.lifecycle)
            else:
                unpriced.add(inst.instance_type)
    return HourlyCost(workers, volumes, prices.lambda_dollars(round(HOUR_S / tick_s)), tuple(sorted(unpriced)))
