"""Metadata sync as a job: queued by the gateway, run once by a sync-service worker."""

from __future__ import annotations

import logging
import time

from sqlalchemy import exists, or_, update
from sqlalchemy.orm import Session, sessionmaker

from fabric_core.catalog.sync import sync_connection
from fabric_core.connections import connection_spec, get_connection
from fabric_core.crypto import SecretBox, redact
from fabric_core.errors import ConflictError, FabricError, InvalidInputError, JobCancelledError
from fabric_core.jobs import (
    SYNC_JOB,
    claim_job,
    create_job,
    fail_stale_jobs,
    finish_job,
    get_job,
    heartbeat,
    is_cancelled,
    set_progress,
)
from fabric_core.models import Connection, Job, utcnow
from fabric_core.schemas import TERMINAL_STATUSES

log = logging.getLogger(__name__)


def queue_sync(
    session: Session, connection_id: int, *, orchestrator: str
) -> tuple[Job, Connection]:
    """Create the queued job ``sync_{connection_id}_{unix_ts}`` for a registered connection."""
    connection = get_connection(session, connection_id)
    job = create_job(
        session,
        kind=SYNC_JOB,
        id_prefix=f"sync_{connection_id}",
        connection_id=connection_id,
        params={"connection_id": connection_id},
        orchestrator=orchestrator,
    )
    return job, connection


def check_sync_request(session: Session, job_id: str, connection_id: int) -> Job:
    """The job a service was asked to run, refusing one that names another connection."""
    job = get_job(session, job_id)
    if job.kind != SYNC_JOB:
        raise InvalidInputError(f"Job {job_id!r} is a {job.kind} job, not a sync job.")
    if job.connection_id != connection_id:
        raise InvalidInputError(
            f"Job {job_id!r} belongs to connection {job.connection_id}, not {connection_id}."
        )
    return job


def run_sync_job(
    session_factory: sessionmaker[Session],
    job_id: str,
    connection_id: int,
    *,
    box: SecretBox,
    timeout: float,
    lock_timeout: float = 600.0,
    heartbeat_seconds: float = 15.0,
    stale_after: float = 120.0,
) -> bool:
    """Run a queued sync job to its end; False (and nothing done) if it was already claimed."""
    if not claim_job(session_factory, job_id):
        log.info("sync job %s already claimed, not running it again", job_id)
        return False
    with heartbeat(session_factory, job_id, heartbeat_seconds):
        _run_claimed_sync(
            session_factory, job_id, connection_id, box, timeout, lock_timeout, stale_after
        )
    return True


def _run_claimed_sync(
    session_factory: sessionmaker[Session],
    job_id: str,
    connection_id: int,
    box: SecretBox,
    timeout: float,
    lock_timeout: float,
    stale_after: float,
) -> None:
    spec = None
    locked = False
    try:
        locked = _lock_connection(session_factory, connection_id, job_id, lock_timeout, stale_after)
        with session_factory() as session:
            spec = connection_spec(get_connection(session, connection_id), box)

        def on_progress(session: Session, fraction: float) -> None:
            if is_cancelled(session_factory, job_id):
                raise JobCancelledError("The job was cancelled.")  # rolls back this chunk
            set_progress(session, job_id, fraction)

        stats = sync_connection(
            session_factory, connection_id, spec, timeout=timeout, on_progress=on_progress
        )
    except JobCancelledError:
        log.info("sync job %s cancelled", job_id)
    except FabricError as exc:
        log.warning("sync job %s failed: %s", job_id, exc.message)
        finish_job(session_factory, job_id, status="failed", error=exc.message)
    except Exception as exc:
        message = redact(
            f"Unexpected error: {type(exc).__name__}: {exc}", spec.secrets if spec else []
        )
        # No traceback: driver messages may quote connection details; the text is redacted.
        log.error("sync job %s crashed: %s", job_id, message)
        finish_job(session_factory, job_id, status="failed", error=message)
    else:
        finish_job(session_factory, job_id, status="success", stats=stats.as_dict())
    finally:
        if locked:
            _unlock_connection(session_factory, connection_id, job_id)


def _lock_connection(
    session_factory: sessionmaker[Session],
    connection_id: int,
    job_id: str,
    timeout: float,
    stale_after: float,
) -> bool:
    """Wait until this job holds the connection's sync lock (one sync per connection).

    The lock is a column on the connection row, taken with one conditional UPDATE, so it holds
    across service replicas. A lock whose job has ended (or vanished) is free.
    """
    holder_active = exists().where(
        Job.id == Connection.sync_lock, Job.status.not_in(TERMINAL_STATUSES)
    )
    deadline = time.monotonic() + timeout
    while True:
        # A holder whose worker died stops beating: failing it frees the lock.
        fail_stale_jobs(session_factory, stale_after)
        with session_factory.begin() as session:
            get_connection(session, connection_id)
            taken = session.execute(
                update(Connection)
                .where(
                    Connection.id == connection_id,
                    or_(Connection.sync_lock.is_(None), ~holder_active),
                )
                .values(sync_lock=job_id, sync_locked_at=utcnow())
                .execution_options(synchronize_session=False)
            ).rowcount
        if taken:
            return True
        if time.monotonic() > deadline:
            with session_factory() as session:
                holder = get_connection(session, connection_id).sync_lock
            raise ConflictError(
                f"Another sync of connection {connection_id} (job {holder}) is still running "
                f"after {timeout:.0f} s; try again when it has ended."
            )
        time.sleep(0.2)


def _unlock_connection(
    session_factory: sessionmaker[Session], connection_id: int, job_id: str
) -> None:
    with session_factory.begin() as session:
        session.execute(
            update(Connection)
            .where(Connection.id == connection_id, Connection.sync_lock == job_id)
            .values(sync_lock=None, sync_locked_at=None)
            .execution_options(synchronize_session=False)
        )
