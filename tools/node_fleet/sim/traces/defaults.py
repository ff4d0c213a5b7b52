"""The default replay of each trace format: its window and its service model."""

from __future__ import annotations

from typing import Any

from .alibaba import ALIBABA_SCALE
from .rates import ServiceModel

_DAY_S = 86_400

TRACE_DEFAULTS: dict[str, dict[str, Any]] = {
    "pods": {},
    # Jul 12-13 1995 (seconds 950400..1123200): an ordinary weekday, then the STS-70 launch day,
    # whose morning flash crowd is the trace's peak (6.8 req/s per-minute mean; ~3 on usual days).
    "nasa": {
        "model": ServiceModel(cost_m_per_rps=5000.0),
        "start_s": 11 * _DAY_S,
        "duration_s": 2 * _DAY_S,
    },
    # 2014-04-22/23: the 14 days' peak (656 requests / 5 min on the 22nd) and an ordinary day.
    "elb": {
        "model": ServiceModel(cost_m_per_rps=15000.0),
        "start_s": 12 * _DAY_S,
        "duration_s": 2 * _DAY_S,
    },
    # The whole (one-day) trace: 68..758 invocations/s per minute, a spike at ~18:00.
    "azure": {
        "model": ServiceModel(cost_m_per_rps=40.0),
        "start_s": 0,
        "duration_s": None,
    },
    # Two days in the dense part of the trace (days 146-147 from its time 0).
    "alibaba": {
        "scale": ALIBABA_SCALE,
        "start_s": 146 * _DAY_S,
        "duration_s": 2 * _DAY_S,
    },
}
"""Per-format keyword arguments `load` uses unless overridden: a window of at most two days and,
for the request-rate traces, the service model (only the cost per request differs from the
ServiceModel defaults)."""
