"""Reads the Flux-side objects and the gate item, and answers: may capacity be removed now?

Both Lambdas use it: the hook polls and writes the gate item; the autoscaler checks afresh before
any scale-down, starting from the memory in the gate item. A failure to read is "unknown", which
holds (the autoscaler caps how long).
"""

from __future__ import annotations

from typing import Any, Protocol

from aws_lambda_powertools import Logger

from autoscaler.gitops.flux import RESOURCES
from autoscaler.gitops.item import GateItem
from autoscaler.ports import GateAnswer

logger = Logger(child=True)


class FluxObjects(Protocol):
    def list_custom(self, group: str, version: str, plural: str) -> list[dict[str, Any]] | None:
        """Every object of that kind cluster-wide; None when the kind is not installed (404)."""


class GateStore(Protocol):
    def load(self) -> dict[str, Any] | None:
        """The gate item's body, or None when none is stored."""

    def save(self, record: dict[str, Any], observed_at: float) -> None: ...


def list_objects(source: FluxObjects) -> list[dict[str, Any]]:
    objects: list[dict[str, Any]] = []
    for r in RESOURCES:
        items = source.list_custom(r.group, r.version, r.plural)
        objects.extend(items or ())
    return objects


def check(source: FluxObjects, store: GateStore | None, now: float, settle_s: float, max_hold_s: float) -> GateAnswer:
    """The autoscaler's Gate: the gate item refreshed from the cluster, judged as the hook judges it."""
    try:
        stored = store.load() if store is not None else None
        item = GateItem.refresh(stored, list_objects(source), now, settle_s, max_hold_s)
    except Exception as exc:  # any failure to read means unknown, which holds
        logger.warning("gate unreadable", extra={"error": type(exc).__name__})
        return GateAnswer(True, unknown=f"gate unreadable: {type(exc).__name__}: {_short(exc)}")
    return item.answer(now)


def _short(exc: BaseException, limit: int = 200) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return text[:limit]
