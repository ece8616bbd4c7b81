"""Pausing Python's cyclic garbage collector around bulk work.

A catalog sync creates hundreds of thousands of objects that live until it ends and form no
cycles (rows, harvested columns, the tuples it writes). Each allocation counts toward the
collector's thresholds, so the collector walks them again and again, full collections
included, and frees nothing: a tenth of a 2,000-table sync and more at 20,000 tables.

The collector is one per process, so pauses nest and overlap across threads: it is turned
off by the first pause to begin and back on when the last one ends, and only if it was on
before. Cycles left by other work meanwhile are collected then.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_pauses = 0
_was_enabled = False


@contextmanager
def collector_paused() -> Iterator[None]:
    """Turn off the cyclic garbage collector for the block (reference counting still frees
    everything that forms no cycle)."""
    global _pauses, _was_enabled
    with _lock:
        if _pauses == 0:
            _was_enabled = gc.isenabled()
            gc.disable()
        _pauses += 1
    try:
        yield
    finally:
        with _lock:
            _pauses -= 1
            if _pauses == 0 and _was_enabled:
                gc.enable()
