"""The one job runner: claims a queued job, keeps it alive, runs its kind's work, redacts and
records the outcome (queued again for a later attempt when its retry policy says so). Every
kind of job runs through :func:`run_job`."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from fabric_core.crypto import redact
from fabric_core.errors import FabricError, JobCancelledError
from fabric_core.job_kinds import JobKind
from fabric_core.jobs import (
    Pulse,
    claim_job,
    end_job,
    finish_job,
    get_job,
    heartbeat,
    set_progress,
    status_unless_running,
)
from fabric_core.retry import record_failed_attempt
from fabric_core.runtime import Runtime

log = logging.getLogger(__name__)


@dataclass
class JobContext:
    """What a kind's work function gets besides its params: the runtime and its own job."""

    kind: JobKind
    runtime: Runtime
    job_id: str
    ended: bool = False
    secrets: set[str] = field(default_factory=set, repr=False)
    heartbeat_lost: Pulse = field(default_factory=Pulse, repr=False)
    _checked_at: float = field(default=0.0, repr=False)

    def add_secrets(self, secrets: Iterable[str | None]) -> None:
        """Secrets the work uses besides those its kind named at the start (a password changed
        while the job waited): its errors are redacted of them too."""
        self.secrets.update(s for s in secrets if s)

    def raise_if_cancelled(self, min_interval: float = 0.0) -> None:
        """Stop the work when the job was cancelled, or its heartbeat could not be recorded for
        so long that it is about to be failed as stale; checks the DB at most every
        ``min_interval`` s."""
        if self.heartbeat_lost.is_set():
            raise JobCancelledError(
                "The job's heartbeat could not be recorded (metadata DB unreachable); it stops "
                "rather than finish work that would be thrown away."
            )
        now = time.monotonic()
        if now - self._checked_at < min_interval:
            return
        self._checked_at = now
        status = status_unless_running(self.runtime.read_session_factory, self.job_id)
        if status == "cancelled":
            raise JobCancelledError("The job was cancelled.")
        if status is not None:
            # Failed as stale (a heartbeat blocked longer than the stale window) or ended by
            # someone else: finishing would publish work for a job that already ended.
            raise JobCancelledError(f"The job ended ({status}) while its work ran; it stops.")

    def set_progress(self, fraction: float) -> None:
        with self.runtime.session_factory.begin() as session:
            set_progress(session, self.job_id, fraction)

    def succeed_in(self, session: Session, stats: dict[str, Any]) -> None:
        """End the job successfully inside ``session``'s transaction, so the job's success and
        what it made visible commit together.

        Raises:
            JobCancelledError: the job had been cancelled meanwhile (roll back the transaction).
        """
        if not end_job(session, self.job_id, status="success", stats=stats):
            raise JobCancelledError("The job was cancelled before its result was published.")
        self.ended = True


def run_job(kind: JobKind, runtime: Runtime, job_id: str) -> bool:
    """Run a queued job of ``kind`` to its end; False (and nothing done) if already claimed."""
    if not claim_job(runtime.session_factory, job_id):
        log.info("%s job %s already claimed, not running it again", kind.name, job_id)
        return False
    settings = runtime.settings
    with heartbeat(
        runtime.session_factory,
        job_id,
        settings.job_heartbeat_seconds,
        give_up_after=settings.job_stale_seconds * 0.75,
    ) as lost:
        context = JobContext(kind, runtime, job_id, heartbeat_lost=lost)
        try:
            with runtime.session_factory() as session:
                params = kind.params_of(get_job(session, job_id))
                context.add_secrets(kind.secrets_function()(session, params, runtime.box))
            stats = kind.work_function()(context, params)
        except JobCancelledError as exc:
            if lost.is_set():  # not cancelled: record why it stopped, if the DB takes it now
                _fail(runtime, kind, job_id, exc.message)
            else:
                log.info("%s job %s cancelled", kind.name, job_id)
        except FabricError as exc:
            _fail(
                runtime,
                kind,
                job_id,
                redact(exc.message, _longest_first(context.secrets)),
                retryable=exc.retryable,
                not_before=getattr(exc, "retry_at", None),
            )
        except Exception as exc:
            # No traceback: driver messages may quote connection details; the text is redacted.
            message = f"Unexpected error: {type(exc).__name__}: {exc}"
            _fail(
                runtime,
                kind,
                job_id,
                redact(message, _longest_first(context.secrets)),
                crashed=True,
            )
        else:
            if not context.ended and not finish_job(
                runtime.session_factory, job_id, status="success", stats=stats or {}
            ):
                log.info(
                    "%s job %s was cancelled as it ended; it stays cancelled", kind.name, job_id
                )
    return True


def _fail(
    runtime: Runtime,
    kind: JobKind,
    job_id: str,
    message: str,
    *,
    crashed: bool = False,
    retryable: bool = False,
    not_before: datetime | None = None,
) -> None:
    """End the attempt: the job is queued again for a later attempt when its error may pass
    and its retry policy leaves attempts, else it fails (see fabric_core.retry)."""
    try:
        outcome = record_failed_attempt(
            runtime.session_factory,
            runtime.settings,
            job_id,
            message,
            retryable=retryable,
            not_before=not_before,
        )
    except SQLAlchemyError as exc:  # the DB is away: the stale-job check will end it
        log.error("could not record the end of job %s: %s", job_id, type(exc).__name__)
        return
    if outcome == "retrying":
        return  # logged with its next attempt's time
    if crashed:
        log.error("%s job %s crashed: %s", kind.name, job_id, message)
    else:
        log.warning("%s job %s failed: %s", kind.name, job_id, message)


def _longest_first(secrets: set[str]) -> list[str]:
    # A secret inside another must not be replaced first, or part of the longer one shows.
    return sorted(secrets, key=len, reverse=True)
