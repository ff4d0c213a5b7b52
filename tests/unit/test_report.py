"""Scoring a replay: hand-built records with hand-computed answers."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest

from autoscaler.pricing import DEFAULT_PRICES
from node_fleet.sim.plot import plot_runs
from node_fleet.sim.record import InstanceLife, PodLife, RunRecord, Sample, ScaleEvent
from node_fleet.sim.report import PolicyScore, format_table, score, to_json, waits_by_cause


def record(
    *,
    policy: str = "p",
    horizon_s: float = 3600.0,
    step_s: float = 60.0,
    node_cpu_m: int = 4000,
    node_mem_mib: int = 16000,
    min_nodes: int = 1,
    samples: list[Sample] | None = None,
    instances: list[InstanceLife] | None = None,
    pods: list[PodLife] | None = None,
    actions: list[ScaleEvent] | None = None,
) -> RunRecord:
    return RunRecord(
        policy=policy,
        workload="w",
        horizon_s=horizon_s,
        step_s=step_s,
        tick_s=10.0,
        node_cpu_m=node_cpu_m,
        node_mem_mib=node_mem_mib,
        min_nodes=min_nodes,
        samples=samples or [],
        instances=instances or [],
        pods=pods or [],
        actions=actions or [],
    )


def smp(
    t: float = 0.0,
    *,
    ready: int = 1,
    cpu: int = 0,
    mem: int = 0,
    pending: int = 0,
    instances: int | None = None,
) -> Sample:
    return Sample(
        t=t,
        ready_nodes=ready,
        instances=ready if instances is None else instances,
        demand_cpu_m=cpu,
        demand_mem_mib=mem,
        pending_pods=pending,
        used_cpu_m=cpu * 0.6,
    )


def inst(
    launched: float, running: float, terminated: float | None = None, lifecycle: str = "on-demand"
) -> InstanceLife:
    return InstanceLife(
        instance_id=f"i-{launched:g}",
        launched_at=launched,
        running_at=running,
        terminated_at=terminated,
        lifecycle=lifecycle,
    )


OD_PER_S = 0.0816 / 3600
"""m7g.large on-demand (the record's default type), $/s."""
SPOT_PER_S = 0.0326 / 3600
GP3_PER_S = 40 * 0.08 / (30 * 86_400)
"""Its 40 GiB gp3 root volume, $/s."""


# --- cost ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("instances", "expected_s"),
    [
        pytest.param([inst(0, 10, 30)], 60.0, id="billed-at-least-60s"),
        pytest.param([inst(0, 20, 3620)], 3600.0, id="counted-from-running-not-launch"),
        pytest.param([inst(90, 100)], 3500.0, id="open-ended-runs-to-horizon"),
        pytest.param([inst(3590, 3595)], 60.0, id="open-ended-near-horizon-still-min-60s"),
        pytest.param([inst(0, 10, 30), inst(0, 20, 3620), inst(90, 100)], 7160.0, id="sum-of-instances"),
        pytest.param([], 0.0, id="no-instances"),
    ],
)
def test_node_hours(instances: list[InstanceLife], expected_s: float) -> None:
    sc = score(record(instances=instances))
    assert sc.node_hours == pytest.approx(expected_s / 3600.0)


@pytest.mark.parametrize(
    ("samples", "min_nodes", "expected_node_steps"),
    [
        pytest.param([smp(0), smp(60), smp(120)], 2, 6, id="min-nodes-floor-when-idle"),
        pytest.param([smp(0, cpu=4000), smp(60, cpu=4001)], 1, 1 + 2, id="cpu-ceil"),
        pytest.param([smp(0, cpu=1000, mem=40_000)], 1, 3, id="memory-bound"),
        pytest.param([smp(0, cpu=9000, mem=100)], 5, 5, id="floor-above-demand"),
        pytest.param([smp(0, cpu=9000, mem=20_000)], 0, 3, id="cpu-beats-memory"),
        pytest.param([], 3, 0, id="no-samples"),
    ],
)
def test_lower_bound_node_hours(samples: list[Sample], min_nodes: int, expected_node_steps: int) -> None:
    sc = score(record(samples=samples, min_nodes=min_nodes, step_s=60.0))
    assert sc.lower_bound_node_hours == pytest.approx(expected_node_steps * 60.0 / 3600.0)


def test_peak_lower_bound_nodes() -> None:
    sc = score(record(samples=[smp(0, cpu=1000, mem=40_000), smp(60, cpu=100)], min_nodes=1))
    assert sc.peak_lower_bound_nodes == 3


@pytest.mark.parametrize(
    ("instances", "samples", "min_nodes", "expected"),
    [
        pytest.param(
            [inst(0, 0), inst(0, 0)],
            [smp(60.0 * i, ready=2, cpu=3000) for i in range(60)],
            1,
            2.0,
            id="two-nodes-for-one-node-of-demand",
        ),
        pytest.param(
            [inst(0, 0)],
            [smp(60.0 * i, cpu=3000) for i in range(60)],
            1,
            1.0,
            id="at-the-physical-limit",
        ),
        pytest.param([inst(0, 0)], [smp(0)], 0, math.inf, id="no-demand-but-billed"),
        pytest.param([], [smp(0)], 0, 1.0, id="nothing-needed-nothing-billed"),
    ],
)
def test_cost_ratios(instances: list[InstanceLife], samples: list[Sample], min_nodes: int, expected: float) -> None:
    sc = score(record(instances=instances, samples=samples, min_nodes=min_nodes))
    assert sc.cost_ratio == pytest.approx(expected)
    assert sc.node_hour_ratio == pytest.approx(expected)


@pytest.mark.parametrize(
    ("instances", "invocations", "expected"),
    [
        pytest.param([inst(0, 20, 3620)], 0, 3600 * OD_PER_S + 3620 * GP3_PER_S, id="ec2-from-running-ebs-from-launch"),
        pytest.param([inst(0, 10, 30)], 0, 60 * OD_PER_S + 60 * GP3_PER_S, id="both-bill-at-least-60s"),
        pytest.param([inst(90, 100)], 0, 3500 * OD_PER_S + 3510 * GP3_PER_S, id="open-ended-runs-to-horizon"),
        pytest.param([], 60, DEFAULT_PRICES.lambda_dollars(60), id="the-lambda-runs"),
        pytest.param(
            [inst(0, 0, lifecycle="spot")], 0, 3600 * OD_PER_S + 3600 * GP3_PER_S, id="spot-priced-at-on-demand"
        ),
    ],
)
def test_dollars(instances: list[InstanceLife], invocations: int, expected: float) -> None:
    rec = record(instances=instances)
    rec.lambda_invocations = invocations
    sc = score(rec)
    assert sc.dollars == pytest.approx(expected)
    assert sc.lambda_dollars == pytest.approx(DEFAULT_PRICES.lambda_dollars(invocations))


def stopped(launched: float, running: float, stops: list, terminated: float | None = None) -> InstanceLife:
    return dataclasses.replace(inst(launched, running, terminated), stops=stops)


@pytest.mark.parametrize(
    ("life", "runs_s"),
    [
        pytest.param(stopped(0, 10, [(1000, 2010)], 3000), [990, 990], id="stopped-then-started"),
        pytest.param(stopped(0, 10, [(1000, None)]), [990], id="still-stopped-at-the-horizon"),
        pytest.param(stopped(0, 10, [(1000, 1020), (1030, None)]), [990, 10], id="each-run-billed-60s-at-least"),
        pytest.param(stopped(0, 10, [(1000, 3700)]), [990], id="running-again-after-the-horizon"),
    ],
)
def test_a_warm_pool_worker_bills_its_runs_and_its_volume_throughout(life: InstanceLife, runs_s: list) -> None:
    sc = score(record(instances=[life]))
    billed = sum(max(60.0, r) for r in runs_s)
    end = life.terminated_at if life.terminated_at is not None else 3600.0
    assert sc.node_hours == pytest.approx(billed / 3600.0)
    assert sc.dollars == pytest.approx(billed * OD_PER_S + (end - life.launched_at) * GP3_PER_S)


def test_spot_savings_stand_apart() -> None:
    sc = score(record(instances=[inst(0, 0, lifecycle="spot"), inst(0, 0)]))
    assert sc.spot_savings == pytest.approx(3600 * (OD_PER_S - SPOT_PER_S))
    assert score(record(instances=[inst(0, 0)])).spot_savings == 0.0


def test_lower_bound_dollars_price_each_node_hour_at_on_demand_with_its_volume() -> None:
    sc = score(record(samples=[smp(60.0 * i, cpu=5000) for i in range(60)], min_nodes=1))  # 2 nodes for an hour
    assert sc.lower_bound_dollars == pytest.approx(2 * 3600 * (OD_PER_S + GP3_PER_S))


def test_infinite_cost_ratio_is_json_null() -> None:
    sc = score(record(instances=[inst(0, 0)], samples=[smp(0)], min_nodes=0))
    d = sc.to_dict()
    assert d["cost_ratio"] is None
    json.dumps(d, allow_nan=False)


# --- service ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pending", "step_s", "expected"),
    [
        pytest.param([0, 3, 5], 10.0, 80.0, id="sum-times-step"),
        pytest.param([0, 0], 60.0, 0.0, id="none-pending"),
        pytest.param([2], 60.0, 120.0, id="single-sample"),
    ],
)
def test_pending_pod_seconds(pending: list[int], step_s: float, expected: float) -> None:
    samples = [smp(i * step_s, pending=p) for i, p in enumerate(pending)]
    assert score(record(samples=samples, step_s=step_s)).pending_pod_seconds == pytest.approx(expected)


@pytest.mark.parametrize(
    ("pods", "p50", "p95", "max_"),
    [
        pytest.param(
            [PodLife("a", 0.0, 10.0), PodLife("b", 3000.0, None)],
            305.0,
            570.5,
            600.0,
            id="unbound-waits-until-horizon",
        ),
        pytest.param(
            [PodLife(f"p{i}", 100.0, 100.0 + i) for i in range(101)],
            50.0,
            95.0,
            100.0,
            id="all-bound-linear",
        ),
        pytest.param([PodLife("a", 50.0, 50.0)], 0.0, 0.0, 0.0, id="bound-at-once"),
        pytest.param([], 0.0, 0.0, 0.0, id="no-pods"),
    ],
)
def test_pending_percentiles(pods: list[PodLife], p50: float, p95: float, max_: float) -> None:
    sc = score(record(pods=pods, horizon_s=3600.0))
    assert (sc.p50_pending_s, sc.p95_pending_s, sc.max_pending_s) == pytest.approx((p50, p95, max_))


def test_waits_by_cause_count_pods_and_their_seconds() -> None:
    pods = [
        PodLife("at-once", 0.0, 0.0),
        PodLife("room", 0.0, 5.0, "room"),
        PodLife("start-1", 10.0, 40.0, "start"),
        PodLife("start-2", 10.0, 30.0, "start"),
        PodLife("launch", 0.0, 60.0, "launch"),
        PodLife("ended-waiting", 100.0, None, ended_at=150.0),
        PodLife("still-waiting", 3500.0, None),
    ]
    assert waits_by_cause(pods, 3600.0) == {
        "room": (1, 5.0),
        "start": (2, 50.0),
        "launch": (1, 60.0),
        "unserved": (2, 150.0),
    }


def test_unbound_pods_counted() -> None:
    sc = score(record(pods=[PodLife("a", 0.0, 10.0), PodLife("b", 0.0, None)]))
    assert (sc.pods, sc.unbound_pods) == (2, 1)


def test_elasticity_metrics_hand_computed() -> None:
    # node = 1000 m; four one-minute samples:
    #   d=2000 s=1000  under by 1000/2000 = 0.5
    #   d=1000 s=1000  exact
    #   d=1000 s=3000  over by 2000/1000 = 2.0
    #   d=0    s=1000  over by 1000/max(0, eps=1000) = 1.0
    samples = [
        smp(0, ready=1, cpu=2000),
        smp(60, ready=1, cpu=1000),
        smp(120, ready=3, cpu=1000),
        smp(180, ready=1, cpu=0),
    ]
    sc = score(record(samples=samples, node_cpu_m=1000, min_nodes=0, horizon_s=240.0))
    assert sc.theta_u == pytest.approx(100 / 4 * 0.5)
    assert sc.tau_u == pytest.approx(25.0)
    assert sc.theta_o == pytest.approx(100 / 4 * 3.0)
    assert sc.tau_o == pytest.approx(50.0)
    assert sc.peak_nodes == 3


# --- stability -------------------------------------------------------------------------------------


def act(t: float, kind: str, count: int = 1) -> ScaleEvent:
    return ScaleEvent(t=t, kind=kind, count=count)


@pytest.mark.parametrize(
    ("actions", "expected"),
    [
        pytest.param([act(0, "launch"), act(300, "terminate")], 1, id="terminate-after-launch"),
        pytest.param([act(0, "terminate"), act(599, "launch")], 1, id="launch-after-terminate"),
        pytest.param([act(0, "terminate"), act(600, "launch")], 1, id="exactly-10-min-counts"),
        pytest.param([act(0, "terminate"), act(601, "launch")], 0, id="beyond-10-min"),
        pytest.param([act(0, "launch"), act(700, "terminate")], 0, id="beyond-10-min-reverse"),
        pytest.param([act(0, "launch"), act(60, "launch"), act(120, "launch")], 0, id="same-direction"),
        pytest.param(
            [act(0, "launch"), act(100, "launch"), act(200, "terminate"), act(300, "launch")],
            2,
            id="each-reversal-once",
        ),
        pytest.param(
            [act(0, "launch"), act(100, "terminate"), act(200, "terminate")],
            2,
            id="two-terminations-after-one-launch",
        ),
        pytest.param([act(300, "terminate"), act(0, "launch")], 1, id="unsorted-input"),
        pytest.param([act(0, "stop"), act(300, "start")], 1, id="a-warm-start-after-a-stop"),
        pytest.param([act(0, "start"), act(300, "terminate")], 1, id="a-termination-after-a-start"),
        pytest.param([], 0, id="no-actions"),
    ],
)
def test_flaps(actions: list[ScaleEvent], expected: int) -> None:
    sc = score(record(actions=actions))
    assert sc.flaps == expected
    assert sc.scale_actions == len(actions)


def test_short_lived_share() -> None:
    instances = [
        inst(0, 10, 500),  # lived 500 s: short
        inst(0, 10, 700),  # 700 s: not short
        inst(3500, 3510),  # still alive at the horizon: censored, not short
        inst(100, 110, 699),  # 599 s: short
    ]
    assert score(record(instances=instances)).short_lived_share == pytest.approx(0.5)


# --- output ----------------------------------------------------------------------------------------


def two_runs() -> list[RunRecord]:
    samples_a = [smp(60.0 * i, ready=2, cpu=3000 + 50 * i, pending=i % 3) for i in range(60)]
    samples_b = [smp(60.0 * i, ready=1 + (i > 30), cpu=3000 + 50 * i, pending=2 * (i % 5)) for i in range(60)]
    a = record(
        policy="static",
        samples=samples_a,
        instances=[inst(0, 0), inst(0, 0)],
        pods=[PodLife("x", 0.0, 30.0)],
    )
    b = record(
        policy="cluster-autoscaler-10s",
        samples=samples_b,
        instances=[inst(0, 0), inst(1800, 1850)],
        pods=[PodLife("x", 0.0, 90.0), PodLife("y", 100.0, None)],
        actions=[act(1800, "launch")],
    )
    return [a, b]


def test_format_table_has_every_policy_and_column() -> None:
    scores = [score(r) for r in two_runs()]
    text = format_table(scores, "Replay of w")
    lines = text.splitlines()
    assert lines[0] == "Replay of w"
    for header in ("policy", "dollars", "bound $", "cost ratio", "node-h", "pending pod-s", "p95 pending s", "actions"):
        assert header in lines[2]
    assert lines[2].rstrip().endswith("flaps")
    rows = lines[4:]
    assert [r.split()[0] for r in rows] == ["static", "cluster-autoscaler-10s"]
    # numbers are right-aligned under their headers
    assert len({len(line) for line in lines[2:]}) == 1


def test_format_table_gives_spot_savings_a_line_of_their_own() -> None:
    spot = score(record(policy="spotty", instances=[inst(0, 0, lifecycle="spot")], samples=[smp(0)]))
    lines = format_table([score(r) for r in two_runs()] + [spot], "t").splitlines()
    assert lines[-1] == (
        f"spot: spotty billed ${spot.dollars - spot.spot_savings:.2f}, ${spot.spot_savings:.2f} less than on-demand"
    )
    assert sum(line.startswith("spot:") for line in lines) == 1


def test_format_table_shows_infinite_ratio() -> None:
    sc = score(record(policy="idle", instances=[inst(0, 0)], samples=[smp(0)], min_nodes=0))
    assert "inf" in format_table([sc], "t")


def test_to_json_shape() -> None:
    scores = [score(r) for r in two_runs()]
    out = to_json("w", scores, {"seed": 7, "step_s": 60.0})
    assert list(out) == ["workload", "seed", "step_s", "policies"]
    assert out["workload"] == "w"
    assert set(out["policies"]) == {"static", "cluster-autoscaler-10s"}
    static = out["policies"]["static"]
    assert static["node_hours"] == pytest.approx(2.0)
    assert static["dollars"] == pytest.approx(2 * 3600 * (OD_PER_S + GP3_PER_S), abs=1e-4)
    assert isinstance(static["flaps"], int)
    json.dumps(out, allow_nan=False)


def test_score_is_frozen() -> None:
    sc = score(record())
    assert isinstance(sc, PolicyScore)
    with pytest.raises(AttributeError):
        sc.flaps = 3  # type: ignore[misc]


def test_plot_writes_png(tmp_path) -> None:
    records = two_runs()
    scores = [score(r) for r in records]
    path = tmp_path / "runs.png"
    plot_runs(records, scores, path)
    data = path.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(data) > 10_000


def test_plot_with_a_goal_adds_a_close_up_of_the_reference_with_the_goal_shaded(tmp_path) -> None:
    from matplotlib import colormaps
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from node_fleet.sim import plot

    goal = plot.Goal("ca-10s", 0.5, 1.10)
    base = score(record())
    spots = [("ca-10s", 4000, 1.14), ("node-fleet", 1500, 1.11), ("nf/lever", 1800, 1.05), ("static", 0, 2.6)]
    named = [(n, dataclasses.replace(base, policy=n, pending_pod_seconds=x, cost_ratio=y)) for n, x, y in spots]
    ca = named[0][1]
    assert goal.box(ca) == (2000, 1.10)
    assert goal.box(dataclasses.replace(ca, cost_ratio=1.05)) == (2000, 1.05), "never dearer than the reference"

    fig = Figure(figsize=(5, 5), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    shown = plot._goal_panel(ax, goal, ca, named, colormaps["tab10"].colors)
    assert [name for name, *_ in shown] == ["ca-10s", "node-fleet", "nf/lever"], "static-peak is far off: left out"
    (region,) = ax.patches
    corners = region.get_path().transformed(region.get_transform()).vertices
    x0, _ = ax.transData.inverted().transform(corners.min(axis=0))
    x1, y1 = ax.transData.inverted().transform(corners.max(axis=0))
    assert (x0, x1) == pytest.approx((0, 2000)) and y1 == pytest.approx(1.10)

    records = [dataclasses.replace(record(), policy=n) for n, _ in named]
    path = tmp_path / "goal.png"
    plot.plot_runs(records, [sc for _, sc in named], path, goal)
    assert path.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


def test_plot_labels_of_close_points_neither_overlap_nor_leave_the_panel() -> None:
    """The CA policies and node-fleet often score alike: their labels fan out, each nearest its own point."""
    from matplotlib import colormaps
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from node_fleet.sim import plot

    base = score(record())
    spots = [
        ("node-fleet", 4900, 1.14),
        ("ca-10s", 4200, 1.14),
        ("ca-60s", 4900, 1.14),
        ("reactive-ideal", 4890, 1.0),
        ("static-peak", 0, 2.63),
        ("target-tracking", 25000, 1.31),
    ]
    points = [(n, dataclasses.replace(base, policy=n, pending_pod_seconds=x, cost_ratio=y)) for n, x, y in spots]
    fig = Figure(figsize=(5, 10), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    plot._label_points(ax, plot._cost_panel(ax, points, colormaps["tab10"].colors))

    renderer = fig.canvas.get_renderer()
    assert sorted(t.get_text() for t in ax.texts) == sorted(n for n, _, _ in spots)
    boxes = {t.get_text(): t.get_window_extent(renderer) for t in ax.texts}
    panel = ax.get_window_extent(renderer)
    for name, box in boxes.items():
        assert panel.contains(box.x0, box.y0) and panel.contains(box.x1, box.y1), name
        for other, other_box in boxes.items():
            assert other == name or not box.overlaps(other_box), (name, other)
