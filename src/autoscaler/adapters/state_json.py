"""The scaling state as the JSON document the state item keeps (`body`), and back.

A document that is not this format, or holds anything out of range, is refused with a ValueError that
names the field: a store never hands the planner a state it guessed at.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from autoscaler.model import Drain, DrainPhase, IntentRecord, Launch, ScalingState

STATE_FORMAT = 1


def state_to_json(state: ScalingState) -> str:
    """Every field of `state` as a JSON object (ValueError on a NaN or infinite time)."""
    doc = {
        "format": STATE_FORMAT,
        "version": state.version,
        "last_scale_up": state.last_scale_up,
        "last_scale_down": state.last_scale_down,
        "last_failure": state.last_failure,
        "pressure_since": state.pressure_since,
        "unneeded_since": dict(sorted(state.unneeded_since.items())),
        "launches": [
            {"instance_id": x.instance_id, "az": x.az, "launched_at": x.launched_at, "deadline": x.deadline}
            for x in state.launches
        ],
        "drains": [
            {
                "node": d.node,
                "instance_id": d.instance_id,
                "started_at": d.started_at,
                "deadline": d.deadline,
                "phase": DrainPhase(d.phase).value,
                "held_since": d.held_since,
                "keep": d.keep,
                "interrupted": d.interrupted,
            }
            for d in state.drains
        ],
        "intents": {
            event_id: {"recorded_at": r.recorded_at, "launches": dict(r.launches), "remove": dict(r.remove)}
            for event_id, r in sorted(state.intents.items())
        },
        "backoff_until": state.backoff_until,
        "paused": state.paused,
        "gate_held_since": state.gate_held_since,
    }
    return json.dumps(doc, allow_nan=False, separators=(",", ":"))


def state_from_json(text: str) -> ScalingState:
    """Read what state_to_json wrote. ValueError, naming the field, for anything else.

    Keys it does not know are ignored (a newer writer's additions), so rolling back a deploy keeps working.
    """
    try:
        doc = json.loads(text, parse_constant=reject_constant)
    except (TypeError, ValueError) as err:
        raise ValueError(f"state body is not valid JSON: {err}") from None
    obj = _object(doc, "state")
    if obj.get("format") != STATE_FORMAT:
        raise ValueError(f"state.format must be {STATE_FORMAT}, got {obj.get('format')!r}")
    version = obj.get("version", 0)
    if isinstance(version, bool) or not isinstance(version, int) or version < 0:
        raise ValueError(f"state.version must be a whole number >= 0, got {version!r}")
    paused = obj.get("paused", False)
    if not isinstance(paused, bool):
        raise ValueError(f"state.paused must be true or false, got {paused!r}")
    unneeded = _object(obj.get("unneeded_since", {}), "state.unneeded_since")
    return ScalingState(
        version=version,
        last_scale_up=_time(obj, "last_scale_up", "state", optional=True),
        last_scale_down=_time(obj, "last_scale_down", "state", optional=True),
        last_failure=_time(obj, "last_failure", "state", optional=True),
        pressure_since=_time(obj, "pressure_since", "state", optional=True),
        unneeded_since={node: _time(unneeded, node, "state.unneeded_since") for node in unneeded},
        launches=tuple(_launch(x, f"state.launches[{i}]") for i, x in enumerate(_list(obj, "launches"))),
        drains=tuple(_drain(x, f"state.drains[{i}]") for i, x in enumerate(_list(obj, "drains"))),
        backoff_until=_time(obj, "backoff_until", "state", optional=True),
        paused=paused,
        gate_held_since=_time(obj, "gate_held_since", "state", optional=True),
        intents={
            event_id: _intent(x, f"state.intents[{event_id!r}]")
            for event_id, x in _object(obj.get("intents", {}), "state.intents").items()
        },
    )


def _launch(value: Any, where: str) -> Launch:
    obj = _object(value, where)
    return Launch(
        instance_id=_text(obj, "instance_id", where),
        az=_text(obj, "az", where),
        launched_at=_time(obj, "launched_at", where),
        deadline=_time(obj, "deadline", where),
    )


def _drain(value: Any, where: str) -> Drain:
    obj = _object(value, where)
    phase = obj.get("phase", DrainPhase.CORDONED.value)
    try:
        drain_phase = DrainPhase(phase)
    except ValueError:
        allowed = ", ".join(p.value for p in DrainPhase)
        raise ValueError(f"{where}.phase must be one of {allowed}, got {phase!r}") from None
    keep, interrupted = _flag(obj, "keep", where), _flag(obj, "interrupted", where)
    return Drain(
        node=_text(obj, "node", where),
        instance_id=_text(obj, "instance_id", where, optional=True),
        started_at=_time(obj, "started_at", where),
        deadline=_time(obj, "deadline", where),
        phase=drain_phase,
        held_since=_time(obj, "held_since", where, optional=True),
        keep=keep,
        interrupted=interrupted,
    )


def _flag(obj: Mapping[str, Any], key: str, where: str) -> bool:
    value = obj.get(key, False)
    if not isinstance(value, bool):
        raise ValueError(f"{where}.{key} must be true or false, got {value!r}")
    return value


def _intent(value: Any, where: str) -> IntentRecord:
    obj = _object(value, where)
    launches = _object(obj.get("launches", {}), f"{where}.launches")
    for zone, count in launches.items():
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ValueError(f"{where}.launches[{zone!r}] must be a whole number >= 1, got {count!r}")
    remove = _object(obj.get("remove", {}), f"{where}.remove")
    return IntentRecord(
        recorded_at=_time(obj, "recorded_at", where),
        launches=launches,
        remove={node: _text(remove, node, f"{where}.remove") for node in remove},
    )


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"{where} must be a JSON object, got {_kind(value)}")
    return value


def _list(obj: Mapping[str, Any], key: str) -> list[Any]:
    value = obj.get(key, [])
    if not isinstance(value, list):
        raise ValueError(f"state.{key} must be a list, got {_kind(value)}")
    return value


def _time(obj: Mapping[str, Any], key: str, where: str, *, optional: bool = False) -> Any:
    value = obj.get(key)
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{where}.{key} must be a time in epoch seconds, got {value!r}")
    return float(value)


def _text(obj: Mapping[str, Any], key: str, where: str, *, optional: bool = False) -> Any:
    value = obj.get(key)
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value:
        raise ValueError(f"{where}.{key} must be a non-empty string, got {value!r}")
    return value


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")
