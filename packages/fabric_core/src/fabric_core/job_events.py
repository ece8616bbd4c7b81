"""The events a job's end records: ``job.failed`` on every failed end, and ``job.stuck`` too
when recovery ended it (its worker went silent, or it could not be handed over)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from fabric_core.events import record_event
from fabric_core.models import Connection, Job


def job_payload(session: Session, job: Job, **fields: Any) -> dict[str, Any]:
    """What an alert about ``job`` says: which job, of what, through which orchestrator (the
    dispatcher adds the links). ``fields`` (e.g. the error, already redacted) come last."""
    payload: dict[str, Any] = {
        "job_id": job.id,
        "kind": job.kind,
        "orchestrator": job.orchestrator,
        "attempts": job.attempts,
    }
    if job.connection_id is not None:
        payload["connection_id"] = job.connection_id
        payload["connection_name"] = session.scalar(
            select(Connection.name).where(Connection.id == job.connection_id)
        )
    if job.dataset_name is not None:
        payload["dataset_name"] = job.dataset_name
    return {**payload, **fields}


def record_job_failed(
    session: Session, job: Job, error: str | None, stuck: str | None = None
) -> None:
    """In the transaction that ended ``job`` failed: ``job.failed``, and ``job.stuck`` with
    ``stuck`` (why recovery gave up on it) when recovery ended it."""
    record_event(session, "job.failed", job_payload(session, job, status="failed", error=error))
    if stuck is not None:
        record_event(session, "job.stuck", job_payload(session, job, reason=stuck, error=error))
