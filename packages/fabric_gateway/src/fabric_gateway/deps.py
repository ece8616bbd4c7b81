"""Dependency aliases of the gateway's routes."""

from typing import Annotated

from fabric_core.orchestrators import LocalOrchestrator
from fastapi import Depends, Request


def get_orchestrator(request: Request) -> LocalOrchestrator:
    return request.app.state.orchestrator


OrchestratorDep = Annotated[LocalOrchestrator, Depends(get_orchestrator)]
