"""The PNG of `node-fleet tune --plot`: every point of the grid, the Pareto front, the current settings and
the recommendation, dollars against pending pod-seconds.

As in `node_fleet.sim.plot`, matplotlib is imported inside the function and the figure is drawn on the
Agg canvas directly, without pyplot's global state.
"""

from __future__ import annotations

from os import PathLike

from node_fleet.tune import RULE, Tuning


def plot_front(t: Tuning, path: str | PathLike[str]) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 7), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.scatter(
        [p.pending_pod_seconds for p in t.points],
        [p.dollars for p in t.points],
        s=18,
        color="0.7",
        label=f"grid points ({len(t.points)})",
        zorder=2,
    )
    # By pending pod-seconds, drawn as steps: the staircase of what the grid attains.
    front = sorted(t.front, key=lambda p: p.pending_pod_seconds)
    ax.plot(
        [p.pending_pod_seconds for p in front],
        [p.dollars for p in front],
        drawstyle="steps-post",
        marker="o",
        color="tab:blue",
        label=f"Pareto front ({len(t.front)})",
        zorder=3,
    )
    ax.scatter(
        [t.current.pending_pod_seconds],
        [t.current.dollars],
        marker="X",
        s=140,
        color="black",
        label="current settings",
        zorder=4,
    )
    ax.scatter(
        [t.recommended.pending_pod_seconds],
        [t.recommended.dollars],
        s=260,
        facecolors="none",
        edgecolors="tab:red",
        linewidths=2,
        label="\n".join(["recommended:", *(f"{k}={v}" for k, v in t.recommended.env.items())]),
        zorder=5,
    )
    ax.set_xlabel("pending pod-seconds")
    ax.set_ylabel("dollars (on-demand workers, volumes, the Lambda's runs)")
    ax.set_title(f"node-fleet tune: {t.workload.name}, {len(t.points)} replays")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right", fontsize=9)
    fig.text(0.01, 0.01, f"recommended: {RULE}", fontsize=7, color="0.3")
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    fig.savefig(path, dpi=100)
