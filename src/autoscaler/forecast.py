"""The demand forecast (pure): what the pods will request a few minutes from now, from the cluster's
own history of what they requested.

Demand is the CPU and memory requested by running and pending pods (DaemonSet pods left out: each
worker brings its own). The model is seasonal naive with the level taken from now, plus the recent
trend:

- seasonal: on each of the past days (1, 2, 3 back) and weeks (1, 2 back) the history covers, how
  much demand rose between the same time of day and `h` seconds later; the median of those rises,
  added to today's level. The median keeps one odd day (a release, an outage) from steering it.
- trend: the mean of the last half of `TREND_WINDOW_S` against the mean of the half before, as a
  rate, extrapolated linearly `h` seconds ahead. It sees a ramp nobody has seen before, as long as
  it is under way; the means keep single pods coming and going from reading as a ramp.

The prediction at `now + h` is today's level plus the larger of the two rises: a ramp in either
is a reason to have capacity ready. The trend alone is never enough: on noisy demand it reads
ramps that are not there (measured: +7 to +16 % dollars on the traces). So there is no forecast
until the history reaches back at least one day (a new cluster, a Prometheus with short retention),
and node-fleet scales reactively until then.
"""

from __future__ import annotations

import bisect
import statistics
from dataclasses import dataclass

DAY_S = 86_400.0
WEEK_S = 7 * DAY_S
SEASON_LAGS_S = (DAY_S, 2 * DAY_S, 3 * DAY_S, WEEK_S, 2 * WEEK_S)
"""How far back the seasonal part looks: the same time of day on the three days before, and the
same time of week on the two weeks before."""
TREND_WINDOW_S = 600.0
"""The recent trend is the rise over this window."""
STEP_S = 60.0
"""Resolution of the history read and of the prediction."""


@dataclass(frozen=True, slots=True)
class DemandHistory:
    """Demand samples `(t, cpu_m, mem_mib)`, sorted by time; only windows around `now` and around
    each seasonal lag are present, and never a sample after the moment it was read."""

    samples: tuple[tuple[float, float, float], ...] = ()
    step_s: float = STEP_S
    """A sample stands for its time up to one step later; a gap longer than that is missing data."""

    def at(self, t: float) -> tuple[float, float] | None:
        """(cpu_m, mem_mib) at `t`: the newest sample at or before `t`, if no older than one step."""
        i = bisect.bisect_right(self.samples, t, key=lambda s: s[0])
        if i == 0:
            return None
        ts, cpu, mem = self.samples[i - 1]
        return (cpu, mem) if t - ts <= self.step_s else None


@dataclass(frozen=True, slots=True)
class HistoryRead:
    """What the adapter reads for a forecast `horizon_s` ahead: around now and around each lag, from
    `before_s` before to `after_s` after, at `step_s`."""

    lags_s: tuple[float, ...]
    before_s: float
    after_s: float
    step_s: float = STEP_S


def history_read(horizon_s: float) -> HistoryRead:
    return HistoryRead((0.0, *SEASON_LAGS_S), TREND_WINDOW_S + STEP_S, horizon_s + STEP_S)


@dataclass(frozen=True, slots=True)
class Forecast:
    """The largest predicted rise of demand within the horizon, over demand now, per resource."""

    rise_cpu_m: float
    rise_mem_mib: float
    basis: str
    """What it rests on, for the reasons: "3 seasons + trend", "trend", ..."""

    @property
    def rising(self) -> bool:
        return self.rise_cpu_m > 0 or self.rise_mem_mib > 0


def forecast(history: DemandHistory, now: float, horizon_s: float) -> Forecast | None:
    """The largest rise predicted within `(now, now + horizon_s]`; None without enough history."""
    level = history.at(now)
    if level is None:
        return None
    seasons = [lag for lag in SEASON_LAGS_S if history.at(now - lag) is not None]
    if not seasons:
        return None
    slope = _trend(history, now)
    rise = [0.0, 0.0]
    h = STEP_S
    while h <= horizon_s + 1e-9:
        for dim in (0, 1):
            rises = []
            seasonal = _seasonal_rise(history, now, h, seasons, dim)
            if seasonal is not None:
                rises.append(seasonal)
            if slope is not None:
                rises.append(slope[dim] * h)
            if rises:
                rise[dim] = max(rise[dim], *rises)
        h += STEP_S
    basis = f"{len(seasons)} past {'day' if len(seasons) == 1 else 'days and weeks'}"
    return Forecast(rise[0], rise[1], basis + (" + trend" if slope is not None else ""))


def _trend(history: DemandHistory, now: float) -> tuple[float, float] | None:
    """Demand's rate of change per second over the trend window; None unless all of it is known."""
    half = TREND_WINDOW_S / 2
    points = int(half // STEP_S)
    recent = [history.at(now - k * STEP_S) for k in range(points)]
    before = [history.at(now - half - k * STEP_S) for k in range(points)]
    if any(v is None for v in recent + before):
        return None
    return tuple(  # type: ignore[return-value]
        (sum(v[dim] for v in recent) - sum(v[dim] for v in before)) / points / half for dim in (0, 1)
    )


def _seasonal_rise(history: DemandHistory, now: float, h: float, lags: list[float], dim: int) -> float | None:
    rises = []
    for lag in lags:
        then, later = history.at(now - lag), history.at(now - lag + h)
        if then is not None and later is not None:
            rises.append(later[dim] - then[dim])
    return statistics.median(rises) if rises else None
