"""Catalog tables and jobs."""

from __future__ import annotations

import logging
from typing import Literal

from fabric_core.catalog.browse import get_table
from fabric_core.catalog.values import column_values
from fabric_core.errors import FabricError
from fabric_core.job_kinds import JOB_KINDS
from fabric_core.jobs import cancel_job, fail_stale_jobs, get_job, list_jobs
from fabric_core.schemas import ColumnValues, JobPublic, JobStatus, TableDetail
from fabric_web.common import ReadSessionDep, RuntimeDep
from fabric_web.paging import PageDep, page_answer
from fastapi import APIRouter, Query, Response

from fabric_gateway.auth import EDITOR, VIEWER
from fabric_gateway.deps import OrchestratorDep

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api")


@router.get(
    "/tables/{table_id}", response_model=TableDetail, tags=["catalog"], dependencies=[VIEWER]
)
def table_detail(table_id: int, session: ReadSessionDep) -> TableDetail:
    """A table with its columns."""
    return get_table(session, table_id)


@router.get(
    "/columns/{column_id}/values",
    response_model=ColumnValues,
    tags=["catalog"],
    dependencies=[EDITOR],
)
def values(
    column_id: int,
    runtime: RuntimeDep,
    limit: int = Query(default=100, ge=1, le=1000),
) -> ColumnValues:
    """Distinct values of a column, read from its source (to write value mappings against)."""
    return column_values(
        runtime.read_session_factory,
        column_id,
        runtime.box,
        runtime.source_policy,
        limit=limit,
        circuits=runtime.circuits,
    )


JobKindName = Literal["sync", "dataset"]  # the names of JOB_KINDS (checked by a test)


@router.get("/jobs", response_model=list[JobPublic], tags=["jobs"], dependencies=[VIEWER])
def jobs(
    session: ReadSessionDep,
    page: PageDep,
    response: Response,
    connection_id: int | None = None,
    status: JobStatus | None = None,
    kind: JobKindName | None = None,
) -> list[JobPublic]:
    """Jobs, newest first (paged); only one connection's, status or kind when asked."""
    paged = list_jobs(session, connection_id=connection_id, status=status, kind=kind, page=page)
    return page_answer(response, paged.map(JobPublic.model_validate))


@router.get("/jobs/{job_id}", response_model=JobPublic, tags=["jobs"], dependencies=[VIEWER])
def job(
    job_id: str, session: ReadSessionDep, runtime: RuntimeDep, orchestrator: OrchestratorDep
) -> JobPublic:
    """A job's status, progress, stats, error and timestamps (and its DAG run's state)."""
    fail_stale_jobs(runtime.session_factory, runtime.settings.job_stale_seconds, job_id)
    found = get_job(session, job_id)
    public = JobPublic.model_validate(found)
    if found.orchestrator == orchestrator.name and found.kind in JOB_KINDS:
        public.dag_run = orchestrator.run_state(JOB_KINDS[found.kind], found.id)
    return public


@router.post(
    "/jobs/{job_id}/cancel", response_model=JobPublic, tags=["jobs"], dependencies=[EDITOR]
)
def cancel(job_id: str, runtime: RuntimeDep, orchestrator: OrchestratorDep) -> JobPublic:
    """Cancel a queued or running job: its DAG run is stopped and its service stops the work
    at the next batch boundary, removing what a dataset build wrote."""
    cancelled = cancel_job(runtime.session_factory, job_id)
    if cancelled.orchestrator == orchestrator.name and cancelled.kind in JOB_KINDS:
        try:
            orchestrator.cancel(JOB_KINDS[cancelled.kind], job_id)
        except FabricError as exc:  # the job row already says cancelled; the run ends anyway
            log.warning("could not stop the DAG run of %s: %s", job_id, exc.message)
    return JobPublic.model_validate(cancelled)
