"""Orchestrators run queued jobs.

``local`` (the embedded default): bounded thread pools in the gateway process, sized like
Airflow's pools, running the same task code as the DAGs. ``airflow``: DAG runs triggered
through Airflow's REST API, whose pools bound the work.
"""

from __future__ import annotations

import logging
from concurrent.futures import Future
from typing import Any
from urllib.parse import quote

from sqlalchemy.orm import Session, sessionmaker

from fabric_core.airflow_api import AirflowClient
from fabric_core.clients import (
    DatasetServiceClient,
    SyncServiceClient,
    run_dataset_task,
    run_sync_task,
)
from fabric_core.errors import FabricError, NotFoundError, ServiceUnavailableError
from fabric_core.jobs import DATASET_DAG_ID, SYNC_DAG_ID, finish_job
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

    def run_state(self, dag_id: str, job_id: str) -> None:
        return None  # no DAG runs: the job row says it all

    def cancel(self, dag_id: str, job_id: str) -> None:
        """Nothing to stop here: the waiting task sees the cancelled job and returns."""

    def shutdown(self) -> None:
        reason = "The gateway stopped before this job started; start it again."
        self._sync_pool.shutdown(reason)
        self._dataset_pool.shutdown(reason)


class AirflowOrchestrator:
    """Triggers DAG runs through Airflow's REST API; Airflow's pools bound the work."""

    name = "airflow"

    def __init__(self, settings: Settings, session_factory: sessionmaker[Session]) -> None:
        self.settings = settings
        self.session_factory = session_factory
        self.client = AirflowClient(
            settings.airflow_url, settings.airflow_username, settings.airflow_password
        )

    def run_url(self, dag_id: str, run_id: str) -> str:
        return airflow_run_url(self.settings, dag_id, run_id)

    def submit_sync(self, job_id: str, connection_id: int) -> None:
        self._trigger(SYNC_DAG_ID, job_id, {"job_id": job_id, "connection_id": connection_id})

    def submit_dataset(self, job_id: str, request: dict[str, Any]) -> None:
        self._trigger(DATASET_DAG_ID, job_id, {"job_id": job_id, "request": request})

    def _trigger(self, dag_id: str, job_id: str, conf: dict[str, Any]) -> None:
        try:
            self.client.trigger_dag_run(dag_id, job_id, conf)
        except FabricError as exc:
            message = exc.message
            if isinstance(exc, NotFoundError):
                message = (
                    f"Airflow has no DAG {dag_id!r}: check its dags_folder and the DAG's "
                    f"import errors in the Airflow UI ({exc.message})"
                )
            finish_job(self.session_factory, job_id, status="failed", error=message)
            raise ServiceUnavailableError(f"Could not start job {job_id}: {message}") from None

    def run_state(self, dag_id: str, job_id: str) -> dict[str, Any]:
        """The DAG run's state as Airflow reports it (``unknown`` when Airflow is away)."""
        try:
            run = self.client.dag_run(dag_id, job_id)
        except FabricError as exc:
            return {"dag_id": dag_id, "state": "unknown", "error": exc.message}
        return {"dag_id": dag_id, "state": run.get("state"), "url": self.run_url(dag_id, job_id)}

    def cancel(self, dag_id: str, job_id: str) -> None:
        self.client.fail_dag_run(dag_id, job_id)

    def shutdown(self) -> None:
        self.client.close()


Orchestrator = LocalOrchestrator | AirflowOrchestrator


def create_orchestrator(settings: Settings, session_factory: sessionmaker[Session]) -> Orchestrator:
    if settings.orchestrator == "airflow":
        return AirflowOrchestrator(settings, session_factory)
    return LocalOrchestrator(settings, session_factory)
