"""The gateway: Fabric's public REST API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fabric_core.orchestrators import create_orchestrator
from fabric_core.periodic import Periodic
from fabric_core.runtime import create_runtime
from fabric_core.settings import Settings, get_settings
from fabric_web.common import install_common_routes, install_error_handlers
from fabric_web.request_ids import install_request_ids
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from fabric_gateway.alerting import deliveries_counter, start_dispatcher
from fabric_gateway.audit_log import install_audit_log
from fabric_gateway.auth import install_authentication
from fabric_gateway.metrics import GatewayMetrics
from fabric_gateway.rate_limits import RateLimiter
from fabric_gateway.routers import (
    access,
    alerts,
    catalog,
    connections,
    datasets,
    drift,
    mappings,
    suggestions,
    value_suggestions,
)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime = create_runtime(settings)
        app.state.runtime = runtime
        app.state.admin_token = settings.resolved_admin_token()
        app.state.rate_limiter = RateLimiter(settings.rate_limit, settings.rate_limit_storage_url)
        orchestrator = create_orchestrator(runtime.settings, runtime.session_factory)
        app.state.orchestrator = orchestrator
        # Jobs a stopped gateway queued but never handed over are handed over again.
        sweep = Periodic("gateway-sweep", runtime.settings.sweep_seconds, orchestrator.recover)
        sweep.start()
        # Outbox events to the alert channels (every replica runs one; they share the work).
        app.state.alert_dispatcher, dispatch = start_dispatcher(runtime, alert_deliveries)
        try:
            yield
        finally:
            dispatch.stop()
            sweep.stop()
            orchestrator.shutdown()
            runtime.close()

    app = FastAPI(
        title="Fabric",
        summary="Register data connections, browse one catalog, build unified datasets.",
        version="0.1.0",
        lifespan=lifespan,
    )
    metrics = GatewayMetrics(app)
    alert_deliveries = deliveries_counter(metrics.registry)
    app.state.metrics = metrics
    install_error_handlers(app)
    install_authentication(app)  # inside the audit log, which records its refusals
    install_audit_log(app)
    if settings.cors_origins:
        # Bearer tokens are never sent by a browser on its own; CORS only lets the listed
        # origins' pages read answers.
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "X-Request-ID"],
            expose_headers=["X-Total-Count", "X-Request-ID", "Retry-After"],
        )
    install_common_routes(app, metrics, checks_storage=True)
    app.include_router(connections.router)
    app.include_router(catalog.router)
    app.include_router(mappings.router)
    app.include_router(value_suggestions.router)
    app.include_router(suggestions.router)
    app.include_router(datasets.router)
    app.include_router(access.router)
    app.include_router(alerts.router)
    app.include_router(drift.router)
    install_request_ids(app)

    @app.get("/", tags=["operations"])
    def root() -> dict[str, str]:
        """What this is and where to look next."""
        return {
            "name": "Fabric gateway",
            "version": "0.1.0",
            "docs": "/docs",
            "health": "/health",
            "api": "/api/data-connections",
        }

    return app
