"""What the Airflow DAG tasks run: the same task code as the local orchestrator.

Airflow is not imported here (fabric_core does not depend on it); the DAG files turn
:class:`PermanentTaskError` into Airflow's fail-now exception and let every other error retry.
"""

from __future__ import annotations

import logging
from typing import Any

from fabric_core.clients import (
    DatasetServiceClient,
    SyncServiceClient,
    run_dataset_task,
    run_sync_task,
)
from fabric_core.errors import FabricError
from fabric_core.settings import Settings, get_settings

log = logging.getLogger(__name__)


class PermanentTaskError(Exception):
    """Trying again cannot help (bad input, refused credentials, a failed or cancelled job)."""


def _guard(call):
    try:
        return call()
    except FabricError as exc:
        if exc.retryable:
            raise  # Airflow retries with exponential backoff
        raise PermanentTaskError(exc.message) from exc


def sync_connection_task(
    job_id: str, connection_id: int, *, sync_url: str | None = None
) -> dict[str, Any]:
    """Submit the sync job to the sync service and wait for it, holding the pool slot."""
    settings = get_settings()
    url = sync_url or settings.resolved_sync_url
    with SyncServiceClient(url) as client:
        return _guard(
            lambda: run_sync_task(
                client, job_id, connection_id, poll_interval=settings.job_poll_interval
            )
        )


def create_dataset_task(
    job_id: str, request: dict[str, Any], *, dataset_url: str | None = None
) -> dict[str, Any]:
    """Submit the dataset job to the dataset service and wait for it, holding the pool slot."""
    settings = get_settings()
    url = dataset_url or settings.resolved_dataset_url
    with DatasetServiceClient(url) as client:
        return _guard(
            lambda: run_dataset_task(
                client, job_id, request, poll_interval=settings.job_poll_interval
            )
        )


def mark_job_failed(job_id: str, reason: str, settings: Settings | None = None) -> bool:
    """Record a task's final failure on the job row (no-op if the job has already ended)."""
    from fabric_core.db import create_metadata_engine, create_session_factory
    from fabric_core.jobs import finish_job

    settings = settings or get_settings()
    engine = create_metadata_engine(settings.resolved_database_url)
    try:
        ended = finish_job(
            create_session_factory(engine), job_id, status="failed", error=reason[:4000]
        )
    finally:
        engine.dispose()
    if ended:
        log.warning("job %s marked failed: %s", job_id, reason)
    return ended
