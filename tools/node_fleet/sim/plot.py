"""One PNG per replay: capacity against demand, pending pods, and cost against service.

matplotlib is imported inside `plot_runs`, so importing this module stays cheap; the figure is drawn on
the Agg canvas directly, without pyplot, so it touches no global backend state.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from os import PathLike
from typing import TYPE_CHECKING, Any

from node_fleet.sim.record import RunRecord
from node_fleet.sim.report import PolicyScore, score

if TYPE_CHECKING:
    from matplotlib.axes import Axes

_SYMLOG_SPREAD = 50.0
"""Switch the pending-pod-seconds axis to symlog when the values span more than this factor."""


@dataclass(frozen=True)
class Goal:
    """A target against a reference policy: pending pod-seconds at most `pending_share` of the
    reference's, dollars at most the reference's, and a cost ratio at most `cost_ratio`."""

    reference: str
    pending_share: float
    cost_ratio: float

    def box(self, ref: PolicyScore) -> tuple[float, float]:
        """(the most pending pod-seconds, the highest cost ratio) inside the goal."""
        return self.pending_share * ref.pending_pod_seconds, min(self.cost_ratio, ref.cost_ratio)


def plot_runs(
    records: list[RunRecord], scores: list[PolicyScore], path: str | PathLike[str], goal: Goal | None = None
) -> None:
    """Write one PNG (about 1400x1000 px) comparing the policies replayed on the same workload.

    Left, stacked on a shared time axis in hours: demand in worker-equivalents (d_cpu / a_cpu)
    with each policy's Ready nodes, then each policy's pending pods. Right: the dollar cost ratio
    against pending-pod-seconds, one labelled point per policy, with the physical limit y = 1.
    With a `goal` whose reference policy was replayed, the right column is split: below, the same
    plane close up around the reference (within twice its pending pod-seconds and 0.15 of its cost
    ratio), with the goal's region shaded, so the points that crowd together in the whole plane
    can be read against it. Scores are matched to records by policy
    name; a record without one is scored here.
    """
    from matplotlib import colormaps
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    by_policy = {s.policy: s for s in scores}
    pairs = [(r, by_policy.get(r.policy) or score(r)) for r in records]
    colors = colormaps["tab10"].colors
    workload = records[0].workload if records else ""

    fig = Figure(figsize=(14, 10), dpi=100)
    FigureCanvasAgg(fig)  # the Agg canvas, without pyplot's global state
    grid = fig.add_gridspec(2, 2, width_ratios=(2.2, 1))
    ax_nodes = fig.add_subplot(grid[0, 0])
    ax_pending = fig.add_subplot(grid[1, 0], sharex=ax_nodes)
    reference = next((sc for _, sc in pairs if goal is not None and sc.policy == goal.reference), None)
    ax_cost = fig.add_subplot(grid[0, 1] if reference is not None else grid[:, 1])
    ax_goal = fig.add_subplot(grid[1, 1]) if reference is not None else None

    if records:
        first = records[0]
        hours = [smp.t / 3600.0 for smp in first.samples]
        demand = [smp.demand_cpu_m / first.node_cpu_m for smp in first.samples]
        ax_nodes.fill_between(hours, demand, step="post", color="0.85", label="demand: CPU requests / node CPU")
        ax_nodes.plot(hours, demand, drawstyle="steps-post", color="0.3", linewidth=1.0)

    for i, (rec, _) in enumerate(pairs):
        color = colors[i % len(colors)]
        hours = [smp.t / 3600.0 for smp in rec.samples]
        ax_nodes.plot(
            hours,
            [smp.ready_nodes for smp in rec.samples],
            drawstyle="steps-post",
            color=color,
            linewidth=1.3,
            label=rec.policy,
        )
        ax_pending.plot(
            hours,
            [smp.pending_pods for smp in rec.samples],
            drawstyle="steps-post",
            color=color,
            linewidth=1.1,
            label=rec.policy,
        )

    ax_nodes.set_title("Ready nodes against demand")
    ax_nodes.set_ylabel("nodes (worker-equivalents)")
    ax_nodes.set_ylim(0, _headroom(ax_nodes.get_ylim()[1]))
    ax_nodes.grid(alpha=0.3)
    ax_nodes.legend(loc="upper left", fontsize=9, ncol=3, framealpha=0.9)
    ax_nodes.tick_params(labelbottom=False)

    ax_pending.set_title("Pending pods (colours as above)")
    ax_pending.set_xlabel("time (hours)")
    ax_pending.set_ylabel("pods waiting for capacity")
    ax_pending.set_ylim(bottom=0)
    ax_pending.grid(alpha=0.3)

    named = [(rec.policy, sc) for rec, sc in pairs]
    points = _cost_panel(ax_cost, named, colors)
    close = _goal_panel(ax_goal, goal, reference, named, colors) if ax_goal is not None else []

    fig.suptitle(f"Replay of {workload}" if workload else "Replay", fontsize=14)
    fig.tight_layout()
    _label_points(ax_cost, points)  # after the layout: labels are placed where they will be drawn
    if ax_goal is not None:
        _label_points(ax_goal, close)
    fig.savefig(path, dpi=100)


def _goal_panel(
    ax: Axes, goal: Goal, reference: PolicyScore, named: list[tuple[str, PolicyScore]], colors: Sequence[Any]
) -> list[tuple[str, float, float, Any]]:
    """The policies within twice the reference's pending pod-seconds and within 0.15 of its cost
    ratio, on linear axes, with the goal's region shaded. Returns the points to label."""
    from matplotlib.ticker import MaxNLocator

    max_pending, max_ratio = goal.box(reference)
    points = []
    for i, (name, sc) in enumerate(named):
        x, y = sc.pending_pod_seconds, sc.cost_ratio
        if math.isfinite(y) and x <= 2.0 * reference.pending_pod_seconds and y <= reference.cost_ratio + 0.15:
            points.append((name, x, y, colors[i % len(colors)]))
    x_top = 1.15 * max([max_pending, *(x for _, x, _, _ in points)]) or 1.0
    ys = [y for _, _, y, _ in points]
    y_low = min([1.0, max_ratio, *ys]) - 0.01
    y_top = max([max_ratio, *ys]) + 0.02
    ax.axvspan(0, max_pending, ymax=(max_ratio - y_low) / (y_top - y_low), color="tab:green", alpha=0.12)
    ax.axhline(1.0, color="black", linestyle="--", linewidth=1.0)
    for _, x, y, color in points:
        ax.scatter([x], [y], s=50, color=color, edgecolor="black", linewidth=0.6, zorder=3)
    ax.set_xlim(-0.03 * x_top, x_top)
    ax.set_ylim(y_low, y_top)
    ax.xaxis.set_major_locator(MaxNLocator(nbins=5))  # five-digit ticks would run into each other
    ax.set_xlabel("pending pod-seconds")
    ax.set_ylabel("cost ratio")
    ax.set_title(
        f"Close up around {goal.reference}. Shaded: pending <= {goal.pending_share:g} x its,\n"
        f"dollars <= its, cost ratio <= {goal.cost_ratio:g}",
        fontsize=10,
    )
    ax.grid(alpha=0.3)
    return points


def _headroom(top: float) -> float:
    """Room above the data for a legend in the upper-left corner."""
    return max(top, 1.0) * 1.3


def _cost_panel(
    ax: Axes, points: list[tuple[str, PolicyScore]], colors: Sequence[Any]
) -> list[tuple[str, float, float, Any]]:
    """Dollars over the lower bound against pending-pod-seconds, one point per policy, and the limit
    y = 1. Returns the points to label (name, x, y, colour): a point drawn on top of another is
    smaller, so both colours show."""
    finite = [(i, name, sc) for i, (name, sc) in enumerate(points) if math.isfinite(sc.cost_ratio)]
    xs = [sc.pending_pod_seconds for _, _, sc in finite]
    ys = [sc.cost_ratio for _, _, sc in finite]

    ax.axhline(1.0, color="black", linestyle="--", linewidth=1.0, label="physical limit (dollars = lower bound)")
    positive = [x for x in xs if x > 0]
    x_max = max(xs, default=0.0)
    if positive and max(positive) > _SYMLOG_SPREAD * min(positive):
        linthresh = max(min(positive), 1.0)
        ax.set_xscale("symlog", linthresh=linthresh)
        ax.set_xlim(-0.3 * linthresh, x_max * 2.0)
        ax.set_xlabel("pending pod-seconds (symlog scale)")
    else:
        span = x_max if x_max > 0 else 1.0
        ax.set_xlim(-0.05 * span, x_max + 0.08 * span)
        ax.set_xlabel("pending pod-seconds")
    top = max([1.0, *ys])
    ax.set_ylim(min([0.95, *ys]), top + 0.12 * max(top - 1.0, 0.5))

    drawn: list[tuple[float, float]] = []
    for (i, _, _), x, y in zip(finite, xs, ys, strict=True):
        here = ax.transData.transform((x, y))
        covers = any(math.dist(here, other) < 4 for other in drawn)
        drawn.append(tuple(here))
        size = 28 if covers else 70
        ax.scatter([x], [y], s=size, color=colors[i % len(colors)], edgecolor="black", linewidth=0.6, zorder=3)
    ax.set_ylabel("cost ratio: dollars / lower-bound dollars")
    ax.set_title("Cost against service (lower-left dominates)")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right", fontsize=9)
    return [(name, x, y, colors[i % len(colors)]) for (i, name, _), x, y in zip(finite, xs, ys, strict=True)]


# Offsets (points) tried for a label, nearest first; one further out gets a leader line to its point.
_LABEL_OFFSETS = [(dx * r, dy * r) for r in (1, 2.5, 4, 5.5) for dx, dy in ((7, 7), (7, -7), (-7, 7), (-7, -7))]
_MARKER_RADIUS_PX = 7


def _label_points(ax: Axes, points: list[tuple[str, float, float, Any]]) -> None:
    """Name each point, in its colour, where the label overlaps no other label and no point, stays in the
    panel and is nearer its own point than any other: close points (the CA policies often land together)
    get their labels fanned out instead of piled up or read as a neighbour's."""
    renderer = ax.figure.canvas.get_renderer()
    inside = ax.get_window_extent(renderer)
    centres = [ax.transData.transform((x, y)) for _, x, y, _ in points]
    taken = []
    for (name, x, y, color), own in zip(points, centres, strict=True):
        for dx, dy in _LABEL_OFFSETS:
            far = max(abs(dx), abs(dy)) > 10
            label = ax.annotate(
                name,
                (x, y),
                xytext=(dx, dy),
                textcoords="offset points",
                ha="left" if dx > 0 else "right",
                va="bottom" if dy > 0 else "top",
                fontsize=9,
                color=color,
                arrowprops={"arrowstyle": "-", "color": "0.45", "linewidth": 0.6, "shrinkB": 5} if far else None,
            )
            box = label.get_window_extent(renderer)
            clear = inside.contains(box.x0, box.y0) and inside.contains(box.x1, box.y1)
            clear = clear and not any(box.overlaps(other) for other in taken)
            clear = clear and not any(
                box.x0 - _MARKER_RADIUS_PX < cx < box.x1 + _MARKER_RADIUS_PX
                and box.y0 - _MARKER_RADIUS_PX < cy < box.y1 + _MARKER_RADIUS_PX
                for cx, cy in centres
            )
            middle = ((box.x0 + box.x1) / 2, (box.y0 + box.y1) / 2)
            clear = clear and all(math.dist(middle, own) <= math.dist(middle, other) for other in centres)
            if clear or (dx, dy) == _LABEL_OFFSETS[-1]:
                taken.append(box)
                break
            label.remove()
