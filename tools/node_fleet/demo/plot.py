"""The PNG of a demo run: workers and Ready nodes, pending pods, and GitOps holds over time.

matplotlib is imported inside `plot_demo`, so importing this module stays cheap; the figure is drawn
on the Agg canvas directly, without pyplot, so it touches no global backend state.
"""

from __future__ import annotations

from collections.abc import Sequence
from os import PathLike
from typing import Any


def spans(times: Sequence[float], flags: Sequence[bool], end: float) -> list[tuple[float, float]]:
    """The [start, stop) intervals where `flags` holds, each flag lasting until the next time."""
    out: list[tuple[float, float]] = []
    start = None
    for i, (t, flag) in enumerate(zip(times, flags, strict=True)):
        if flag and start is None:
            start = t
        if not flag and start is not None:
            out.append((start, t))
            start = None
        if i == len(times) - 1 and start is not None:
            out.append((start, end))
    return out


def plot_demo(record: Any, path: str | PathLike[str]) -> None:
    """Write the run's PNG (about 1400x900 px). `record` is a `node_fleet.demo.record.Record`."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    samples, cycles = record.samples, record.cycles
    end = max([s.t for s in samples] + [c.t for c in cycles] + [1.0])
    fig = Figure(figsize=(14, 9), dpi=100)
    FigureCanvasAgg(fig)
    ax_nodes, ax_pending = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": (3, 2)})
    fig.suptitle(f"node-fleet demo ({record.timing.name} timers, tick {record.timing.tick_s:g}s): {record.verdict}")

    times = [s.t for s in samples]
    ax_nodes.plot(times, [s.workers for s in samples], drawstyle="steps-post", color="tab:blue", label="EC2 workers")
    ax_nodes.plot(
        times, [s.ready for s in samples], drawstyle="steps-post", color="tab:green", label="Ready worker nodes"
    )
    ax_pending.fill_between(
        times, [s.pending for s in samples], step="post", color="tab:red", alpha=0.35, label="pending pods"
    )
    ax_pending.plot(times, [s.pending for s in samples], drawstyle="steps-post", color="tab:red", linewidth=1)

    gate_times = [c.t for c in cycles]
    gate_spans = spans(gate_times, [c.gate_blocked for c in cycles], end)
    for i, (a, b) in enumerate(gate_spans):
        for ax in (ax_nodes, ax_pending):
            ax.axvspan(
                a, b, color="tab:orange", alpha=0.18, label="GitOps gate held" if i == 0 and ax is ax_nodes else None
            )
    held = [c for c in cycles if "gitops_hold" in c.codes]
    if held:
        top = max([s.workers for s in samples] + [1])
        ax_nodes.scatter(
            [c.t for c in held],
            [top + 0.4] * len(held),
            marker="v",
            color="tab:orange",
            zorder=5,
            label="scale-down held by the gate",
        )
    launches = [c for c in cycles if c.launched]
    removals = [c for c in cycles if c.terminated]
    if launches:
        ax_nodes.scatter(
            [c.t for c in launches],
            [c.workers + len(c.launched) - len(c.terminated) for c in launches],
            marker="^",
            color="tab:blue",
            zorder=5,
            label="launch",
        )
    if removals:
        ax_nodes.scatter(
            [c.t for c in removals],
            [c.workers + len(c.launched) - len(c.terminated) for c in removals],
            marker="x",
            color="black",
            zorder=5,
            label="terminate",
        )
    for t, label in record.marks:
        for ax in (ax_nodes, ax_pending):
            ax.axvline(t, color="0.5", linestyle=":", linewidth=1)
        ax_nodes.annotate(
            label, (t, 0), xytext=(2, 4), textcoords="offset points", rotation=90, fontsize=7, color="0.3", va="bottom"
        )

    ax_nodes.set_ylabel("workers")
    ax_nodes.set_ylim(bottom=0)
    ax_nodes.grid(alpha=0.3)
    ax_nodes.legend(loc="upper right", fontsize=8)
    ax_pending.set_ylabel("pending pods")
    ax_pending.set_xlabel("seconds since the first tick")
    ax_pending.set_ylim(bottom=0)
    ax_pending.grid(alpha=0.3)
    ax_pending.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
