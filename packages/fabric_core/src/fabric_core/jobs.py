"""Persistent job records. Job state lives in the metadata DB, never only in memory."""

from __future__ import annotations

import contextvars
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from sqlalchemy import insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from fabric_core.db import READ_ONLY
from fabric_core.errors import ConflictError, NotFoundError
from fabric_core.job_events import record_job_failed
from fabric_core.job_kinds import JOB_KINDS
from fabric_core.models import Job, utcnow
from fabric_core.paging import Page, Paged
from fabric_core.schemas import TERMINAL_STATUSES

log = logging.getLogger(__name__)


def create_job(
    session: Session,
    *,
    kind: str,
    id_prefix: str,
    connection_id: int | None = None,
    dataset_name: str | None = None,
    params: dict[str, Any] | None = None,
    orchestrator: str | None = None,
    retry_policy: dict[str, Any] | None = None,
) -> Job:
    """Insert a queued job with id ``{id_prefix}_{unix_ts}``, unique even within one second.

    A second job in the same second gets ``_2``, ``_3``... appended; the database's primary
    key decides, so concurrent gateway replicas cannot hand out the same id.
    """
    base_id = f"{id_prefix}_{int(time.time())}"
    now = utcnow()
    for attempt in range(1, 1000):
        job_id = base_id if attempt == 1 else f"{base_id}_{attempt}"
        try:
            # A Core INSERT in a savepoint: the primary key, not the ORM, detects the clash.
            with session.begin_nested():
                session.execute(
                    insert(Job).values(
                        id=job_id,
                        kind=kind,
                        status="queued",
                        progress=0.0,
                        stats={},
                        params=params or {},
                        connection_id=connection_id,
                        dataset_name=dataset_name,
                        orchestrator=orchestrator,
                        retry_policy=retry_policy,
                        attempts=0,
                        created_at=now,
                        updated_at=now,
                    )
                )
        except IntegrityError:
            continue
        return session.get_one(Job, job_id)
    raise RuntimeError(f"No free job id after {base_id}_999")


def get_job(session: Session, job_id: str) -> Job:
    job = session.get(Job, job_id)
    if job is None:
        raise NotFoundError(f"No job with id {job_id!r}.")
    return job


def claim_job(session_factory: sessionmaker[Session], job_id: str) -> bool:
    """Move a queued job to running; False when it was already claimed or finished.

    One conditional UPDATE, so two workers given the same id never both run it.
    """
    now = utcnow()
    with session_factory.begin() as session:
        result = session.execute(
            update(Job)
            .where(Job.id == job_id, Job.status == "queued")
            .values(
                status="running",
                started_at=now,
                updated_at=now,
                attempts=Job.attempts + 1,
                error=None,
            )
        )
        return result.rowcount == 1


def accept_hand_over(
    session_factory: sessionmaker[Session], job_id: str, handover_seconds: float
) -> bool:
    """Record that a service took a queued job; True for exactly one caller per hand-over.

    A later caller is accepted only when the job is still queued ``handover_seconds`` after
    the last hand-over (the service that took it died before running it). A job waiting for
    its next attempt is not accepted before that attempt's time; accepting it clears the time.
    """
    now = utcnow()
    with session_factory.begin() as session:
        return (
            session.execute(
                update(Job)
                .where(
                    Job.id == job_id,
                    Job.status == "queued",
                    or_(
                        Job.handed_over_at.is_(None),
                        Job.handed_over_at < now - timedelta(seconds=handover_seconds),
                    ),
                    or_(Job.next_attempt_at.is_(None), Job.next_attempt_at <= now),
                )
                .values(handed_over_at=now, next_attempt_at=None)
                .execution_options(synchronize_session=False)
            ).rowcount
            == 1
        )


def set_progress(session: Session, job_id: str, progress: float) -> None:
    session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status == "running")
        .values(progress=round(progress, 4), updated_at=utcnow())
    )


def end_job(
    session: Session,
    job_id: str,
    *,
    status: str,
    stats: dict[str, Any] | None = None,
    error: str | None = None,
    only_if: tuple[Any, ...] = (),
    stuck: str | None = None,
) -> bool:
    """End a job in ``session``'s transaction, with what its kind ties to its end (a dataset's
    and its version's states) and, when it failed, its ``job.failed`` event (and ``job.stuck``
    when ``stuck`` says why recovery gave up on it); False when it had already ended (the
    first end wins)."""
    assert status in TERMINAL_STATUSES, status
    now = utcnow()
    values: dict[str, Any] = {
        "status": status,
        "finished_at": now,
        "updated_at": now,
        "next_attempt_at": None,  # an ended job is never tried again
    }
    if status == "success":
        values["progress"] = 1.0
    if stats is not None:
        values["stats"] = stats
    if error is not None:
        values["error"] = error
    ended = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status.not_in(TERMINAL_STATUSES), *only_if)
        .values(**values)
        .execution_options(synchronize_session=False)
    ).rowcount
    if not ended:
        return False
    job = session.get_one(Job, job_id)
    kind = JOB_KINDS.get(job.kind)
    if kind is not None and kind.on_end is not None:
        kind.on_end_function()(session, job, status)
    if status == "failed":
        record_job_failed(session, job, error, stuck)
    return True


def finish_job(
    session_factory: sessionmaker[Session],
    job_id: str,
    *,
    status: str,
    stats: dict[str, Any] | None = None,
    error: str | None = None,
    stuck: str | None = None,
) -> bool:
    """Record a job's end in a transaction of its own (see :func:`end_job`)."""
    with session_factory.begin() as session:
        return end_job(session, job_id, status=status, stats=stats, error=error, stuck=stuck)


def list_jobs(
    session: Session,
    *,
    connection_id: int | None = None,
    status: str | None = None,
    kind: str | None = None,
    page: Page = Page(),
) -> Paged[Job]:
    """Jobs, newest first, of one connection, status or kind when given."""
    query = select(Job).order_by(Job.created_at.desc(), Job.id)
    if connection_id is not None:
        query = query.where(Job.connection_id == connection_id)
    if status is not None:
        query = query.where(Job.status == status)
    if kind is not None:
        query = query.where(Job.kind == kind)
    return Paged(page.scalars(session, query), page.total(session, query))


def active_job_count(session: Session, connection_id: int) -> int:
    return len(
        session.scalars(
            select(Job.id).where(
                Job.connection_id == connection_id, Job.status.in_(("queued", "running"))
            )
        ).all()
    )


def status_unless_running(session_factory: sessionmaker[Session], job_id: str) -> str | None:
    """The job's status when it is no longer running (cancelled, or failed as stale while its
    worker went on), else None: a worker stops work that can no longer count."""
    with session_factory() as session:
        status = session.scalar(select(Job.status).where(Job.id == job_id))
    return None if status == "running" else status


def cancel_job(session_factory: sessionmaker[Session], job_id: str) -> Job:
    """Mark a queued or running job cancelled; its worker stops at the next batch boundary."""
    with session_factory() as session:
        job = get_job(session, job_id)
        if job.status in TERMINAL_STATUSES:
            raise ConflictError(f"Job {job_id} has already ended ({job.status}).")
    if not finish_job(session_factory, job_id, status="cancelled", error="Cancelled on request."):
        with session_factory() as session:
            status = get_job(session, job_id).status
        raise ConflictError(f"Job {job_id} ended ({status}) before it could be cancelled.")
    with session_factory() as session:
        return get_job(session, job_id)


class Pulse:
    """Whether a job's heartbeat still lands: lost once no beat has landed for
    ``give_up_after`` seconds, whether the beats fail or block (a DB call that hangs raises
    nothing), or when :meth:`set` says so. Reads like a :class:`threading.Event`."""

    def __init__(self, give_up_after: float | None = None) -> None:
        self.give_up_after = give_up_after
        self._last_beat = time.monotonic()
        self._given_up = threading.Event()

    def beat(self) -> None:
        self._last_beat = time.monotonic()

    def set(self) -> None:
        self._given_up.set()

    def is_set(self) -> bool:
        if self._given_up.is_set():
            return True
        silent = time.monotonic() - self._last_beat
        return self.give_up_after is not None and silent > self.give_up_after

    def wait(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not self.is_set():
            if time.monotonic() >= deadline:
                return False
            time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))
        return True


@contextmanager
def heartbeat(
    session_factory: sessionmaker[Session],
    job_id: str,
    interval: float,
    *,
    give_up_after: float | None = None,
) -> Iterator[Pulse]:
    """Mark the running job alive every ``interval`` seconds while the block runs.

    A job whose worker died (a killed service) stops beating, and :func:`fail_stale_jobs`
    ends it instead of leaving it ``running`` forever. A beat that fails (the metadata DB
    away for a moment) is logged and tried again sooner. When no beat has landed for
    ``give_up_after`` seconds (failing or blocked) the yielded pulse is set, and the work
    should stop: the job is about to be failed as stale, and its result would be thrown away.
    """
    stop = threading.Event()
    pulse = Pulse(give_up_after if give_up_after is not None else 4 * interval)

    def beat() -> None:
        wait = interval
        while not stop.wait(wait):
            try:
                with session_factory.begin() as session:
                    session.execute(
                        update(Job)
                        .where(Job.id == job_id, Job.status == "running")
                        .values(updated_at=utcnow())
                    )
            except Exception as exc:  # any DB error: keep trying until it is too late
                log.warning("heartbeat of job %s failed: %s", job_id, type(exc).__name__)
                wait = min(interval, max(0.5, wait / 2))
                continue
            pulse.beat()
            wait = interval

    # In the job's log context, so its warnings name the job's request and DAG run.
    thread = threading.Thread(
        target=contextvars.copy_context().run, args=(beat,), name=f"heartbeat-{job_id}", daemon=True
    )
    thread.start()
    try:
        yield pulse
    finally:
        stop.set()
        # A beat blocked in the DB must not hold up the job's end: the daemon thread ends
        # when its call returns or errs (the metadata statement timeout bounds it).
        thread.join(timeout=max(1.0, interval))


def fail_stale_jobs(
    session_factory: sessionmaker[Session], stale_after: float, job_id: str | None = None
) -> int:
    """Fail running jobs whose worker has not been heard of for ``stale_after`` seconds."""
    cutoff = utcnow() - timedelta(seconds=stale_after)
    stale_now = (Job.status == "running", Job.updated_at < cutoff)
    query = select(Job.id).where(*stale_now)
    if job_id is not None:
        query = query.where(Job.id == job_id)
    # Looked for read-only first: this runs on every status poll, and on SQLite a write
    # transaction would queue for the write lock behind a sync storing its catalog.
    with session_factory() as session:
        session.connection(execution_options={READ_ONLY: True})
        stale = session.scalars(query).all()
    if not stale:
        return 0
    error = (
        f"Its worker stopped answering (no heartbeat for {stale_after:.0f} s): the service was "
        "stopped or crashed while running it. Start the job again."
    )
    with session_factory.begin() as session:
        # Still stale when ending it: a beat that landed meanwhile keeps the job running.
        return sum(
            end_job(
                session,
                stale_id,
                status="failed",
                error=error,
                only_if=stale_now,
                stuck="no heartbeat from its worker",
            )
            for stale_id in stale
        )
