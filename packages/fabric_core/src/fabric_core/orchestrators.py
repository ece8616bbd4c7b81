"""Orchestrators run queued jobs. ``local`` is the embedded default: bounded thread pools in
the gateway process, sized like Airflow's pools, running the same task code as the DAGs."""

from __future__ import annotations

import logging
from concurrent.futures import Future
from typing import Any
from urllib.parse import quote

from sqlalchemy.orm import Session, sessionmaker

from fabric_core.clients import (
    DatasetServiceClient,
    SyncServiceClient,
    run_dataset_task,
    run_sync_task,
)
from fabric_core.errors import FabricError, ServiceUnavailableError
from fabric_core.jobs import finish_job
from fabric_core.pools import JobPool
from fabric_core.settings import Settings

log = logging.getLogger(__name__)


def airflow_run_url(settings: Settings, dag_id: str, run_id: str) -> str:
    """Where a run shows in the Airflow 3 UI."""
    base = settings.airflow_public_url.rstrip("/")
    return f"{base}/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}"


class LocalOrchestrator:
    """Runs job tasks in in-process pools of ``sync_pool_slots`` / ``dataset_pool_slots``."""

    name = "local"

    def __init__(self, settings: Settings, session_factory: sessionmaker[Session]) -> None:
        self.settings = settings
        self.session_factory = session_factory
        self._sync_pool = JobPool("sync_pool", settings.sync_pool_slots, session_factory)
        self._dataset_pool = JobPool("dataset_pool", settings.dataset_pool_slots, session_factory)

    def run_url(self, dag_id: str, run_id: str) -> str:
        return airflow_run_url(self.settings, dag_id, run_id)

    def submit_sync(self, job_id: str, connection_id: int) -> Future[None]:
        return self._sync_pool.submit(job_id, self._run_sync, job_id, connection_id)

    def submit_dataset(self, job_id: str, request: dict[str, Any]) -> Future[None]:
        return self._dataset_pool.submit(job_id, self._run_dataset, job_id, request)

    def _run_sync(self, job_id: str, connection_id: int) -> None:
        with SyncServiceClient(self.settings.resolved_sync_url) as client:
            self._run_task(
                self._sync_pool,
                job_id,
                run_sync_task,
                client,
                job_id,
                connection_id,
                poll_interval=self.settings.job_poll_interval,
            )

    def _run_dataset(self, job_id: str, request: dict[str, Any]) -> None:
        with DatasetServiceClient(self.settings.resolved_dataset_url) as client:
            self._run_task(
                self._dataset_pool,
                job_id,
                run_dataset_task,
                client,
                job_id,
                request,
                poll_interval=self.settings.job_poll_interval,
            )

    def _run_task(self, pool: JobPool, job_id: str, task, *args, **kwargs) -> None:
        try:
            task(*args, **kwargs)
        except ServiceUnavailableError as exc:
            if pool.stopping.is_set():
                return  # stopping together with the services, which may still finish it
            self._fail(job_id, exc.message)
        except FabricError as exc:
            self._fail(job_id, exc.message)
        except Exception as exc:
            self._fail(job_id, f"Unexpected error in the task: {type(exc).__name__}: {exc}")

    def _fail(self, job_id: str, message: str) -> None:
        # The service records its own failures; this records the ones it never saw.
        if finish_job(self.session_factory, job_id, status="failed", error=message):
            log.warning("job %s failed outside its service: %s", job_id, message)

    def shutdown(self) -> None:
        reason = "The gateway stopped before this job started; start it again."
        self._sync_pool.shutdown(reason)
        self._dataset_pool.shutdown(reason)


def create_orchestrator(
    settings: Settings, session_factory: sessionmaker[Session]
) -> LocalOrchestrator:
    if settings.orchestrator == "local":
        return LocalOrchestrator(settings, session_factory)
    raise FabricError(f"Unknown orchestrator {settings.orchestrator!r}.")
