"""The cyclic garbage collector paused while a cycle builds many objects that hold no cycles."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def gc_paused() -> Iterator[None]:
    """Listing a 30,000-pod cluster decodes hundreds of thousands of acyclic dicts and lists, and
    planning on it builds tens of thousands of values: the collector would scan them, and every
    pod, over and over while they pile up (about half the decoding time, a quarter of a plan) and
    could free none of them. It runs again, from where it was, afterwards."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
