"""Catalog tables and jobs."""

from __future__ import annotations

from fabric_core.catalog.browse import get_table
from fabric_core.jobs import get_job, list_jobs
from fabric_core.schemas import JobPublic, TableDetail
from fabric_core.web import SessionDep
from fastapi import APIRouter, Query

router = APIRouter(prefix="/api")


@router.get("/tables/{table_id}", response_model=TableDetail, tags=["catalog"])
def table_detail(table_id: int, session: SessionDep) -> TableDetail:
    """A table with its columns."""
    return get_table(session, table_id)


@router.get("/jobs", response_model=list[JobPublic], tags=["jobs"])
def jobs(
    session: SessionDep,
    connection_id: int | None = None,
    limit: int = Query(default=100, ge=1, le=1000),
) -> list[JobPublic]:
    """Recent jobs, newest first."""
    return [
        JobPublic.model_validate(job)
        for job in list_jobs(session, connection_id=connection_id, limit=limit)
    ]


@router.get("/jobs/{job_id}", response_model=JobPublic, tags=["jobs"])
def job(job_id: str, session: SessionDep) -> JobPublic:
    """A job's status, progress, stats, error and timestamps."""
    return JobPublic.model_validate(get_job(session, job_id))
