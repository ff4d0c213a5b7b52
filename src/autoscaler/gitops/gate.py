"""The GitOps gate: may capacity be removed now, given every Flux object's verdict?

Pure: objects, `now` (epoch seconds) and what the previous evaluation remembered come in; a GateVerdict
and the memory to keep for next time go out. The handler persists GateMemory (plain JSON) in DynamoDB and
emits the metrics and log lines; nothing here does I/O.

- Blocked while any object holds (in progress, or status unreadable), naming each one.
- Then blocked for a settle window after the last reconcile finished: after a hold the gate saw end, or
  after an object rolled something out (also one that came and went between two polls).
- A cap on one continuous hold: an object holding longer than `max_hold_s` stops holding, and so does a
  chain of holds by different objects that together block longer than that. Scale-down resumes and
  `cap_hit` says so, so one stuck object cannot keep idle nodes forever.
"""

from __future__ import annotations

import decimal
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

from autoscaler.config import Settings
from autoscaler.gitops.flux import RESOURCES, State, Verdict, supported, verdicts

# The settings' defaults, so the gate has one cap whoever calls it.
DEFAULT_SETTLE_S = float(Settings().gate_settle_s)
DEFAULT_MAX_HOLD_S = float(Settings().gate_max_hold_s)

_NO_HOLDS: Mapping[str, float] = MappingProxyType({})


def hold_capped(since: float, now: float, max_hold_s: float) -> bool:
    """The one hold cap, for an object's hold, a chain of holds, and the autoscaler's own count of a hold
    (an unreadable gate, a notification): once it has lasted max_hold_s it no longer holds, so one stuck
    object cannot keep idle nodes forever."""
    return now - since >= max_hold_s


@dataclass(frozen=True, slots=True)
class GateMemory:
    """What one evaluation hands to the next. Persist it with to_dict() and read it back with from_dict()."""

    held_since: float | None = None
    """Start of the current continuous block (by holding objects or the settle window); None when open."""
    last_finished: float | None = None
    """When a hold that the gate saw last ended."""
    object_held_since: Mapping[str, float] = field(default_factory=lambda: _NO_HOLDS)
    """Per object (Verdict.key): start of its current continuous hold."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "held_since": self.held_since,
            "last_finished": self.last_finished,
            "object_held_since": dict(sorted(self.object_held_since.items())),
        }

    @classmethod
    def from_dict(cls, data: Any) -> GateMemory:
        """Read what to_dict() wrote (numbers may come back from DynamoDB as Decimal). ValueError if garbled."""
        if not isinstance(data, Mapping):
            raise ValueError(f"gate memory must be an object, got {type(data).__name__}")
        holds = data.get("object_held_since")
        holds = {} if holds is None else holds
        if not isinstance(holds, Mapping) or not all(isinstance(k, str) for k in holds):
            raise ValueError("gate memory: object_held_since must map object keys to times")
        return cls(
            held_since=_number(data.get("held_since"), "held_since"),
            last_finished=_number(data.get("last_finished"), "last_finished"),
            object_held_since=MappingProxyType(
                {key: _number(value, f"object_held_since[{key}]", required=True) for key, value in holds.items()}
            ),
        )


@dataclass(frozen=True, slots=True)
class GateVerdict:
    blocked: bool
    """True: no capacity may be removed now."""
    holding: tuple[Verdict, ...]
    """Objects holding scale-down now (capped ones are not among them)."""
    capped: tuple[Verdict, ...]
    """Objects that would hold but have held longer than max_hold_s, so no longer do."""
    cap_hit: bool
    """A hold reached max_hold_s and scale-down resumed regardless: the caller emits a metric and a log line."""
    settle_until: float | None
    """Blocked by the settle window until then; None when the window is not what blocks."""
    settle_cause: str
    """What started the settle window, in words ('' when none)."""
    held_for_s: float
    """How long the gate has blocked continuously (0 when open)."""
    verdicts: tuple[Verdict, ...]
    memory: GateMemory
    """Keep it and pass it as `prior` next time."""

    @property
    def stalled(self) -> tuple[Verdict, ...]:
        """Objects a human must fix (they do not hold, but deserve an alarm)."""
        return tuple(v for v in self.verdicts if v.state is State.STALLED)

    @property
    def unknown(self) -> tuple[Verdict, ...]:
        return tuple(v for v in self.verdicts if v.state is State.UNKNOWN)

    @property
    def reasons(self) -> list[dict[str, str]]:
        """Why it is blocked: one entry per holding object, and one for the settle window if it blocks."""
        reasons = [v.to_dict() for v in self.holding]
        if self.settle_until is not None:
            reasons.append(
                {
                    "kind": "SettleWindow",
                    "namespace": "",
                    "name": "gate",
                    "state": "settling",
                    "detail": f"{self.settle_cause}; settling until {_iso(self.settle_until)}",
                }
            )
        return reasons

    def to_dict(self) -> dict[str, Any]:
        return {
            "blocked": self.blocked,
            "reasons": self.reasons,
            "capped": [v.to_dict() for v in self.capped],
            "stalled": [v.to_dict() for v in self.stalled],
            "cap_hit": self.cap_hit,
            "held_for_s": self.held_for_s,
            "settle_until": self.settle_until,
        }


def evaluate(
    objects: Sequence[Any],
    now: float,
    prior: GateMemory | None = None,
    settle_s: float = DEFAULT_SETTLE_S,
    max_hold_s: float = DEFAULT_MAX_HOLD_S,
) -> GateVerdict:
    """Decide whether scale-down may go ahead now, over every Kustomization, HelmRelease and Canary.

    `objects` are the items the Kubernetes API lists (dicts); `prior` is the memory the previous
    evaluation returned (None on the first run). Never raises on bad objects: they count as unknown.
    """
    if settle_s < 0 or max_hold_s <= 0:
        raise ValueError(f"settle_s must be >= 0 and max_hold_s > 0 (got {settle_s}, {max_hold_s})")
    prior = prior or GateMemory()
    all_verdicts = verdicts(objects)

    object_held_since: dict[str, float] = {}
    holding: list[Verdict] = []
    capped: list[Verdict] = []
    for v in all_verdicts:
        if not v.holds:
            continue
        since = min(prior.object_held_since.get(v.key, now), now)
        object_held_since[v.key] = since
        (capped if hold_capped(since, now, max_hold_s) else holding).append(v)

    # A hold seen last time that is gone now (the object finished, or was deleted) just finished.
    last_finished = prior.last_finished
    if any(key not in object_held_since for key in prior.object_held_since):
        last_finished = now

    settle_from, settle_cause = None, ""
    if last_finished is not None:
        settle_from, settle_cause = last_finished, f"a hold ended at {_iso(last_finished)}"
    for v in all_verdicts:
        if v.changed_at is not None and (settle_from is None or v.changed_at > settle_from):
            settle_from, settle_cause = v.changed_at, f"{v.key} rolled out a change at {_iso(v.changed_at)}"
    settle_until = None
    if not holding and settle_from is not None and now < settle_from + settle_s:
        settle_until = settle_from + settle_s

    blocked = bool(holding) or settle_until is not None
    held_since = None
    if blocked:
        held_since = min(prior.held_since if prior.held_since is not None else now, now)
    held_for_s = now - held_since if held_since is not None else 0.0
    if held_since is not None and hold_capped(held_since, now, max_hold_s):
        # held_since stays, so the cap lasts until the chain of holds breaks.
        capped.extend(holding)
        holding, settle_until, blocked = [], None, False

    return GateVerdict(
        blocked=blocked,
        holding=tuple(holding),
        capped=tuple(capped),
        cap_hit=bool(capped) or (held_since is not None and not blocked),
        settle_until=settle_until,
        settle_cause=settle_cause if settle_until is not None else "",
        held_for_s=held_for_s,
        verdicts=all_verdicts,
        memory=GateMemory(
            held_since=held_since,
            last_finished=last_finished,
            object_held_since=MappingProxyType(object_held_since),
        ),
    )


def gate_objects(data: Any) -> dict[str, Any]:
    """`node-fleet gate --objects FILE.json`: the verdict over a parsed JSON list or Kubernetes List.

    Returns {"blocked": bool, "reasons": [{"kind", "namespace", "name", "state", "detail"}, ...]}: blocked
    when any object holds, naming each. Only the objects are read; the settle window and the cap need the
    memory the Lambda keeps, so they do not apply here. ValueError, with a message saying what is wrong,
    for input that is not such a list or holds something other than the kinds the gate reads.
    """
    items = _items(data)
    for index, item in enumerate(items):
        if not isinstance(item, Mapping):
            raise ValueError(f"item {index}: expected a Kubernetes object, got a JSON {_json_type(item)}")
        if supported(item) is None:
            kinds = ", ".join(f"{r.kind} ({r.group})" for r in RESOURCES)
            raise ValueError(
                f"item {index}: apiVersion {item.get('apiVersion')!r} kind {item.get('kind')!r} is not "
                f"a kind the gate reads; expected {kinds}"
            )
    holding = [v for v in verdicts(items) if v.holds]
    return {"blocked": bool(holding), "reasons": [v.to_dict() for v in holding]}


def _items(data: Any) -> list[Any]:
    if isinstance(data, list):
        return data
    if isinstance(data, Mapping):
        kind = data.get("kind")
        if isinstance(kind, str) and kind.endswith("List"):
            items = data.get("items")
            if items is None:
                return []
            if isinstance(items, list):
                return items
            raise ValueError(f"{kind}.items must be a JSON list, got a JSON {_json_type(items)}")
        raise ValueError(
            f"expected a JSON list of objects or a Kubernetes List (kind 'List' with 'items'), "
            f"got an object of kind {kind!r}"
        )
    raise ValueError(
        f"expected a JSON list of objects or a Kubernetes List (kind 'List' with 'items'), "
        f"got a JSON {_json_type(data)}"
    )


def _json_type(value: Any) -> str:
    names = {dict: "object", list: "list", str: "string", bool: "boolean", int: "number", float: "number"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


def _number(value: Any, where: str, *, required: bool = False) -> float | None:
    if value is None and not required:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | decimal.Decimal):
        raise ValueError(f"gate memory: {where} must be a number, got {value!r}")
    number = float(value)
    if number != number or number in (float("inf"), float("-inf")):
        raise ValueError(f"gate memory: {where} must be finite, got {value!r}")
    return number


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
