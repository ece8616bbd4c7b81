"""The one way Fabric waits for a job to end: poll its status until it is terminal."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from fabric_core.errors import ServiceUnavailableError
from fabric_core.schemas import TERMINAL_STATUSES


def wait_for_job_end(
    fetch: Callable[[], Mapping[str, Any]],
    *,
    poll_interval: float = 0.5,
    timeout: float | None = None,
) -> dict[str, Any]:
    """Call ``fetch`` (a job's status as JSON) until the job has ended; returns that status.

    Raises:
        ServiceUnavailableError: the job had not ended after ``timeout`` seconds (None: wait
            for ever); retryable, like a service that does not answer.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        status = dict(fetch())
        if status["status"] in TERMINAL_STATUSES:
            return status
        if deadline is not None and time.monotonic() > deadline:
            raise ServiceUnavailableError(
                f"Job {status.get('id')} still {status['status']} after {timeout:g} s."
            )
        time.sleep(poll_interval)
