"""A bounded pool of job workers that leaves no job row behind when it stops."""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from sqlalchemy.orm import Session, sessionmaker

from fabric_core.jobs import finish_job
from fabric_core.log_context import bound


class JobPool:
    """Runs job functions on at most ``slots`` threads.

    On :meth:`shutdown`, jobs that never started are marked failed with the reason (instead of
    staying ``queued`` forever) and the pool waits for the running ones.
    """

    def __init__(self, name: str, slots: int, session_factory: sessionmaker[Session]) -> None:
        self.name = name
        self.session_factory = session_factory
        self.stopping = threading.Event()
        self._executor = ThreadPoolExecutor(max_workers=slots, thread_name_prefix=name)
        self._waiting: dict[Future[None], str] = {}
        self._lock = threading.Lock()

    def submit(self, job_id: str, function: Callable[..., None], *args: object) -> Future[None]:
        """Run ``function(*args)`` on a free thread, in the submitter's log context (its request
        id, the job's DAG run) with ``job_id`` bound."""
        context = contextvars.copy_context()
        future = self._executor.submit(context.run, self._run, job_id, function, *args)
        with self._lock:
            self._waiting[future] = job_id
        future.add_done_callback(self._forget)
        return future

    def holds(self, job_id: str) -> bool:
        """Whether the job waits for a slot or runs in this pool."""
        with self._lock:
            return job_id in self._waiting.values()

    def _run(self, job_id: str, function: Callable[..., None], *args: object) -> None:
        with bound(job_id=job_id):
            function(*args)

    def _forget(self, future: Future[None]) -> None:
        with self._lock:
            self._waiting.pop(future, None)

    def shutdown(self, reason: str) -> None:
        self.stopping.set()
        with self._lock:
            waiting = list(self._waiting.items())
        for future, job_id in waiting:
            if future.cancel():
                finish_job(self.session_factory, job_id, status="failed", error=reason)
        self._executor.shutdown(wait=True)
