"""Reading a Flux or Flagger status defensively: each reader checks the JSON type it expects and raises
Unreadable, naming the field, for anything else, so the verdict can say "unknown" instead of guessing."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any


class Unreadable(Exception):
    """A field has the wrong type or an impossible value: the verdict is unknown."""


@dataclass(frozen=True, slots=True)
class Condition:
    status: str
    reason: str
    message: str
    observed_generation: int | None

    @property
    def why(self) -> str:
        """' (Reason: message)' for details, the message cut short."""
        message = self.message if len(self.message) <= 200 else self.message[:197] + "..."
        if self.reason and message:
            return f" ({self.reason}: {message})"
        return f" ({self.reason or message})" if (self.reason or message) else ""


def read_conditions(raw: Any) -> dict[str, Condition]:
    if raw is None:
        return {}
    if not isinstance(raw, list):
        raise Unreadable("status.conditions is not a list")
    found: dict[str, Condition] = {}
    for item in raw:
        cond = as_mapping(item, "status.conditions[]")
        kind = as_text(cond.get("type"), "condition type", required=True)
        found[kind] = Condition(
            status=as_text(cond.get("status"), f"{kind} condition status", required=True),
            reason=as_text(cond.get("reason"), f"{kind} condition reason") or "",
            message=as_text(cond.get("message"), f"{kind} condition message") or "",
            observed_generation=as_integer(cond.get("observedGeneration"), f"{kind} condition observedGeneration"),
        )
        # Parsed for its type only: a garbage time on a condition is a garbage status.
        as_time(cond.get("lastTransitionTime"), f"{kind} condition lastTransitionTime")
    return found


def as_mapping(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise Unreadable(f"{where} is not an object")
    return value


def as_text(value: Any, where: str, *, required: bool = False) -> str | None:
    if value is None:
        if required:
            raise Unreadable(f"{where} is missing")
        return None
    if not isinstance(value, str):
        raise Unreadable(f"{where} is not a string")
    return value


def as_integer(value: Any, where: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise Unreadable(f"{where} is not an integer")
    return value


def as_boolean(value: Any, where: str) -> bool:
    if value is None:
        return False
    if not isinstance(value, bool):
        raise Unreadable(f"{where} is not a boolean")
    return value


def as_time(value: Any, where: str) -> float | None:
    """RFC 3339 (as the API server writes it) to epoch seconds."""
    text = as_text(value, where)
    if text is None:
        return None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise Unreadable(f"{where} {text[:40]!r} is not an RFC 3339 time") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def identity(obj: Any) -> tuple[str, str, str]:
    """kind, namespace, name as far as they can be read ('?' where not)."""
    if not isinstance(obj, Mapping):
        return "?", "?", "?"
    metadata = obj.get("metadata")
    metadata = metadata if isinstance(metadata, Mapping) else {}

    def as_text(value: Any) -> str:
        return value if isinstance(value, str) and value else "?"

    return as_text(obj.get("kind")), as_text(metadata.get("namespace")), as_text(metadata.get("name"))


def describe(obj: Any) -> str:
    if not isinstance(obj, Mapping):
        return f"a JSON {type(obj).__name__}, not an object"
    api_version, kind = obj.get("apiVersion"), obj.get("kind")
    return f"apiVersion {api_version!r}, kind {kind!r}"
