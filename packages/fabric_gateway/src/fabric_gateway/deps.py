"""Dependency aliases of the gateway's routes."""

from typing import Annotated

from fabric_core.orchestrators import Orchestrator
from fastapi import Depends, Request


def get_orchestrator(request: Request) -> Orchestrator:
    return request.app.state.orchestrator


OrchestratorDep = Annotated[Orchestrator, Depends(get_orchestrator)]
