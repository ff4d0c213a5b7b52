"""Settings: every tunable of the scaling core, with defaults and validation.

The sustained windows: CPU above `cpu_high` (or the custom metric above its threshold) for
`cpu_high_window_s` adds nodes; a node must
stay unneeded (requests below `scale_down_utilization_threshold`, CPU usage below `cpu_low` or
within what its pods request, pods movable) for `scale_down_unneeded_time_s` before it is removed.

Each field is read from the environment variable of the same name in upper case
(`min_nodes` <- `MIN_NODES`). A value out of range fails with a message naming the variable
and what it allows, and nothing is done with the rest.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from functools import cached_property

from autoscaler.config.environ import ConfigError, boolean
from autoscaler.scheduling import Taint

TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
# The API's rules for a label key (optional DNS-subdomain prefix, then a name) and a label value.
_LABEL_KEY = re.compile(
    r"([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
)
_LABEL_VALUE = re.compile(r"([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?")


@dataclass(frozen=True)
class Settings:
    cluster_name: str = "node-fleet"
    min_nodes: int = 2
    max_nodes: int = 10
    # CPU usage (Prometheus) is a secondary signal: requests drive capacity, as in Cluster Autoscaler.
    cpu_high: float = 0.70
    cpu_low: float = 0.30
    cpu_high_window_s: int = 180
    custom_metric_threshold: float = 1.0
    """Scale-up signal from the operator's own metric (queue depth, latency...), when one is queried."""
    scale_down_utilization_threshold: float = 0.65
    """Cluster Autoscaler's is 0.5. A node whose requests are under 65 % of its allocatable and
    whose pods fit on the others goes too, so part-filled nodes are packed onto fewer: on the
    held-out workloads of bench/heldout.py this took node-fleet under Cluster Autoscaler's dollars
    where 0.5 did not, for a little more waiting."""
    scale_down_unneeded_time_s: int = 600
    scale_down_delay_after_add_s: int = 600
    scale_down_delay_after_failure_s: int = 180
    max_node_provision_time_s: int = 900
    launch_late_after_s: int = 180
    """A launch with no Node this long after it is late: once a worker launched at or after it is
    Ready (the launches work, this one is stuck) it is terminated; while it is the only late one,
    it no longer counts as room on its way, so the pods waiting for it get a replacement. Twice
    the launch-to-Ready p95 the simulator models (90 s). At or above max_node_provision_time_s it
    changes nothing."""
    scale_down_unready_time_s: int = 1200
    """A worker NotReady this long is replaced, then removed (Cluster Autoscaler's default)."""
    provision_backoff_s: int = 300
    new_pod_scale_up_delay_s: int = 0
    drain_timeout_s: int = 300
    drain_force: bool = False
    max_nodes_per_scale_up: int = 20
    max_drains_in_parallel: int = 1
    max_empty_bulk_delete: int = 10
    node_cpu_m: int = 2000
    node_mem_mib: int = 7680
    node_max_pods: int = 110
    worker_labels: str = ""
    """Labels every new worker gets, `key=value,key=value` (the launch template's --node-label)."""
    worker_taints: str = ""
    """Taints every new worker gets, `key=value:Effect,key:Effect` (the launch template's --node-taint)."""
    lease_duration_s: int = 180
    """Longer than the function's timeout, so a lease never expires under a live cycle."""
    gate_settle_s: int = 120
    """Scale-down waits this long after a GitOps reconcile or rollout finished."""
    gate_max_hold_s: int = 1800
    """One continuous GitOps hold (including an unreadable gate) lasts at most this long."""
    warm_pool_size: int = 10
    """Removed on-demand workers are stopped rather than terminated, up to this many, and started
    again before any new worker is launched: a stopped worker bills only its volumes, and starts
    sooner than a new one joins (bench/README.md measures it). 0: every removed worker is
    terminated."""
    warm_pool_unneeded_time_s: int = 120
    """A worker the warm pool has room for is stopped once unneeded this long (and this long after
    the last scale-up), rather than scale_down_unneeded_time_s and scale_down_delay_after_add_s: it
    is back in about 25 s and bills only its volume while stopped, so stopping it early risks
    little. At or above those two it changes nothing."""
    warm_pool_max_age_s: int = 7 * 86_400
    """A worker is kept in the warm pool only this long after its last start (EC2's LaunchTime):
    an older one may run an older AMI or launch template than new workers would, and goes."""
    warm_pool_max_stopped_s: int = 3600
    """A worker stopped this long (by EC2's StateTransitionReason) is terminated. Stopped, it bills
    its volume; stopping it after warm_pool_unneeded_time_s rather than terminating it after
    scale_down_unneeded_time_s saved (600 - 120) s of running, and at the default prices
    (m7g.large $0.0816/h, 40 GiB gp3 $0.0044/h) its volume has billed as much after about 9,000 s:
    past that, a pool that is not used costs more than no pool. Few workers are started again
    after an hour stopped, so 3,600 s keeps most of the saving and pays for the Lambda's own runs
    (bench/README.md: with 15 s ticks it met the goal on more workloads, held-out ones included,
    than 5,400). A stop EC2 gives no time for is kept, up to warm_pool_max_age_s."""
    tick_s: int = 15
    """Seconds between cycles. Below 60, each scheduled cycle queues the minute's later ones (at
    tick_s, 2 x tick_s, ... seconds) as delayed messages on the tick queue (TICK_QUEUE_URL), each
    its own short invocation: EventBridge schedules no more often than once a minute. 15 rather than
    Cluster Autoscaler's 10: a third fewer runs to pay for, which is what keeps a small cluster under
    Cluster Autoscaler's dollars, where 10 s cut the waiting by up to 16 % (bench/README.md)."""
    ramp_window_s: int = 1800
    """A scale-up for pending pods that comes within this long of the last scale-up finds demand
    still rising, and adds room for the rise to go on: the workers added in this window (this
    cycle's included) at the same pace for RAMP_LEAD_S more (autoscaler/scale_up.py), at least one.
    Served by the warm pool first, like every launch. 0 turns it off. Half an hour, so that slow
    rises (a morning adding a worker every 15 to 20 minutes) count too (bench/README.md)."""
    spare_room_pods: int = 1
    """Within ramp_window_s of the last scale-up, while the warm pool is on, room is kept on the
    Ready nodes for this many more pods of the median size of those running on the workers: a
    stopped worker is started when there is none, and no unneeded worker goes that would leave
    none (autoscaler/spare.py). The next pods of a rise then find room rather than wait for a
    start. 0 turns it off."""
    forecast_max_prewarm: int = 0
    """Workers' worth of room the demand forecast may keep ready ahead of a predicted rise
    (autoscaler/forecast.py); 0 (the default) turns pre-scaling off. It acts only once the cluster's
    own history (Prometheus) reaches back a day. Opt-in: it buys fewer waiting pods with more
    dollars (bench/README.md measures it)."""
    forecast_lead_s: int = 300
    """How far ahead pre-scaling looks: a tick, the metrics' lag and a worker's launch to Ready
    (the simulator's p95 is 90 s; 300 measured better than 120 or 180)."""
    forecast_unneeded_time_s: int = 600
    """The scale-down wait when the forecast predicts no rise in demand within
    scale_down_unneeded_time_s that today's free room could not take; at or above
    scale_down_unneeded_time_s it changes nothing."""
    dry_run: bool = False

    def __post_init__(self) -> None:
        for f in fields(self):
            bounds = _RANGES.get(f.name)
            value = getattr(self, f.name)
            if bounds is not None and not (bounds[0] <= value <= bounds[1]):
                raise ConfigError(f"{_env(f.name)}={value!r} is out of range: allowed {bounds[0]}..{bounds[1]}")
        if not self.cluster_name or len(self.cluster_name) > 63:
            raise ConfigError("CLUSTER_NAME must be 1..63 characters")
        if self.min_nodes > self.max_nodes:
            raise ConfigError(f"MIN_NODES={self.min_nodes} must be <= MAX_NODES={self.max_nodes}")
        if self.cpu_low >= self.cpu_high:
            raise ConfigError(f"CPU_LOW={self.cpu_low} must be below CPU_HIGH={self.cpu_high}")
        _ = self.labels, self.taints  # malformed ones fail here, naming the variable

    @cached_property
    def labels(self) -> dict[str, str]:
        """WORKER_LABELS as a mapping."""
        labels: dict[str, str] = {}
        for item in _items(self.worker_labels):
            key, sep, value = item.partition("=")
            if not sep or not _LABEL_KEY.fullmatch(key) or not _LABEL_VALUE.fullmatch(value):
                raise ConfigError(f"WORKER_LABELS item {item!r} is not key=value with a valid label key and value")
            labels[key] = value
        return labels

    @cached_property
    def taints(self) -> tuple[Taint, ...]:
        """WORKER_TAINTS as taints."""
        taints = []
        for item in _items(self.worker_taints):
            head, sep, effect = item.rpartition(":")
            key, _, value = head.partition("=")
            if (
                not sep
                or effect not in TAINT_EFFECTS
                or not _LABEL_KEY.fullmatch(key)
                or not _LABEL_VALUE.fullmatch(value)
            ):
                raise ConfigError(
                    f"WORKER_TAINTS item {item!r} is not key[=value]:Effect with Effect one of {', '.join(TAINT_EFFECTS)}"
                )
            taints.append(Taint(key, value, effect))
        return tuple(taints)

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        """Build Settings from the variables present in `environ`; absent ones keep their default."""
        values: dict[str, object] = {}
        for f in fields(cls):
            raw = environ.get(_env(f.name))
            if raw is not None:
                values[f.name] = _parse(f, raw.strip())
        return cls(**values)

    def replace(self, **changes: object) -> Settings:
        return dataclasses.replace(self, **changes)


def metrics_cluster_name(environ: Mapping[str, str]) -> str:
    """The ClusterName dimension of the metrics, known before the settings are parsed (they may be
    invalid, and that error is counted under this dimension too)."""
    return environ.get("CLUSTER_NAME") or Settings.cluster_name


def _items(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def _env(name: str) -> str:
    return name.upper()


def _parse(f: dataclasses.Field, raw: str) -> object:
    kind = f.type if isinstance(f.type, str) else f.type.__name__
    try:
        if kind == "bool":
            value = boolean(raw)
            if value is None:
                raise ValueError
            return value
        if kind == "int":
            return int(raw)
        if kind == "float":
            value = float(raw)
            if not math.isfinite(value):
                raise ValueError
            return value
        return raw
    except ValueError:
        raise ConfigError(f"{_env(f.name)}={raw!r} is not a valid {kind}") from None


DAY = 86_400
_RANGES: dict[str, tuple[float, float]] = {
    "min_nodes": (0, 1000),
    "max_nodes": (1, 1000),
    "cpu_high": (0.05, 1.0),
    "cpu_low": (0.0, 0.95),
    "cpu_high_window_s": (0, 3600),
    "custom_metric_threshold": (-1e12, 1e12),
    "scale_down_utilization_threshold": (0.0, 1.0),
    "scale_down_unneeded_time_s": (0, DAY),
    "scale_down_delay_after_add_s": (0, DAY),
    "scale_down_delay_after_failure_s": (0, DAY),
    "max_node_provision_time_s": (60, 7200),
    "launch_late_after_s": (60, 7200),
    "scale_down_unready_time_s": (60, DAY),
    "provision_backoff_s": (0, 7200),
    "new_pod_scale_up_delay_s": (0, 3600),
    "drain_timeout_s": (30, 3600),
    "max_nodes_per_scale_up": (1, 1000),
    "max_drains_in_parallel": (1, 100),
    "max_empty_bulk_delete": (1, 1000),
    "node_cpu_m": (100, 1_000_000),
    "node_mem_mib": (128, 10_000_000),
    "node_max_pods": (1, 1000),
    "lease_duration_s": (30, 3600),
    "gate_settle_s": (0, 3600),
    "gate_max_hold_s": (60, DAY),
    "warm_pool_size": (0, 1000),
    "warm_pool_unneeded_time_s": (0, DAY),
    "tick_s": (10, 60),
    "warm_pool_max_age_s": (3600, 90 * DAY),
    "warm_pool_max_stopped_s": (60, 90 * DAY),
    "ramp_window_s": (0, 3600),
    "spare_room_pods": (0, 100),
    "forecast_max_prewarm": (0, 1000),
    "forecast_lead_s": (60, 3600),
    "forecast_unneeded_time_s": (0, DAY),
}
