"""Work a process repeats while it runs (its recovery sweep): once at start, then every
``interval`` seconds, on a thread of its own; an error is logged and the next round runs."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


class Periodic:
    def __init__(self, name: str, interval: float, work: Callable[[], object]) -> None:
        self.name, self.interval, self.work = name, interval, work
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> Periodic:
        self._thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            try:
                self.work()
            except Exception as exc:  # the DB or storage away for a while: try next round
                log.warning("%s failed: %s: %s", self.name, type(exc).__name__, exc)
            if self._stop.wait(self.interval):
                return
