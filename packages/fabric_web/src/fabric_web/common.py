"""What every Fabric FastAPI app shares: errors as HTTP, the runtime and session per request,
health and request metrics."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Annotated

from fabric_core.db import session_scope
from fabric_core.errors import FabricError
from fabric_core.runtime import Runtime
from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from sqlalchemy.exc import DataError, OperationalError
from sqlalchemy.orm import Session

from fabric_web.error_answers import install_error_answers
from fabric_web.request_body import RequestBodyGuard

log = logging.getLogger(__name__)


def install_error_handlers(app: FastAPI) -> None:
    """Errors as JSON answers, and the request body's limits (size, strict JSON)."""
    install_error_answers(app)
    # The limit is the running runtime's (settings are resolved when the app starts).
    app.add_middleware(
        RequestBodyGuard, max_bytes=lambda: app.state.runtime.settings.max_body_bytes
    )

    @app.exception_handler(OverflowError)
    @app.exception_handler(DataError)
    async def _out_of_range(_request: Request, exc: Exception) -> JSONResponse:
        # An id or value the database cannot hold (e.g. an integer beyond 64 bits).
        return JSONResponse({"detail": "A value is out of range."}, status_code=422)

    @app.exception_handler(OperationalError)
    async def _database_unavailable(_request: Request, exc: OperationalError) -> JSONResponse:
        # The metadata DB is down, locked or dropped the connection: nothing was stored.
        log.error("metadata DB: %s", " ".join(str(exc.orig or exc).split())[:500])
        return JSONResponse(
            {"detail": "The metadata database is unavailable; nothing was changed. Try again."},
            status_code=503,
        )

    @app.exception_handler(FabricError)
    async def _fabric_error(_request: Request, exc: FabricError) -> JSONResponse:
        # Each error class carries its status (fabric_core.errors); a bare FabricError is a bug.
        if exc.status_code >= 500:
            log.error("%s: %s", type(exc).__name__, exc.message)
        headers = {}
        if (retry_after := getattr(exc, "retry_after", None)) is not None:
            # When a try may pass (an open circuit's reset time): clients back off that long.
            headers["Retry-After"] = str(max(1, math.ceil(retry_after)))
        return JSONResponse(
            {"detail": exc.message, **exc.answer_fields()},
            status_code=exc.status_code,
            headers=headers,
        )


def get_runtime(request: Request) -> Runtime:
    return request.app.state.runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def get_session(runtime: RuntimeDep) -> Iterator[Session]:
    """A session per request, committed when the handler returns without error."""
    with session_scope(runtime.session_factory) as session:
        yield session


# scope="function": the commit runs when the handler returns, before the answer is sent, so a
# commit that fails is an error answer, never a success for a change that was not stored.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]


def get_read_session(runtime: RuntimeDep) -> Iterator[Session]:
    """A session per request that only reads (never holds SQLite's write lock)."""
    with runtime.read_session_factory() as session:
        yield session


ReadSessionDep = Annotated[Session, Depends(get_read_session, scope="function")]


# Methods any client may send; anything else is counted as "other" so that a client cannot
# create label values (time series) at will. Unmatched paths are one label for the same reason.
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def method_label(method: str) -> str:
    return method if method in KNOWN_METHODS else "other"


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


# Threads of /health's own, shared by the apps of a process; two, as a check is short.
_HEALTH_EXECUTOR = ThreadPoolExecutor(max_workers=2, thread_name_prefix="fabric-health")


def _health_checks(runtime: Runtime, checks_storage: bool) -> dict[str, str]:
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
    return checks


def install_common_routes(app: FastAPI, metrics: AppMetrics, *, checks_storage: bool) -> None:
    """``GET /health`` (DB and storage, 503 when down), ``GET /metrics`` and request counting."""

    @app.middleware("http")
    async def _count_requests(request: Request, call_next):
        started = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        template = getattr(route, "path", "unmatched")
        metrics.requests.labels(
            metrics.service, method_label(request.method), template, str(response.status_code)
        ).inc()
        metrics.latency.labels(metrics.service, template).observe(time.perf_counter() - started)
        return response

    @app.get("/health", tags=["operations"])
    async def health(request: Request) -> JSONResponse:
        """Whether this service can reach its metadata DB (and storage)."""
        # Async, reading the runtime itself (a sync dependency would take a pool thread) and
        # checking on threads of its own: /health answers while slow source calls fill
        # AnyIO's shared pool of 40 threads.
        runtime: Runtime = request.app.state.runtime
        loop = asyncio.get_running_loop()
        checks = await loop.run_in_executor(
            _HEALTH_EXECUTOR, _health_checks, runtime, checks_storage
        )
        healthy = all(value == "ok" for value in checks.values())
        return JSONResponse(
            {"status": "ok" if healthy else "unavailable", "service": metrics.service, **checks},
            status_code=200 if healthy else 503,
        )

    @app.get("/metrics", tags=["operations"])
    def prometheus_metrics() -> PlainTextResponse:
        """Prometheus text format."""
        return metrics.render()
