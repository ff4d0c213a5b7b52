"""The gate item: what the hook stores in the state table and the autoscaler reads back.

Both functions refresh it the same way (a fresh verdict over the Flux objects, from the memory the stored
item kept, plus any hold from a Flux notification) and judge it by the same rule, `GateItem.held(now)`,
so the hook's GateHeld metric says what the autoscaler does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from autoscaler.gitops.gate import GateMemory, GateVerdict, evaluate
from autoscaler.ports import GateAnswer

_NO_REASON: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class EventHold:
    """A hold from a Flux `Progressing` notification: it lasts until `until`, before the status shows it."""

    until: float = 0.0
    reason: Mapping[str, str] = field(default_factory=lambda: _NO_REASON)


@dataclass(frozen=True, slots=True)
class GateItem:
    """One refresh of the gate: the verdict over the Flux objects, and the notification's hold it carries."""

    verdict: GateVerdict
    event: EventHold = EventHold()

    @classmethod
    def refresh(
        cls,
        stored: Mapping[str, Any] | None,
        objects: Sequence[Any],
        now: float,
        settle_s: float,
        max_hold_s: float,
        event: EventHold | None = None,
    ) -> GateItem:
        """The item as of `now`: the verdict over `objects` from the memory `stored` kept, and the later of
        the stored event hold (while it lasts) and `event`. ValueError for a garbled stored item."""
        prior = GateMemory.from_dict(stored["memory"]) if stored and "memory" in stored else None
        verdict = evaluate(objects, now, prior, settle_s, max_hold_s)
        event = event or EventHold()
        if stored and float(stored.get("event_hold_until") or 0) > max(now, event.until):
            reason = stored.get("event_reason") or _NO_REASON
            if not isinstance(reason, Mapping):
                raise ValueError(f"gate item: event_reason must be an object, got {reason!r}")
            event = EventHold(float(stored["event_hold_until"]), reason)
        return cls(verdict, event)

    def event_holds(self, now: float) -> bool:
        # The cap ends a chain of holds; a notification during it is part of the chain, so it holds no more.
        return self.event.until > now and not self.verdict.cap_hit

    def held(self, now: float) -> bool:
        """The one rule: may no capacity be removed at `now`?"""
        return self.verdict.blocked or self.event_holds(now)

    def answer(self, now: float) -> GateAnswer:
        reasons = tuple(self.verdict.reasons)
        if self.event_holds(now):
            reasons += (dict(self.event.reason),)
        return GateAnswer(self.held(now), reasons, self.verdict.cap_hit)

    def to_dict(self) -> dict[str, Any]:
        """What the hook stores: the verdict, its memory, and the notification's hold."""
        return {
            **self.verdict.to_dict(),
            "memory": self.verdict.memory.to_dict(),
            "event_hold_until": self.event.until,
            "event_reason": dict(self.event.reason),
        }
