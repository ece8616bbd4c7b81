"""Orchestrators run queued jobs.

``local`` (the embedded default): bounded thread pools in the gateway process, sized like
Airflow's pools, running the same task code as the DAGs. ``airflow``: DAG runs triggered
through Airflow's REST API, whose pools bound the work.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from concurrent.futures import Future
from datetime import timedelta
from typing import Any
from urllib.parse import quote

from sqlalchemy import or_, select
from sqlalchemy.orm import Session, sessionmaker

from fabric_core.airflow_api import AirflowClient
from fabric_core.circuits import AIRFLOW_CIRCUIT, CircuitBreaker
from fabric_core.errors import FabricError, NotFoundError, ServiceUnavailableError
from fabric_core.job_kinds import JOB_KINDS, JobKind
from fabric_core.job_tasks import run_job_task
from fabric_core.jobs import finish_job
from fabric_core.models import Job, utcnow
from fabric_core.pools import JobPool
from fabric_core.settings import Settings

log = logging.getLogger(__name__)


def airflow_run_url(settings: Settings, dag_id: str, run_id: str) -> str:
    """Where a run shows in the Airflow 3 UI."""
    base = settings.airflow_public_url.rstrip("/")
    return f"{base}/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}"


class LocalOrchestrator:
    """Runs job tasks in in-process pools, one per kind, sized like Airflow's pools."""

    name = "local"

    def __init__(self, settings: Settings, session_factory: sessionmaker[Session]) -> None:
        self.settings = settings
        self.session_factory = session_factory
        self.circuits = CircuitBreaker.from_settings(session_factory, settings)
        self._pools = {
            kind.name: JobPool(kind.pool, kind.pool_slots(settings), session_factory)
            for kind in JOB_KINDS.values()
        }

    def run_url(self, kind: JobKind, run_id: str) -> str:
        return airflow_run_url(self.settings, kind.dag_id, run_id)

    def submit(self, kind: JobKind, job_id: str, params: Mapping[str, Any]) -> Future[None]:
        pool = self._pools[kind.name]
        return pool.submit(job_id, self._run_task, pool, kind, job_id, dict(params))

    def _run_task(self, pool: JobPool, kind: JobKind, job_id: str, params: dict[str, Any]) -> None:
        try:
            run_job_task(kind, job_id, params, settings=self.settings, circuits=self.circuits)
        except ServiceUnavailableError as exc:
            if pool.stopping.is_set():
                return  # stopping together with the services, which may still finish it
            # Given up on, as recovery gives up: the job could not be handed over, or the
            # service running it went silent for the whole hand-over window.
            self._fail(job_id, exc.message, stuck=f"its {kind.service} service did not answer")
        except FabricError as exc:
            self._fail(job_id, exc.message)
        except Exception as exc:
            self._fail(job_id, f"Unexpected error in the task: {type(exc).__name__}: {exc}")

    def _fail(self, job_id: str, message: str, stuck: str | None = None) -> None:
        # The service records its own failures; this records the ones it never saw.
        if finish_job(self.session_factory, job_id, status="failed", error=message, stuck=stuck):
            log.warning("job %s failed outside its service: %s", job_id, message)

    def recover(self) -> int:
        """Hand over again the local jobs left queued by a gateway that stopped (or a service
        that died before running them); returns how many."""
        recovered = 0
        for job in orphaned_jobs(self.session_factory, self.name, self.settings):
            kind = JOB_KINDS.get(job.kind)
            if kind is None or self._pools[kind.name].holds(job.id):
                continue  # still waiting for a slot of this process's pool
            log.warning("job %s was left queued; handing it over again", job.id)
            try:
                self.submit(kind, job.id, kind.params_of(job).model_dump())
            except FabricError as exc:  # this job only; the others are still recovered
                self._fail(
                    job.id,
                    f"Could not hand the job over again: {exc.message}",
                    stuck="could not be handed over again",
                )
                continue
            recovered += 1
        return recovered

    def run_state(self, kind: JobKind, job_id: str) -> None:
        return None  # no DAG runs: the job row says it all

    def cancel(self, kind: JobKind, job_id: str) -> None:
        """Nothing to stop here: the waiting task sees the cancelled job and returns."""

    def shutdown(self) -> None:
        reason = "The gateway stopped before this job started; start it again."
        for pool in self._pools.values():
            pool.shutdown(reason)


class AirflowOrchestrator:
    """Triggers DAG runs through Airflow's REST API; Airflow's pools bound the work."""

    name = "airflow"

    def __init__(self, settings: Settings, session_factory: sessionmaker[Session]) -> None:
        self.settings = settings
        self.session_factory = session_factory
        circuits = CircuitBreaker.from_settings(session_factory, settings)
        self.client = AirflowClient(
            settings.airflow_url,
            settings.airflow_username,
            settings.airflow_password,
            circuit=circuits.circuit(AIRFLOW_CIRCUIT),
        )

    def run_url(self, kind: JobKind, run_id: str) -> str:
        return airflow_run_url(self.settings, kind.dag_id, run_id)

    def submit(
        self, kind: JobKind, job_id: str, params: Mapping[str, Any], stuck: str | None = None
    ) -> None:
        """Trigger the job's DAG run; when that fails the job fails (``stuck``: why recovery
        gave up on it, for its ``job.stuck`` event)."""
        try:
            self.client.trigger_dag_run(kind.dag_id, job_id, kind.dag_conf(job_id, params))
        except FabricError as exc:
            message = exc.message
            if isinstance(exc, NotFoundError):
                message = (
                    f"Airflow has no DAG {kind.dag_id!r}: check its dags_folder and the DAG's "
                    f"import errors in the Airflow UI ({exc.message})"
                )
            finish_job(self.session_factory, job_id, status="failed", error=message, stuck=stuck)
            raise ServiceUnavailableError(f"Could not start job {job_id}: {message}") from None

    def recover(self) -> int:
        """Trigger the DAG runs of jobs queued by a gateway that stopped before triggering
        them; returns how many."""
        recovered = 0
        for job in orphaned_jobs(self.session_factory, self.name, self.settings):
            kind = JOB_KINDS.get(job.kind)
            if kind is None:
                continue
            try:
                run = self.client.dag_run(kind.dag_id, job.id)
            except NotFoundError:
                run = None
            except FabricError as exc:  # Airflow away for a moment: the next round tries
                log.warning("could not look up the DAG run of %s: %s", job.id, exc.message)
                continue
            if run is not None:
                if run.get("state") in ("success", "failed"):  # ended without running it
                    finish_job(
                        self.session_factory,
                        job.id,
                        status="failed",
                        error=f"Its DAG run ended ({run.get('state')}) without running it.",
                        stuck="its DAG run ended without running it",
                    )
                continue  # else Airflow's pool holds it
            log.warning("job %s has no DAG run; triggering it", job.id)
            try:
                self.submit(
                    kind,
                    job.id,
                    kind.params_of(job).model_dump(),
                    stuck="its DAG run could not be triggered again",
                )
            except FabricError:
                continue  # submit recorded why on the job
            recovered += 1
        return recovered

    def run_state(self, kind: JobKind, job_id: str) -> dict[str, Any]:
        """The DAG run's state as Airflow reports it (``unknown`` when Airflow is away)."""
        try:
            run = self.client.dag_run(kind.dag_id, job_id)
        except FabricError as exc:
            return {"dag_id": kind.dag_id, "state": "unknown", "error": exc.message}
        return {
            "dag_id": kind.dag_id,
            "state": run.get("state"),
            "url": self.run_url(kind, job_id),
        }

    def cancel(self, kind: JobKind, job_id: str) -> None:
        self.client.fail_dag_run(kind.dag_id, job_id)

    def shutdown(self) -> None:
        self.client.close()


def orphaned_jobs(
    session_factory: sessionmaker[Session], orchestrator: str, settings: Settings, limit: int = 100
) -> list[Job]:
    """Jobs of ``orchestrator`` queued for longer than ``job_handover_seconds`` and not handed
    over within that time either: perhaps left behind (the caller checks). A job waiting for
    its next attempt counts from that attempt's time: until then it is not left behind."""
    before = utcnow() - timedelta(seconds=settings.job_handover_seconds)
    with session_factory() as session:
        return list(
            session.scalars(
                select(Job)
                .where(
                    Job.status == "queued",
                    Job.orchestrator == orchestrator,
                    Job.created_at < before,
                    or_(Job.handed_over_at.is_(None), Job.handed_over_at < before),
                    or_(Job.next_attempt_at.is_(None), Job.next_attempt_at < before),
                )
                .order_by(Job.created_at)
                .limit(limit)
            )
        )


Orchestrator = LocalOrchestrator | AirflowOrchestrator


def create_orchestrator(settings: Settings, session_factory: sessionmaker[Session]) -> Orchestrator:
    if settings.orchestrator == "airflow":
        return AirflowOrchestrator(settings, session_factory)
    return LocalOrchestrator(settings, session_factory)
