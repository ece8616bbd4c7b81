"""The dataset service: builds unified datasets in a bounded pool and previews them."""

from __future__ import annotations

from fabric_core.datasets.jobs import check_dataset_request, run_dataset_job
from fabric_core.datasets.service import preview_request
from fabric_core.runtime import Runtime
from fabric_core.schemas import (
    DatasetJobRequest,
    DatasetPreview,
    DatasetPreviewRequest,
    DatasetRequest,
    JobAccepted,
    JobPublic,
)
from fabric_core.settings import Settings
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
from prometheus_client import Counter


class DatasetMetrics(JobServiceMetrics):
    def __init__(self) -> None:
        super().__init__("dataset")
        self.rows = Counter(
            "fabric_dataset_rows_written", "Rows written to datasets.", registry=self.registry
        )


def create_app(settings: Settings | None = None) -> FastAPI:
    metrics = DatasetMetrics()
    lifespan = job_service_lifespan(
        settings,
        pool="dataset_worker",
        slots=lambda s: s.dataset_workers,
        stopped="The dataset service stopped before this job started.",
    )

    app = FastAPI(
        title="Fabric dataset service",
        summary="Builds unified, versioned Parquet datasets and previews them.",
        version="0.1.0",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    install_common_routes(app, metrics, checks_storage=True)

    def run(runtime: Runtime, job_id: str) -> None:
        job = metrics.track(
            runtime,
            job_id,
            lambda: run_dataset_job(
                runtime.session_factory,
                job_id,
                box=runtime.box,
                settings=runtime.settings,
                storage=runtime.storage,
            ),
        )
        if job is not None:
            metrics.rows.inc(job.stats.get("rows_written", 0))

    @app.post(
        "/process-dataset-creation", status_code=202, response_model=JobAccepted, tags=["jobs"]
    )
    def process_dataset_creation(
        body: DatasetJobRequest, request: Request, session: SessionDep, runtime: RuntimeDep
    ) -> JobAccepted:
        """Accept a queued dataset job and build it in the background (never twice)."""
        dataset_request = DatasetRequest(**body.model_dump(exclude={"job_id"}))
        job = check_dataset_request(session, body.job_id, dataset_request)
        accepted = job.status == "queued"
        if accepted:
            request.app.state.workers.submit(body.job_id, run, runtime, body.job_id)
        return JobAccepted(job_id=job.id, status=job.status, accepted=accepted)

    @app.post("/preview-dataset-creation", response_model=DatasetPreview, tags=["datasets"])
    def preview_dataset_creation(
        body: DatasetPreviewRequest, session: SessionDep, runtime: RuntimeDep
    ) -> DatasetPreview:
        """The first rows of a dataset request, LIMIT pushed to the sources, nothing written."""
        return preview_request(
            session, body, runtime.box, timeout=runtime.settings.source_connect_timeout
        )

    @app.get("/status/{job_id}", response_model=JobPublic, tags=["jobs"])
    def status(job_id: str, runtime: RuntimeDep) -> JobPublic:
        """A job's status, progress (rows written / rows estimated), stats and error."""
        return JobPublic.model_validate(job_status(runtime, job_id))

    return app
