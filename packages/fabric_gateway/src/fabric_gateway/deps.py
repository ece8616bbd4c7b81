"""Dependency aliases of the gateway's routes, and handing a queued job to the orchestrator."""

from typing import Annotated

from fabric_core.job_kinds import JobKind
from fabric_core.models import Job
from fabric_core.orchestrators import Orchestrator
from fabric_core.tokens import Principal
from fastapi import Depends, Request
from sqlalchemy.orm import Session


def get_orchestrator(request: Request) -> Orchestrator:
    return request.app.state.orchestrator


OrchestratorDep = Annotated[Orchestrator, Depends(get_orchestrator)]


def hand_over(session: Session, orchestrator: Orchestrator, kind: JobKind, job: Job) -> None:
    """Commit the queued job, then start it: a worker must find the row when it looks."""
    session.commit()
    orchestrator.submit(kind, job.id, job.params)


def record_requester(job: Job, principal: Principal) -> None:
    """Write on the job which token queued it."""
    job.requested_by_token_id = principal.token_id
    job.requested_by = principal.name
