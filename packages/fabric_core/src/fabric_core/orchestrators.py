"""Orchestrators run queued jobs. ``local`` is the embedded default: bounded thread pools in
the gateway process, sized like Airflow's pools, running the same task code as the DAGs."""

from __future__ import annotations

import logging
from concurrent.futures import Future, ThreadPoolExecutor
from urllib.parse import quote

from sqlalchemy.orm import Session, sessionmaker

from fabric_core.clients import SyncServiceClient, run_sync_task
from fabric_core.errors import FabricError
from fabric_core.jobs import SYNC_DAG_ID, finish_job
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
        self._sync_pool = ThreadPoolExecutor(
            max_workers=settings.sync_pool_slots, thread_name_prefix="sync_pool"
        )

    def run_url(self, dag_id: str, run_id: str) -> str:
        return airflow_run_url(self.settings, dag_id, run_id)

    def submit_sync(self, job_id: str, connection_id: int) -> Future[None]:
        return self._sync_pool.submit(self._run_sync, job_id, connection_id)

    def _run_sync(self, job_id: str, connection_id: int) -> None:
        with SyncServiceClient(self.settings.resolved_sync_url) as client:
            try:
                run_sync_task(
                    client,
                    job_id,
                    connection_id,
                    poll_interval=self.settings.job_poll_interval,
                )
            except FabricError as exc:
                # The service records its own failures; this catches the ones it never saw.
                if finish_job(self.session_factory, job_id, status="failed", error=exc.message):
                    log.warning("sync job %s failed before the service ran it: %s", job_id, exc)
            except Exception as exc:
                finish_job(
                    self.session_factory,
                    job_id,
                    status="failed",
                    error=f"Unexpected error while running the task: {type(exc).__name__}: {exc}",
                )

    def shutdown(self, wait: bool = True) -> None:
        self._sync_pool.shutdown(wait=wait, cancel_futures=not wait)


def create_orchestrator(
    settings: Settings, session_factory: sessionmaker[Session]
) -> LocalOrchestrator:
    if settings.orchestrator == "local":
        return LocalOrchestrator(settings, session_factory)
    raise FabricError(f"Unknown orchestrator {settings.orchestrator!r}.")


__all__ = ["SYNC_DAG_ID", "LocalOrchestrator", "airflow_run_url", "create_orchestrator"]
