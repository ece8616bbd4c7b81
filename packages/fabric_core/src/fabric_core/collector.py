"""Pausing Python's cyclic garbage collector around bulk work.

A catalog sync creates hundreds of thousands of objects that live until it ends and form no
cycles (rows, harvested columns, the tuples it writes). Each allocation counts toward the
collector's thresholds, so the collector walks them again and again, full collections
included, and frees nothing: a tenth of a 2,000-table sync and more at 20,000 tables.

The collector is one per process, so pauses nest and overlap across threads: it is turned
off by the first pause to begin and back on when the last one ends, and only if it was on
before. Cycles left by other work meanwhile are collected then. Pauses that keep overlapping
(a service with several syncs in a queue) would keep it off for good: a pause that ends after
the collector has been off for ``CATCH_UP_SECONDS`` runs one full collection itself.
"""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

CATCH_UP_SECONDS = 60.0

_lock = threading.Lock()
_pauses = 0
_was_enabled = False
_off_since = 0.0


@contextmanager
def collector_paused() -> Iterator[None]:
    """Turn off the cyclic garbage collector for the block (reference counting still frees
    everything that forms no cycle)."""
    global _pauses, _was_enabled, _off_since
    with _lock:
        if _pauses == 0:
            _was_enabled = gc.isenabled()
            _off_since = time.monotonic()
            gc.disable()
        _pauses += 1
    try:
        yield
    finally:
        catch_up = False
        with _lock:
            _pauses -= 1
            if _pauses == 0:
                if _was_enabled:
                    gc.enable()
            elif _was_enabled and time.monotonic() - _off_since >= CATCH_UP_SECONDS:
                catch_up, _off_since = True, time.monotonic()
        if catch_up:
            gc.collect()
