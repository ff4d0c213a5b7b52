"""The interpreter tuned while a cycle lists and plans a big cluster: the cyclic garbage collector
paused while many objects that hold no cycles pile up, and quick thread switches while a page is
fetched on a second thread."""

from __future__ import annotations

import gc
import sys
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


@contextmanager
def quick_switches() -> Iterator[None]:
    """The thread fetching the next page needs the GIL for a moment each time data arrives, and
    the parsing thread holds it up to the switch interval each time (5 ms by default): a 2 MB
    page then took longer to arrive than to parse, and the parser waited for it (0.4 s over
    30,000 pods, against 0.15 s at 0.5 ms)."""
    interval = sys.getswitchinterval()
    sys.setswitchinterval(min(interval, 0.0005))
    try:
        yield
    finally:
        sys.setswitchinterval(interval)
