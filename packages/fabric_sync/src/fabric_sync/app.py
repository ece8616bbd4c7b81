"""The sync service: runs metadata sync jobs in a bounded pool of background workers."""

from __future__ import annotations

from fabric_core.runtime import Runtime
from fabric_core.schemas import JobAccepted, JobPublic, SyncJobRequest
from fabric_core.settings import Settings
from fabric_core.sync_jobs import check_sync_request, run_sync_job
from fabric_core.web import (
    JobServiceMetrics,
    RuntimeDep,
    SessionDep,
    install_common_routes,
    install_error_handlers,
    job_service_lifespan,
    job_status,
)
from fastapi import FastAPI, Request


def create_app(settings: Settings | None = None) -> FastAPI:
    metrics = JobServiceMetrics("sync")
    lifespan = job_service_lifespan(
        settings,
        pool="sync_worker",
        slots=lambda s: s.sync_workers,
        stopped="The sync service stopped before this job started.",
    )
    app = FastAPI(
        title="Fabric sync service",
        summary="Runs metadata sync jobs: harvest a source's catalog and store the diff.",
        version="0.1.0",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    install_common_routes(app, metrics, checks_storage=False)

    def run(runtime: Runtime, job_id: str, connection_id: int) -> None:
        metrics.track(
            runtime,
            job_id,
            lambda: run_sync_job(
                runtime.session_factory,
                job_id,
                connection_id,
                box=runtime.box,
                timeout=runtime.settings.source_connect_timeout,
                lock_timeout=runtime.settings.sync_lock_timeout,
                heartbeat_seconds=runtime.settings.job_heartbeat_seconds,
                stale_after=runtime.settings.job_stale_seconds,
            ),
        )

    @app.post("/process-sync", status_code=202, response_model=JobAccepted, tags=["jobs"])
    def process_sync(
        body: SyncJobRequest, request: Request, session: SessionDep, runtime: RuntimeDep
    ) -> JobAccepted:
        """Accept a queued sync job and run it in the background (a known job is not rerun)."""
        job = check_sync_request(session, body.job_id, body.connection_id)
        accepted = job.status == "queued"
        if accepted:
            request.app.state.workers.submit(
                body.job_id, run, runtime, body.job_id, body.connection_id
            )
        return JobAccepted(job_id=job.id, status=job.status, accepted=accepted)

    @app.get("/status/{job_id}", response_model=JobPublic, tags=["jobs"])
    def status(job_id: str, runtime: RuntimeDep) -> JobPublic:
        """A job's status, progress, stats and error."""
        return JobPublic.model_validate(job_status(runtime, job_id))

    return app
