"""Turn workload traces into `Workload`s for the replay simulator.

Two kinds of input:

- pod-level files, where each row already is a pod: the project's own pod CSV (`load_pods_csv`,
  written by `write_pods_csv`) and the Alibaba 2023 GPU-cluster pod list (`from_alibaba`);
- request-rate series (NASA-HTTP 1995, the NAB AWS ELB request count, Azure Functions 2019),
  which a `ServiceModel` turns into replicas of one service, HPA-like (`rates_to_workload`).

Traces are read where they lie, by path: nothing here copies a trace, or anything derived from one,
anywhere. Every converter takes a window (`start_s`, `duration_s`, in seconds from the start of the
trace) so a replay can take, say, two days of a two-month trace; times in the resulting workload
are relative to the window start. `load(path, fmt)` applies `TRACE_DEFAULTS`, a window of at most
two days and a service model per trace, so each default replay peaks at about 15–25 workers of
2000 m CPU / 7680 MiB and never drops below about 1.5 of them.

A malformed file raises `TraceError` naming the file, the line, the field and what was expected.

One module a format (`pods_csv`, `nasa`, `elb`, `azure`, `alibaba`); `rates` holds the service
model the request-rate formats share, `reading` the checked reading they all share.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from node_fleet.sim.workload import Workload

from .alibaba import from_alibaba
from .azure import from_azure
from .defaults import TRACE_DEFAULTS
from .elb import from_elb
from .nasa import from_nasa
from .pods_csv import POD_CSV_COLUMNS, load_pods_csv, write_pods_csv
from .rates import ServiceModel, rates_to_workload
from .reading import HORIZON_MARGIN_S

__all__ = [
    "FORMATS",
    "HORIZON_MARGIN_S",
    "POD_CSV_COLUMNS",
    "TRACE_DEFAULTS",
    "ServiceModel",
    "from_alibaba",
    "from_azure",
    "from_elb",
    "from_nasa",
    "load",
    "load_pods_csv",
    "rates_to_workload",
    "write_pods_csv",
]


_LOADERS: dict[str, Callable[..., Workload]] = {
    "pods": load_pods_csv,
    "nasa": from_nasa,
    "elb": from_elb,
    "azure": from_azure,
    "alibaba": from_alibaba,
}
FORMATS = tuple(_LOADERS)


def load(path: str | Path, fmt: str, **opts: Any) -> Workload:
    """Read the trace at `path` as format `fmt` (one of FORMATS), with TRACE_DEFAULTS[fmt] under `opts`.

    E.g. `load(p, "nasa")` replays the default two days; `load(p, "nasa", start_s=0,
    duration_s=86400)` the first day with the default model; `duration_s=None` the whole trace.
    """
    loader = _LOADERS.get(fmt)
    if loader is None:
        raise ValueError(f"unknown trace format {fmt!r}: expected one of {', '.join(FORMATS)}")
    return loader(path, **{**TRACE_DEFAULTS[fmt], **opts})
