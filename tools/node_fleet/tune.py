"""`node-fleet tune`: replay a cluster's history under a grid of settings and recommend some.

Each point of the grid is node-fleet (the Lambda's code path, `service.run_cycle`) replayed over the same
workload with those settings, scored in dollars and pending pod-seconds as `simulate` scores it. The
points no other beats on both are the Pareto front; the settings in force (the environment's, the
defaults where unset) are always one of the points, so the front is read against them.
"""

from __future__ import annotations

import itertools
import os
import sys
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, fields
from typing import Any

from autoscaler.config import ConfigError, Settings
from node_fleet.sim.engine import replay
from node_fleet.sim.report import score
from node_fleet.sim.workload import Workload

POLICY = "node-fleet"


@dataclass(frozen=True)
class Lever:
    """One setting the grid varies: its environment variable and the values tried, spelled as in the
    environment (the real Settings loader parses and range-checks them)."""

    env: str
    values: tuple[str, ...]
    quick: tuple[str, ...]
    """The values `--quick` tries."""


GRID: tuple[Lever, ...] = (
    Lever("SCALE_DOWN_UNNEEDED_TIME_S", ("300", "600", "900"), ("300", "600")),
    Lever("SCALE_DOWN_UTILIZATION_THRESHOLD", ("0.5", "0.65", "0.8"), ("0.5", "0.65")),
    Lever("WARM_POOL_SIZE", ("0", "4", "10"), ("0", "10")),
    Lever("WARM_POOL_UNNEEDED_TIME_S", ("120", "600"), ("120",)),
    Lever("TICK_S", ("15", "60"), ("15", "60")),
    Lever("RAMP_WINDOW_S", ("0", "300", "1800"), ("1800",)),
    # The forecast acts only on a history that reaches back a day (`--days` of at least 2).
    Lever("FORECAST_MAX_PREWARM", ("0", "2"), ("0",)),
)
"""The grid: every combination of these values is replayed (648 points; `--quick` 16). A new setting
is one row. TICK_S has two values: replay time grows with the ticks (a 15 s tick replayed 2.3 to 3
times slower than 60 s on the sample traces)."""

RULE = (
    "the cheapest point of the front whose pending pod-seconds do not exceed the current settings' "
    "(on a tie, the one that changes the fewest settings)"
)
# Why this rule: it never trades service for money against what the cluster runs now. Some front point
# is at least as good as the current settings on both axes (the current settings are one of the points),
# so the recommendation is never worse than them on either axis, on this history; where nothing beats
# them it is "change nothing". A knee would pick more waiting for fewer dollars by a geometric argument
# an operator cannot check against their own service objectives; this one they can read in one line.


@dataclass(frozen=True)
class Point:
    env: Mapping[str, str]
    """The grid's variables as replayed, in GRID order."""
    parsed: tuple[object, ...]
    """The same values as the Settings loader parsed them (0.50 and 0.5 are one value)."""
    dollars: float
    pending_pod_seconds: float
    p95_pending_s: float
    scale_actions: int
    flaps: int

    def outcome(self) -> tuple[float, float]:
        return (round(self.dollars, 6), round(self.pending_pod_seconds, 3))

    def to_dict(self) -> dict[str, Any]:
        return {
            "settings": dict(self.env),
            "dollars": round(self.dollars, 4),
            "pending_pod_seconds": round(self.pending_pod_seconds, 1),
            "p95_pending_s": round(self.p95_pending_s, 2),
            "scale_actions": self.scale_actions,
            "flaps": self.flaps,
        }


@dataclass(frozen=True)
class Tuning:
    workload: Workload
    grid: Mapping[str, tuple[str, ...]]
    points: list[Point]
    current: Point
    front: list[Point]
    recommended: Point
    max_nodes: int
    processes: int
    seconds: float
    prices: str


def parse_grid_option(text: str) -> tuple[str, tuple[str, ...]]:
    """`KEY=v1,v2,...` (a `--grid` option) as (KEY, values); KEY must be a Settings variable."""
    key, sep, raw = text.partition("=")
    key = key.strip().upper()
    values = tuple(v.strip() for v in raw.split(",") if v.strip())
    if not sep or not values:
        raise ValueError(f"--grid {text!r}: expected KEY=value,value,... e.g. WARM_POOL_SIZE=0,2,4")
    known = {f.name.upper() for f in fields(Settings)}
    if key not in known:
        raise ValueError(f"--grid {text!r}: {key} is not a setting (see src/autoscaler/config/settings.py)")
    if key == "MAX_NODES":
        raise ValueError("--grid MAX_NODES: the replay's cap is --max-nodes, not a setting to tune")
    return key, values


def grid_values(quick: bool, overrides: Sequence[tuple[str, tuple[str, ...]]]) -> dict[str, tuple[str, ...]]:
    """The grid's values by variable: GRID's (or their quick ones), each `--grid` option replacing a
    row's values or adding a row."""
    grid = {lever.env: lever.quick if quick else lever.values for lever in GRID}
    grid.update(overrides)
    return grid


def spell(value: object) -> str:
    """A setting's value as the environment spells it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)  # reads back exactly
    return str(value)


def settings_of(assignment: Mapping[str, str], environ: Mapping[str, str], max_nodes: int) -> Settings:
    """The Settings a point replays: the environment, the point's variables over it, the replay's cap."""
    return Settings.from_env({**environ, **assignment, "MAX_NODES": str(max_nodes)})


def assignments(
    grid: Mapping[str, tuple[str, ...]], environ: Mapping[str, str], max_nodes: int
) -> list[dict[str, str]]:
    """Every combination of the grid, the current settings' first, each checked by the Settings loader
    (so a bad value fails before any replay); values that parse to the same settings count once."""
    base = Settings.from_env(environ)
    current = {env: spell(getattr(base, env.lower())) for env in grid}
    found: dict[tuple[object, ...], dict[str, str]] = {}
    for values in [tuple(current.values()), *itertools.product(*grid.values())]:
        assignment = dict(zip(grid, values, strict=True))
        try:
            settings = settings_of(assignment, environ, max_nodes)
        except ConfigError as exc:
            raise ConfigError(f"--grid: {exc}") from None
        found.setdefault(tuple(getattr(settings, env.lower()) for env in grid), assignment)
    return list(found.values())


# Each worker process gets the workload once (not once per point): a trace's pods are most of a task.
_worker: dict[str, Any] = {}


def _init_worker(workload: Workload, environ: Mapping[str, str], max_nodes: int) -> None:
    _worker.update(workload=workload, environ=environ, max_nodes=max_nodes)


def _replay_point(assignment: dict[str, str]) -> Point:
    settings = settings_of(assignment, _worker["environ"], _worker["max_nodes"])
    # tick_s 60: node-fleet then ticks at the point's TICK_S (the engine takes the smaller).
    s = score(replay(_worker["workload"], POLICY, settings, tick_s=60.0))
    parsed = tuple(getattr(settings, env.lower()) for env in assignment)
    return Point(assignment, parsed, s.dollars, s.pending_pod_seconds, s.p95_pending_s, s.scale_actions, s.flaps)


def replay_points(
    workload: Workload, environ: Mapping[str, str], max_nodes: int, todo: list[dict[str, str]], processes: int
) -> list[Point]:
    """Replay every assignment, in `processes` worker processes (1: in this one)."""
    if processes <= 1:
        _init_worker(workload, environ, max_nodes)
        return [_replay_point(a) for a in todo]
    with ProcessPoolExecutor(processes, initializer=_init_worker, initargs=(workload, dict(environ), max_nodes)) as ex:
        return list(ex.map(_replay_point, todo))


def dominates(a: Point, b: Point) -> bool:
    return (
        a.dollars <= b.dollars
        and a.pending_pod_seconds <= b.pending_pod_seconds
        and (a.dollars < b.dollars or a.pending_pod_seconds < b.pending_pod_seconds)
    )


def changes(point: Point, current: Point) -> int:
    """How many settings `point` changes from the current ones."""
    return sum(a != b for a, b in zip(point.parsed, current.parsed, strict=True))


def pareto_front(points: list[Point], current: Point) -> list[Point]:
    """The points no other dominates, cheapest first; of several with the same outcome, the one that
    changes the fewest settings stands for them."""
    by_outcome: dict[tuple[float, float], Point] = {}
    for p in points:
        if any(dominates(q, p) for q in points):
            continue
        held = by_outcome.get(p.outcome())
        if held is None or changes(p, current) < changes(held, current):
            by_outcome[p.outcome()] = p
    return sorted(by_outcome.values(), key=lambda p: (p.dollars, p.pending_pod_seconds))


def recommend(front: list[Point], current: Point) -> Point:
    """RULE. Never empty: some front point is at least as good as `current` on both axes."""
    eligible = [p for p in front if p.pending_pod_seconds <= current.pending_pod_seconds]
    return min(eligible, key=lambda p: (p.dollars, changes(p, current)))


def tune(
    workload: Workload,
    environ: Mapping[str, str],
    grid: Mapping[str, tuple[str, ...]],
    max_nodes: int,
    processes: int,
) -> Tuning:
    from autoscaler.pricing import DEFAULT_INSTANCE_TYPE, DEFAULT_PRICES

    todo = assignments(grid, environ, max_nodes)
    if sys.stderr.isatty():
        print(f"tune: {len(todo)} replays on {processes} processes...", file=sys.stderr)
    started = time.perf_counter()
    points = replay_points(workload, environ, max_nodes, todo, processes)
    seconds = time.perf_counter() - started
    current = points[0]  # assignments() puts the current settings first
    front = pareto_front(points, current)
    return Tuning(
        workload=workload,
        grid=dict(grid),
        points=points,
        current=current,
        front=front,
        recommended=recommend(front, current),
        max_nodes=max_nodes,
        processes=processes,
        seconds=seconds,
        prices=DEFAULT_PRICES.describe(DEFAULT_INSTANCE_TYPE),
    )


def env_lines(point: Point) -> list[str]:
    return [f"{key}={value}" for key, value in point.env.items()]


def to_json(t: Tuning) -> dict[str, Any]:
    current_on_front = any(p.outcome() == t.current.outcome() for p in t.front)
    return {
        "workload": t.workload.name,
        "description": t.workload.description,
        "policy": POLICY,
        "replays": len(t.points),
        "processes": t.processes,
        "seconds": round(t.seconds, 1),
        "max_nodes": t.max_nodes,
        "prices": t.prices,
        "grid": {key: list(values) for key, values in t.grid.items()},
        "rule": RULE,
        "points": [p.to_dict() for p in t.points],
        "front": [p.to_dict() for p in t.front],
        "current": {**t.current.to_dict(), "on_front": current_on_front},
        "recommended": t.recommended.to_dict(),
        "env": dict(t.recommended.env),
    }


def format_text(t: Tuning) -> str:
    keys = list(t.grid)
    shape = " x ".join(f"{key} {len(values)}" for key, values in t.grid.items())
    out = [
        f"{t.workload.name}: {t.workload.description}",
        f"{POLICY} replayed {len(t.points)} times ({shape}; max_nodes {t.max_nodes}) on {t.processes} "
        f"process{'es' if t.processes > 1 else ''} in {t.seconds:.1f} s",
        f"prices: {t.prices}",
        "",
        f"Pareto front, dollars against pending pod-seconds (lower is better on both): {len(t.front)} of "
        f"{len(t.points)} points; * recommended, = the current settings (the environment's, the defaults "
        "where unset)",
    ]
    header = ["", "dollars", "pending pod-s", "p95 s", "flaps", *keys]
    rows = [_row(p, p is t.recommended, p.outcome() == t.current.outcome()) for p in t.front]
    on_front = any(p.outcome() == t.current.outcome() for p in t.front)
    if not on_front:
        rows.append(_row(t.current, False, True))
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for i, cells in enumerate([header, *rows]):
        if i == len(t.front) + 1 and not on_front:
            out.append("  (the current settings, off the front)")
        out.append("  ".join(c.rjust(w) for c, w in zip(cells, widths, strict=True)).rstrip())
    dominated_by = sum(dominates(p, t.current) for p in t.front)
    if dominated_by:
        out.append(f"the current settings are dominated by {dominated_by} front point(s)")
    out += ["", f"recommended ({RULE}):", _versus(t.recommended, t.current), *env_lines(t.recommended)]
    return "\n".join(out) + "\n"


def _row(p: Point, recommended: bool, current: bool) -> list[str]:
    mark = ("*" if recommended else "") + ("=" if current else "")
    return [
        mark,
        f"{p.dollars:.2f}",
        f"{p.pending_pod_seconds:.0f}",
        f"{p.p95_pending_s:.1f}",
        str(p.flaps),
        *p.env.values(),
    ]


def _versus(p: Point, current: Point) -> str:
    if p.outcome() == current.outcome():
        return "  no point of the grid beats the current settings on this history: keep them"

    def change(new: float, old: float) -> str:
        return f"{(new - old) / old:+.1%}" if old else "n/a"

    return (
        f"  ${p.dollars:.2f} ({change(p.dollars, current.dollars)} against the current settings), "
        f"{p.pending_pod_seconds:.0f} pending pod-s ({change(p.pending_pod_seconds, current.pending_pod_seconds)})"
    )


def default_processes() -> int:
    return max(1, min(2, os.cpu_count() or 1))
