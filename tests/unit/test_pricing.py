"""The price book: hand-computed charges from the defaults (us-east-1, m7g.large, 40 GiB gp3, arm64)."""

from __future__ import annotations

import pytest

from autoscaler.model import Instance, InstanceState
from autoscaler.pricing import DEFAULT_INSTANCE_TYPE, DEFAULT_PRICES, HOUR_S, InstancePrice, Prices, hourly_cost

OD = 0.0816
"""m7g.large on-demand, $/h."""
GP3_40_GIB_PER_S = 40 * 0.08 / (30 * 86_400)
"""A 40 GiB gp3 root volume, $/s."""


@pytest.mark.parametrize(
    ("desc", "lifecycle", "running_s", "expected"),
    [
        ("an hour on-demand", "on-demand", 3600.0, OD),
        ("a second bills the 60 s minimum", "on-demand", 1.0, OD / 60),
        ("per second above the minimum", "on-demand", 90.0, OD * 90 / 3600),
        ("spot bills its own price", "spot", 3600.0, 0.0326),
        ("a terminated-while-pending instance still bills the minimum", "on-demand", -5.0, OD / 60),
    ],
)
def test_instance_dollars(desc, lifecycle, running_s, expected):
    assert DEFAULT_PRICES.instance_dollars(DEFAULT_INSTANCE_TYPE, lifecycle, running_s) == pytest.approx(expected), desc


@pytest.mark.parametrize(
    ("desc", "alive_s", "expected"),
    [
        ("a 30-day month is one GB-month per GiB", 30 * 86_400.0, 40 * 0.08),
        ("an hour", 3600.0, GP3_40_GIB_PER_S * 3600),
        ("the 60 s minimum", 10.0, GP3_40_GIB_PER_S * 60),
    ],
)
def test_volume_dollars(desc, alive_s, expected):
    assert DEFAULT_PRICES.volume_dollars(alive_s) == pytest.approx(expected), desc


def test_node_hourly_is_an_on_demand_worker_with_its_volume():
    assert DEFAULT_PRICES.node_hourly(DEFAULT_INSTANCE_TYPE) == pytest.approx(OD + GP3_40_GIB_PER_S * 3600)


def test_a_day_of_minute_ticks_on_lambda():
    # 1,440 runs of 1 s at 512 MB on arm64: requests 1440 x $0.2e-6, compute 1440 x 0.5 GB-s x $0.0000133334
    assert DEFAULT_PRICES.lambda_dollars(1440) == pytest.approx(1440 * (0.2e-6 + 0.5 * 0.0000133334))
    assert DEFAULT_PRICES.lambda_dollars(0) == 0.0


def test_every_default_type_has_spot_below_on_demand():
    for instance_type, price in DEFAULT_PRICES.instances.items():
        assert 0 < price.spot_hourly < price.on_demand_hourly, instance_type


def test_an_unknown_type_names_the_known_ones():
    with pytest.raises(ValueError, match=r"'c7g\.large'.*m7g\.large"):
        DEFAULT_PRICES.instance("c7g.large")


def test_prices_are_replaceable_per_region():
    eu = Prices(region="eu-west-1", instances={"m7g.large": InstancePrice(0.0896, 0.03)}, ebs_gb_month=0.088)
    assert eu.instance_dollars("m7g.large", "spot", 7200) == pytest.approx(0.06)
    assert "eu-west-1" in eu.describe("m7g.large")


def test_describe_names_what_the_dollars_come_from():
    text = DEFAULT_PRICES.describe(DEFAULT_INSTANCE_TYPE)
    for part in ("us-east-1", "m7g.large", "$0.0816/h", "40 GiB gp3", "512 MB"):
        assert part in text


# -- what the Lambda reports the fleet costs an hour -------------------------------------------


def inst(i, state=InstanceState.RUNNING, kind="m7g.large", lifecycle="on-demand"):
    return Instance(f"i-{i}", state, "eu-west-1a", kind, 0.0, lifecycle)


def test_each_part_is_priced_from_the_price_book():
    fleet = [
        inst(1),
        inst(2, lifecycle="spot"),
        inst(3, InstanceState.STOPPED),  # the warm pool: its volume only
        inst(4, InstanceState.TERMINATED),  # nothing
    ]
    cost = hourly_cost(fleet, tick_s=15)
    m7g = DEFAULT_PRICES.instance("m7g.large")
    assert cost.workers == pytest.approx(m7g.on_demand_hourly + m7g.spot_hourly)
    assert cost.volumes == pytest.approx(3 * DEFAULT_PRICES.volume_dollars(HOUR_S))
    assert cost.autoscaler == pytest.approx(DEFAULT_PRICES.lambda_dollars(240))
    assert cost.total == pytest.approx(cost.workers + cost.volumes + cost.autoscaler)
    assert cost.unpriced == ()


def test_a_type_the_book_does_not_know_is_named_and_left_out():
    cost = hourly_cost([inst(1, kind="x9.huge"), inst(2, kind="x9.huge"), inst(3)], tick_s=60)
    assert cost.unpriced == ("x9.huge",)
    assert cost.workers == pytest.approx(DEFAULT_PRICES.instance("m7g.large").on_demand_hourly)
    assert cost.volumes == pytest.approx(3 * DEFAULT_PRICES.volume_dollars(HOUR_S))
