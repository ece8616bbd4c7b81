"""What every Fabric FastAPI app shares: lifespan runtime, error mapping, health, metrics.

Only the service packages import this module (they depend on FastAPI; fabric_core does not).
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from sqlalchemy.exc import DataError, SQLAlchemyError
from sqlalchemy.orm import Session

from fabric_core.db import session_scope
from fabric_core.errors import (
    ConflictError,
    FabricError,
    InvalidInputError,
    NotFoundError,
    ServiceUnavailableError,
    SourceError,
)
from fabric_core.jobs import fail_stale_jobs, get_job
from fabric_core.models import Job
from fabric_core.pools import JobPool
from fabric_core.runtime import Runtime, create_runtime
from fabric_core.settings import Settings, get_settings

log = logging.getLogger(__name__)

_STATUS_BY_ERROR: list[tuple[type[FabricError], int]] = [
    (NotFoundError, 404),
    (ConflictError, 409),
    (InvalidInputError, 422),
    (SourceError, 422),
    (ServiceUnavailableError, 503),
]


def status_for(error: FabricError) -> int:
    for error_class, status in _STATUS_BY_ERROR:
        if isinstance(error, error_class):
            return status
    return 500


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(OverflowError)
    @app.exception_handler(DataError)
    async def _out_of_range(_request: Request, exc: Exception) -> JSONResponse:
        # An id or value the database cannot hold (e.g. an integer beyond 64 bits).
        return JSONResponse({"detail": "A value is out of range."}, status_code=422)

    @app.exception_handler(FabricError)
    async def _fabric_error(_request: Request, exc: FabricError) -> JSONResponse:
        status = status_for(exc)
        if status >= 500:
            log.error("%s: %s", type(exc).__name__, exc.message)
        return JSONResponse({"detail": exc.message}, status_code=status)


def get_runtime(request: Request) -> Runtime:
    return request.app.state.runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def get_session(runtime: RuntimeDep) -> Iterator[Session]:
    """A session per request, committed when the handler returns without error."""
    with session_scope(runtime.session_factory) as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]


class AppMetrics:
    """Prometheus metrics of one app, in its own registry (several apps share a process)."""

    def __init__(self, service: str) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "fabric_http_requests",
            "HTTP requests answered, by route and status.",
            ["service", "method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "fabric_http_request_duration_seconds",
            "Time to answer HTTP requests.",
            ["service", "route"],
            registry=self.registry,
        )
        self.service = service

    def render(self) -> PlainTextResponse:
        return PlainTextResponse(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)


def install_common_routes(app: FastAPI, metrics: AppMetrics, *, checks_storage: bool) -> None:
    """``GET /health`` (DB and storage, 503 when down), ``GET /metrics`` and request counting."""

    @app.middleware("http")
    async def _count_requests(request: Request, call_next):
        started = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        template = getattr(route, "path", "unmatched")
        metrics.requests.labels(
            metrics.service, request.method, template, str(response.status_code)
        ).inc()
        metrics.latency.labels(metrics.service, template).observe(time.perf_counter() - started)
        return response

    @app.get("/health", tags=["operations"])
    def health(runtime: RuntimeDep) -> JSONResponse:
        """Whether this service can reach its metadata DB (and storage)."""
        checks: dict[str, str] = {}
        try:
            runtime.check_database()
            checks["database"] = "ok"
        except Exception as exc:
            checks["database"] = f"error: {type(exc).__name__}"
        if checks_storage:
            try:
                runtime.check_storage()
                checks["storage"] = "ok"
            except OSError as exc:
                checks["storage"] = f"error: {exc.strerror or type(exc).__name__}"
        healthy = all(value == "ok" for value in checks.values())
        return JSONResponse(
            {"status": "ok" if healthy else "unavailable", "service": metrics.service, **checks},
            status_code=200 if healthy else 503,
        )

    @app.get("/metrics", tags=["operations"])
    def prometheus_metrics() -> PlainTextResponse:
        """Prometheus text format."""
        return metrics.render()


class JobServiceMetrics(AppMetrics):
    """Request metrics plus jobs ended (by outcome), running now, and their durations."""

    def __init__(self, service: str) -> None:
        super().__init__(service)
        self.jobs = Counter(
            f"fabric_{service}_jobs",
            f"{service} jobs ended, by outcome.",
            ["status"],
            registry=self.registry,
        )
        self.running = Gauge(
            f"fabric_{service}_jobs_running",
            f"{service} jobs running now.",
            registry=self.registry,
        )
        self.duration = Histogram(
            f"fabric_{service}_job_duration_seconds",
            f"Time a {service} job ran.",
            registry=self.registry,
        )

    def track(self, runtime: Runtime, job_id: str, work: Callable[[], bool]) -> Job | None:
        """Run ``work`` (False: the job had already been claimed) and count its outcome."""
        started = time.perf_counter()
        self.running.inc()
        try:
            ran = work()
        finally:
            self.running.dec()
        if not ran:
            return None
        self.duration.observe(time.perf_counter() - started)
        with runtime.session_factory() as session:
            job = get_job(session, job_id)
        self.jobs.labels(job.status).inc()
        return job


def job_status(runtime: Runtime, job_id: str) -> Job:
    """A job as its service reports it; a running job whose worker died is failed first."""
    fail_stale_jobs(runtime.session_factory, runtime.settings.job_stale_seconds, job_id)
    with runtime.session_factory() as session:
        return get_job(session, job_id)


def job_service_lifespan(
    settings: Settings | None, *, pool: str, slots: Callable[[Settings], int], stopped: str
):
    """A lifespan that opens the runtime and a bounded worker pool, and closes both."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime = create_runtime(settings or get_settings())
        app.state.runtime = runtime
        app.state.workers = JobPool(pool, slots(runtime.settings), runtime.session_factory)
        try:
            fail_stale_jobs(runtime.session_factory, runtime.settings.job_stale_seconds)
        except SQLAlchemyError as exc:  # the DB may be down: /health says so, start anyway
            log.warning("could not check for abandoned jobs: %s", type(exc).__name__)
        try:
            yield
        finally:
            app.state.workers.shutdown(stopped)
            runtime.close()

    return lifespan
