"""The sync service: runs metadata sync jobs in a bounded pool of background workers."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fabric_core.jobs import get_job
from fabric_core.pools import JobPool
from fabric_core.runtime import Runtime, create_runtime
from fabric_core.schemas import JobAccepted, JobPublic, SyncJobRequest
from fabric_core.settings import Settings, get_settings
from fabric_core.sync_jobs import check_sync_request, run_sync_job
from fabric_core.web import (
    AppMetrics,
    RuntimeDep,
    SessionDep,
    install_common_routes,
    install_error_handlers,
)
from fastapi import FastAPI, Request
from prometheus_client import Counter, Gauge, Histogram


class SyncMetrics(AppMetrics):
    def __init__(self) -> None:
        super().__init__("sync")
        self.jobs = Counter(
            "fabric_sync_jobs", "Sync jobs ended, by outcome.", ["status"], registry=self.registry
        )
        self.running = Gauge(
            "fabric_sync_jobs_running", "Sync jobs running now.", registry=self.registry
        )
        self.duration = Histogram(
            "fabric_sync_job_duration_seconds", "Time a sync job ran.", registry=self.registry
        )


def create_app(settings: Settings | None = None) -> FastAPI:
    metrics = SyncMetrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime = create_runtime(settings or get_settings())
        app.state.runtime = runtime
        app.state.workers = JobPool(
            "sync_worker", runtime.settings.sync_workers, runtime.session_factory
        )
        try:
            yield
        finally:
            app.state.workers.shutdown("The sync service stopped before this job started.")
            runtime.close()

    app = FastAPI(
        title="Fabric sync service",
        summary="Runs metadata sync jobs: harvest a source's catalog and store the diff.",
        version="0.1.0",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    install_common_routes(app, metrics, checks_storage=False)

    def run(runtime: Runtime, job_id: str, connection_id: int) -> None:
        started = time.perf_counter()
        metrics.running.inc()
        try:
            ran = run_sync_job(
                runtime.session_factory,
                job_id,
                connection_id,
                box=runtime.box,
                timeout=runtime.settings.source_connect_timeout,
                lock_timeout=runtime.settings.sync_lock_timeout,
            )
        finally:
            metrics.running.dec()
        if ran:
            metrics.duration.observe(time.perf_counter() - started)
            with runtime.session_factory() as session:
                metrics.jobs.labels(get_job(session, job_id).status).inc()

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
    def job_status(job_id: str, session: SessionDep) -> JobPublic:
        """A job's status, progress, stats and error."""
        return JobPublic.model_validate(get_job(session, job_id))

    return app
