"""The task the local orchestrator runs for a job, whatever its kind: hand the job to its
service and wait for its end while holding a pool slot, handing it over again when a retry is
due. The Airflow DAGs do the same in a deferrable operator (fabric_core.airflow_operator),
with the same rule for hand-overs (:func:`fabric_core.polling.needs_hand_over`)."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from fabric_core.circuits import CircuitBreaker, service_circuit
from fabric_core.clients import ServiceClient
from fabric_core.db import create_metadata_engine, create_session_factory
from fabric_core.errors import JobFailedError, ServiceUnavailableError
from fabric_core.job_kinds import JobKind
from fabric_core.jobs import finish_job
from fabric_core.polling import needs_hand_over, wait_for_job_end
from fabric_core.settings import Settings, get_settings

log = logging.getLogger(__name__)


def run_job_task(
    kind: JobKind,
    job_id: str,
    params: Mapping[str, Any],
    *,
    settings: Settings | None = None,
    service_url: str | None = None,
    service_token: str | None = None,
    circuits: CircuitBreaker | None = None,
) -> dict[str, Any]:
    """Submit the job to its service and wait until it ends; returns its final status.

    ``service_url`` and ``service_token`` default to the settings' (an Airflow task passes
    those of its HTTP connection); with ``circuits`` the hand-overs go through the service's
    circuit breaker (the gateway's local orchestrator), and status polls that get an answer
    close it (silence while waiting has its own window below, so a service restarting under
    running jobs does not open the circuit to new ones).

    Raises:
        JobFailedError: the job ended failed or cancelled (not retryable; says why).
        ServiceUnavailableError: the service did not answer (retryable).
        FabricError: the service refused the job (not retryable).
    """
    settings = settings or get_settings()
    url = service_url or kind.service_url(settings)
    circuit = circuits.circuit(service_circuit(kind.service)) if circuits else None
    token = service_token or settings.resolved_service_token()
    with ServiceClient(url, token, circuit=circuit) as client:
        client.submit_job(kind, job_id, params)
        handed_over = time.time()

        silent_since: float | None = None

        def status_of_job() -> dict[str, Any]:
            nonlocal handed_over, silent_since
            try:
                status = client.job_status(job_id)
            except ServiceUnavailableError:
                # A service restarting: wait for it as long as a hand-over may take; a job
                # it was running is failed as stale meanwhile, one it had not started is
                # handed over again below.
                silent_since = silent_since or time.monotonic()
                if time.monotonic() - silent_since > settings.job_handover_seconds:
                    raise
                return {"id": job_id, "status": "unknown"}
            silent_since = None
            # Queued again for a later attempt that is now due, or still queued long after the
            # hand-over (the service that took it died before running it): hand it over again.
            # The service accepts one hand-over, and never before the attempt's time.
            if needs_hand_over(status, handed_over, settings.job_handover_seconds, time.time()):
                client.submit_job(kind, job_id, params)
                handed_over = time.time()
            return status

        status = wait_for_job_end(status_of_job, poll_interval=settings.job_poll_interval)
    if status["status"] != "success":
        raise JobFailedError(f"Job {status['id']} {status['status']}: {status.get('error')}")
    return status


def record_task_failure(job_id: str, reason: str, settings: Settings | None = None) -> bool:
    """Record a task's final failure on the job row (no-op if the job has already ended)."""
    settings = settings or get_settings()
    engine = create_metadata_engine(
        settings.resolved_database_url,
        connect_timeout=settings.metadata_connect_timeout,
        statement_timeout=settings.metadata_statement_timeout,
    )
    try:
        ended = finish_job(
            create_session_factory(engine), job_id, status="failed", error=reason[:4000]
        )
    finally:
        engine.dispose()
    if ended:
        log.warning("job %s marked failed: %s", job_id, reason)
    return ended
