"""The sync service: runs metadata sync jobs in a bounded pool of background workers."""

from __future__ import annotations

from fabric_core.job_kinds import SYNC
from fabric_core.settings import Settings
from fabric_web.job_service import JobServiceMetrics, create_job_service
from fastapi import FastAPI


def create_app(settings: Settings | None = None) -> FastAPI:
    return create_job_service(
        SYNC,
        settings,
        JobServiceMetrics("sync"),
        title="Fabric sync service",
        summary="Runs metadata sync jobs: harvest a source's catalog and store the diff.",
    )
