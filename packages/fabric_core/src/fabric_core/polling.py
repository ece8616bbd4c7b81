"""The one way Fabric waits for a job to end: poll its status until it is terminal."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from datetime import datetime
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


def needs_hand_over(
    status: Mapping[str, Any], handed_over_at: float, handover_seconds: float, now: float
) -> bool:
    """Whether a task waiting for a job should hand it to its service (again) now.

    ``status`` is the job's status answer; ``handed_over_at`` and ``now`` are Unix times (the
    last hand-over by this task, the present). Two cases: the job was put back to queued for
    another attempt and that attempt is due; or it is still queued ``handover_seconds`` after
    the hand-over (the service that took it died before running it). A job waiting for a later
    attempt is left alone: it is not stuck.
    """
    if status.get("status") != "queued":
        return False
    next_attempt_at = status.get("next_attempt_at")
    if next_attempt_at is not None:
        if isinstance(next_attempt_at, str):
            next_attempt_at = datetime.fromisoformat(next_attempt_at.replace("Z", "+00:00"))
        return next_attempt_at.timestamp() <= now
    return now - handed_over_at > handover_seconds
