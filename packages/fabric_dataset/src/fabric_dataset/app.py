"""The dataset service. Building and previewing unified datasets is not implemented yet:
those routes answer 501 so no caller mistakes them for working ones."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fabric_core.runtime import create_runtime
from fabric_core.settings import Settings, get_settings
from fabric_core.web import AppMetrics, install_common_routes, install_error_handlers
from fastapi import FastAPI
from fastapi.responses import JSONResponse

NOT_BUILT = "Unified dataset building is not implemented in this version of Fabric."


def create_app(settings: Settings | None = None) -> FastAPI:
    metrics = AppMetrics("dataset")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime = create_runtime(settings or get_settings())
        app.state.runtime = runtime
        try:
            yield
        finally:
            runtime.close()

    app = FastAPI(title="Fabric dataset service", version="0.1.0", lifespan=lifespan)
    install_error_handlers(app)
    install_common_routes(app, metrics, checks_storage=True)

    @app.post("/process-dataset-creation", tags=["jobs"])
    def process_dataset_creation() -> JSONResponse:
        """Not implemented yet (501)."""
        return JSONResponse({"detail": NOT_BUILT}, status_code=501)

    @app.post("/preview-dataset-creation", tags=["jobs"])
    def preview_dataset_creation() -> JSONResponse:
        """Not implemented yet (501)."""
        return JSONResponse({"detail": NOT_BUILT}, status_code=501)

    return app
