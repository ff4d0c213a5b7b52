"""The demo's timers (normal and `--quick`) and the settings the functions get."""

from __future__ import annotations

from dataclasses import dataclass

MIN_NODES, MAX_NODES = 1, 8


@dataclass(frozen=True)
class Timing:
    """Seconds of one run: the schedule, the scenario's pacing and the short timers."""

    name: str
    tick_s: float
    boot_delay_s: float
    sale_at_s: float
    wave_every_s: float
    sale_for_s: float
    """The sale lasts at least this long after its first wave (and until all its pods are bound)."""
    reconcile_after_s: float
    """The reconcile starts this long into the quiet."""
    reconcile_min_s: float
    hold_cycles: int
    """The reconcile ends once this many autoscaler cycles were held by the gate."""
    reconcile_max_s: float
    unneeded_s: int
    delay_after_add_s: int
    delay_after_failure_s: int
    backoff_s: int
    settle_s: int
    deadline_s: float
    """The whole scenario, from the first tick."""

    def settings(self) -> dict[str, str]:
        """The functions' settings (environment variables, as template parameters would set them)."""
        return {
            "MIN_NODES": str(MIN_NODES),
            "MAX_NODES": str(MAX_NODES),
            # Requests drive this story; keep the sustained-CPU signal (a secondary one) out of it.
            "CPU_HIGH_WINDOW_S": "3600",
            "SCALE_DOWN_UNNEEDED_TIME_S": str(self.unneeded_s),
            "SCALE_DOWN_DELAY_AFTER_ADD_S": str(self.delay_after_add_s),
            "SCALE_DOWN_DELAY_AFTER_FAILURE_S": str(self.delay_after_failure_s),
            "MAX_NODE_PROVISION_TIME_S": "60",  # its minimum
            "PROVISION_BACKOFF_S": str(self.backoff_s),
            "DRAIN_TIMEOUT_S": "30",  # its minimum
            "GATE_SETTLE_S": str(self.settle_s),
            "LEASE_DURATION_S": "30",  # its minimum
            "MAX_EMPTY_BULK_DELETE": "1",  # one node at a time, to watch them go
            "MAX_DRAINS_IN_PARALLEL": "1",
            # The demo drives its own ticks, and its story is the terminate path with a launch
            # that never joins, one launch a wave; the warm pool's stops and starts, and the ramp's
            # extra workers, have their own stack tests.
            "TICK_S": "60",
            "WARM_POOL_SIZE": "0",
            "RAMP_WINDOW_S": "0",
        }


NORMAL = Timing(
    name="normal",
    tick_s=2.0,
    boot_delay_s=3.0,
    sale_at_s=4.0,
    wave_every_s=8.0,
    sale_for_s=30.0,
    reconcile_after_s=3.0,
    reconcile_min_s=15.0,
    hold_cycles=3,
    reconcile_max_s=90.0,
    unneeded_s=10,
    delay_after_add_s=20,
    delay_after_failure_s=10,
    backoff_s=6,
    settle_s=6,
    deadline_s=280.0,
)

QUICK = Timing(
    name="quick",
    tick_s=1.0,
    boot_delay_s=1.5,
    sale_at_s=2.0,
    wave_every_s=4.0,
    sale_for_s=14.0,
    reconcile_after_s=1.0,
    reconcile_min_s=6.0,
    hold_cycles=3,
    reconcile_max_s=60.0,
    unneeded_s=4,
    delay_after_add_s=8,
    delay_after_failure_s=5,
    backoff_s=3,
    settle_s=3,
    deadline_s=220.0,
)
