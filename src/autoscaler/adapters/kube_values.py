"""The API's plain values: resource quantities ("100m", "1.5Gi", "2e3") as exact numbers (CPU in
millicores, memory in bytes or MiB), timestamps, object names. The quantities are shared by the
parser and the embedded stack's simulated kubelets."""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

_QUANTITY = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+))(?:([eE][+-]?\d+)|(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E))?$")
_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {"n": -9, "u": -6, "m": -3, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
MIB = 2**20


def parse_quantity(text: str | int | float) -> Decimal:
    """A Kubernetes resource quantity ("100m", "1.5Gi", "2e3", "1k") as an exact Decimal.

    Raises ValueError for text that is not a quantity."""
    if isinstance(text, int | float) and not isinstance(text, bool):
        return Decimal(str(text))
    m = _QUANTITY.match(text.strip()) if isinstance(text, str) else None
    if m is None:
        raise ValueError(f"{text!r} is not a Kubernetes quantity")
    number, exponent, suffix = m.groups()
    try:
        value = Decimal(number + (exponent or ""))
    except InvalidOperation:
        raise ValueError(f"{text!r} is not a Kubernetes quantity") from None
    if suffix in _BINARY:
        return value * _BINARY[suffix]
    if suffix:
        return value.scaleb(_DECIMAL[suffix])
    return value


@functools.lru_cache(maxsize=4096)
def cpu_millis(text: str, *, round_up: bool = True) -> int:
    """CPU in millicores: rounded up for a request (as the scheduler does), down for capacity."""
    value = parse_quantity(text) * 1000
    return math.ceil(value) if round_up else math.floor(value)


@functools.lru_cache(maxsize=4096)
def mem_bytes(text: str, *, round_up: bool = True) -> int:
    value = parse_quantity(text)
    return math.ceil(value) if round_up else math.floor(value)


def mib(byte_count: int, *, round_up: bool) -> int:
    """Bytes in MiB, rounded up (what a pod asks) or down (what a node offers)."""
    return -(-byte_count // MIB) if round_up else byte_count // MIB


def parse_time(text: str | None) -> float | None:
    """An RFC 3339 timestamp from the API as epoch seconds."""
    if not text:
        return None
    return datetime.fromisoformat(text).timestamp()


def object_name(meta: Mapping[str, Any]) -> str:
    name = meta.get("name")
    if not isinstance(name, str) or not name:
        raise ValueError("metadata.name: missing or not a string")
    return name
