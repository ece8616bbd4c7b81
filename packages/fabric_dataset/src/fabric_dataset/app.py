"""The dataset service: builds unified datasets in a bounded pool and previews them."""

from __future__ import annotations

from fabric_core.datasets.service import preview_request
from fabric_core.job_kinds import DATASET
from fabric_core.models import Job
from fabric_core.schemas import DatasetPreview, DatasetPreviewRequest
from fabric_core.settings import Settings
from fabric_web.common import RuntimeDep
from fabric_web.job_service import JobServiceMetrics, create_job_service
from fastapi import FastAPI
from prometheus_client import Counter


class DatasetMetrics(JobServiceMetrics):
    def __init__(self) -> None:
        super().__init__("dataset")
        self.rows = Counter(
            "fabric_dataset_rows_written", "Rows written to datasets.", registry=self.registry
        )

    def count_rows(self, job: Job) -> None:
        self.rows.inc(job.stats.get("rows_written", 0))


def create_app(settings: Settings | None = None) -> FastAPI:
    metrics = DatasetMetrics()
    app = create_job_service(
        DATASET,
        settings,
        metrics,
        title="Fabric dataset service",
        summary="Builds unified, versioned Parquet datasets and previews them.",
        after_job=metrics.count_rows,
    )

    @app.post("/preview-dataset-creation", response_model=DatasetPreview, tags=["datasets"])
    def preview_dataset_creation(
        body: DatasetPreviewRequest, runtime: RuntimeDep
    ) -> DatasetPreview:
        """The first rows of a dataset request, LIMIT pushed to the sources, nothing written."""
        return preview_request(
            runtime.read_session_factory, body, runtime.box, runtime.source_policy
        )

    return app
