"""Retry policy per job kind: what a job is queued with, and what happens when an attempt
fails. The job runner is the one place that decides (:func:`record_failed_attempt`); the
orchestrators only hand a job back to its service when it is due again."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from fabric_core.events import record_event
from fabric_core.job_events import job_payload
from fabric_core.jobs import end_job
from fabric_core.models import Job, utcnow
from fabric_core.schemas import RetryPolicy, RetryRequest
from fabric_core.settings import Settings

log = logging.getLogger(__name__)


# A kind with no retry settings of its own (a new kind, a test's kind) is tried once.
NO_RETRY = RetryPolicy(attempts=1, backoff_seconds=0, max_delay_seconds=0)


def kind_policy(kind_name: str, settings: Settings) -> RetryPolicy:
    """The settings' policy of a job kind (``FABRIC_<KIND>_RETRY_*``)."""
    if not hasattr(settings, f"{kind_name}_retry_attempts"):
        return NO_RETRY
    return RetryPolicy(
        attempts=getattr(settings, f"{kind_name}_retry_attempts"),
        backoff_seconds=getattr(settings, f"{kind_name}_retry_backoff_seconds"),
        max_delay_seconds=getattr(settings, f"{kind_name}_retry_max_delay_seconds"),
    )


def policy_for(kind_name: str, settings: Settings, request: RetryRequest | None) -> dict[str, Any]:
    """The policy to store on a new job: its kind's, with what the request asks for."""
    policy = kind_policy(kind_name, settings)
    if request is not None:
        policy = policy.model_copy(update={"attempts": request.attempts})
    return policy.model_dump()


def job_policy(kind_name: str, stored: dict[str, Any] | None, settings: Settings) -> RetryPolicy:
    """The policy a job runs under: the one it was queued with, else its kind's settings'."""
    if stored is None:  # queued before policies were stored on jobs
        return kind_policy(kind_name, settings)
    return RetryPolicy.model_validate(stored)


def record_failed_attempt(
    session_factory: sessionmaker[Session],
    settings: Settings,
    job_id: str,
    error: str,
    *,
    retryable: bool,
    not_before: datetime | None = None,
) -> str:
    """Record that the running job's attempt failed with ``error`` (already redacted), in one
    transaction: back to ``queued`` with its next attempt's time when the error may pass and
    attempts remain (``job.retrying`` fires), else ended ``failed``.

    ``not_before``: the next attempt is not due before then (a circuit that stays open until
    then would refuse it at once).

    Returns ``retrying``, ``failed``, or ``ended`` when the job had ended meanwhile (a cancel
    wins: a cancelled job never retries).
    """
    now = utcnow()
    with session_factory.begin() as session:
        # Plain columns, not the ORM object: end_job's on-end hook must read the row it updates.
        row = session.execute(
            select(
                Job.kind,
                Job.attempts,
                Job.attempt_errors,
                Job.retry_policy,
                Job.connection_id,
                Job.dataset_name,
            ).where(Job.id == job_id, Job.status == "running")
        ).one_or_none()
        if row is None:
            return "ended"
        attempt = row.attempts
        errors = [*(row.attempt_errors or []), {"attempt": attempt, "error": error, "at": now}]
        errors = [{**e, "at": _iso(e["at"])} for e in errors]
        policy = job_policy(row.kind, row.retry_policy, settings)
        if retryable and attempt < policy.attempts:
            next_at = now + timedelta(seconds=policy.delay_after(attempt))
            if not_before is not None and not_before > next_at:
                next_at = not_before
            requeued = session.execute(
                update(Job)
                .where(Job.id == job_id, Job.status == "running")
                .values(
                    status="queued",
                    attempt_errors=errors,
                    next_attempt_at=next_at,
                    handed_over_at=None,  # the next hand-over is a new one
                    progress=0.0,
                    updated_at=now,
                )
                .execution_options(synchronize_session=False)
            ).rowcount
            if not requeued:
                return "ended"
            # Like every job event (job_payload): with the orchestrator, so an Airflow job's
            # alert links to its DAG run, and the connection's name.
            job = session.get_one(Job, job_id, populate_existing=True)
            record_event(
                session,
                "job.retrying",
                job_payload(
                    session,
                    job,
                    attempt=attempt,
                    max_attempts=policy.attempts,
                    next_attempt_at=next_at.isoformat(),
                    error=error,
                ),
            )
            log.warning(
                "%s job %s attempt %d of %d failed; next attempt at %s: %s",
                row.kind,
                job_id,
                attempt,
                policy.attempts,
                next_at.isoformat(),
                error,
            )
            return "retrying"
        if not end_job(session, job_id, status="failed", error=error):
            return "ended"
        session.execute(
            update(Job)
            .where(Job.id == job_id)
            .values(attempt_errors=errors)
            .execution_options(synchronize_session=False)
        )
        return "failed"


def _iso(at: Any) -> str:
    return at if isinstance(at, str) else at.isoformat()
