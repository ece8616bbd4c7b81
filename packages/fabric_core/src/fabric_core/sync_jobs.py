"""Metadata sync as a job kind: queued by the gateway, run by a sync-service worker."""

from __future__ import annotations

import logging
import time
from typing import Any

from sqlalchemy import exists, or_, update
from sqlalchemy.orm import Session, sessionmaker

from fabric_core.catalog.sync import sync_connection
from fabric_core.connections import connection_spec, get_connection
from fabric_core.crypto import SecretBox
from fabric_core.drift.values import sample_value_drift
from fabric_core.errors import ConflictError
from fabric_core.job_kinds import SYNC
from fabric_core.job_runner import JobContext
from fabric_core.jobs import create_job, fail_stale_jobs
from fabric_core.models import Connection, Job, utcnow
from fabric_core.schemas import TERMINAL_STATUSES, SyncParams

log = logging.getLogger(__name__)


def queue_sync(
    session: Session,
    connection_id: int,
    *,
    orchestrator: str,
    retry_policy: dict[str, Any] | None = None,
) -> tuple[Job, Connection]:
    """Create the queued job ``sync_{connection_id}_{unix_ts}`` for a registered connection
    (``retry_policy``: see fabric_core.retry.policy_for; None: the settings' at run time)."""
    connection = get_connection(session, connection_id)
    params = SyncParams(connection_id=connection_id)
    job = create_job(
        session,
        kind=SYNC.name,
        id_prefix=SYNC.id_prefix(params),
        connection_id=connection_id,
        params=params.model_dump(),
        orchestrator=orchestrator,
        retry_policy=retry_policy,
    )
    return job, connection


def sync_secrets(session: Session, params: SyncParams, box: SecretBox) -> list[str | None]:
    return connection_spec(get_connection(session, params.connection_id), box).secrets


def sync_work(context: JobContext, params: SyncParams) -> dict:
    """Harvest the connection's source and store the diff, holding its sync lock."""
    session_factory = context.runtime.session_factory
    settings = context.runtime.settings
    connection_id = params.connection_id
    _lock_connection(
        session_factory,
        connection_id,
        context.job_id,
        settings.sync_lock_timeout,
        settings.job_stale_seconds,
    )
    try:
        with session_factory() as session:
            spec = connection_spec(
                get_connection(session, connection_id),
                context.runtime.box,
                context.runtime.source_policy,
            )
        context.add_secrets(spec.secrets)

        stats = sync_connection(
            session_factory,
            connection_id,
            spec,
            timeout=settings.source_connect_timeout,
            # Only a check, no job-row write: inside the catalog's transaction that would lock
            # the row (on SQLite the DB) against heartbeats and cancels until the commit.
            check_stop=context.raise_if_cancelled,
            circuits=context.runtime.circuits,
            job_id=context.job_id,
        )
        # After the catalog is stored and still under the lock: new codes of code columns.
        value_drift = sample_value_drift(
            session_factory,
            connection_id,
            spec,
            timeout=settings.source_connect_timeout,
            circuits=context.runtime.circuits,
            job_id=context.job_id,
            check_stop=context.raise_if_cancelled,
        )
        result = stats.as_dict() | {"value_drift": value_drift.as_dict()}
        # The job's success and the lock's release commit together: no other sync of the
        # connection starts while this one still looks running.
        with session_factory.begin() as session:
            context.succeed_in(session, result)
            _release(session, connection_id, context.job_id)
    finally:
        with session_factory.begin() as session:
            _release(session, connection_id, context.job_id)
    return result


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


def _release(session: Session, connection_id: int, job_id: str) -> None:
    """Free the connection's sync lock if this job holds it (a no-op otherwise)."""
    session.execute(
        update(Connection)
        .where(Connection.id == connection_id, Connection.sync_lock == job_id)
        .values(sync_lock=None, sync_locked_at=None)
        .execution_options(synchronize_session=False)
    )
