"""A ScalingState with every field set, and the times around it, for the DynamoDB tests and the
state contracts."""

from autoscaler.model import Drain, DrainPhase, IntentRecord, Launch, ScalingState

NOW = 1_767_225_600.0  # 2026-01-01T00:00:00Z
LEASE_S = 960.0  # longer than the function timeout

FULL_STATE = ScalingState(
    version=7,
    last_scale_up=NOW - 600,
    last_scale_down=NOW - 1200.5,
    last_failure=NOW - 3600,
    pressure_since=NOW - 90.25,
    unneeded_since={"worker-b": NOW - 300, "worker-a": NOW - 30},
    launches=(
        Launch("i-0aaa", "eu-west-1a", NOW - 60, NOW + 840),
        Launch("i-0bbb", "eu-west-1b", NOW - 60, NOW + 840),
    ),
    drains=(
        Drain("worker-c", "i-0ccc", NOW - 120, NOW + 180, DrainPhase.EVICTING, held_since=NOW - 10),
        Drain("worker-d", None, NOW - 5, NOW + 295),
        Drain("worker-f", "i-0fff", NOW - 30, NOW + 90, keep=False, interrupted=True),
        Drain("worker-g", "i-0ggg", NOW - 60, NOW + 240, keep=True),
    ),
    backoff_until=NOW + 300,
    paused=True,
    gate_held_since=NOW - 45,
    intents={"event-1": IntentRecord(NOW - 20, {"eu-west-1a": 2}, {"worker-e": "i-0eee"})},
)
