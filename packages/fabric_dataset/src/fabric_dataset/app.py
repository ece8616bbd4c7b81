"""The dataset service: builds unified datasets in a bounded pool and previews them."""

from __future__ import annotations

from fabric_core.datasets.service import preview_request
from fabric_core.job_kinds import DATASET
from fabric_core.schemas import DatasetPreview, DatasetPreviewRequest
from fabric_core.settings import Settings
from fabric_web.common import RuntimeDep
from fabric_web.job_service import JobServiceMetrics, create_job_service
from fastapi import FastAPI


def create_app(settings: Settings | None = None) -> FastAPI:
    app = create_job_service(
        DATASET,
        settings,
        JobServiceMetrics("dataset"),
        title="Fabric dataset service",
        summary="Builds unified, versioned Parquet datasets and previews them.",
    )

    @app.post("/preview-dataset-creation", response_model=DatasetPreview, tags=["datasets"])
    def preview_dataset_creation(
        body: DatasetPreviewRequest, runtime: RuntimeDep
    ) -> DatasetPreview:
        """The first rows of a dataset request, LIMIT pushed to the sources, nothing written."""
        return preview_request(
            runtime.read_session_factory,
            body,
            runtime.box,
            runtime.source_policy,
            circuits=runtime.circuits,
        )

    return app
