"""A service that runs one kind of job: its lifespan, worker pool, metrics and the pair of
routes every kind has (``POST {kind.process_path}``, ``GET /status/{job_id}``)."""

# No ``from __future__ import annotations``: the route's body type is the kind's request
# schema, a run-time value FastAPI must see as a class, not as a string.

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fabric_core.errors import InvalidInputError
from fabric_core.job_kinds import JobKind
from fabric_core.job_runner import run_job
from fabric_core.jobs import accept_hand_over, fail_stale_jobs, get_job
from fabric_core.log_context import bound, job_fields
from fabric_core.models import Job
from fabric_core.periodic import Periodic
from fabric_core.pools import JobPool
from fabric_core.runtime import Runtime, create_runtime
from fabric_core.schemas import TERMINAL_STATUSES, JobAccepted, JobPublic
from fabric_core.settings import Settings, get_settings
from fastapi import FastAPI, Request
from prometheus_client import Gauge
from pydantic import BaseModel
from sqlalchemy.orm import Session

from fabric_web.common import (
    AppMetrics,
    ReadSessionDep,
    RuntimeDep,
    install_common_routes,
    install_error_handlers,
)
from fabric_web.job_metrics import JobMetrics
from fabric_web.request_ids import install_request_ids
from fabric_web.service_auth import SERVICE_TOKEN_STATE, ServiceTokenMiddleware

log = logging.getLogger(__name__)


class JobServiceMetrics(AppMetrics):
    """Request metrics, the service's workers (busy and in all), and the jobs it ran, counted
    per kind when they end (``fabric_web.job_metrics``)."""

    def __init__(self, service: str) -> None:
        super().__init__(service)
        self.jobs = JobMetrics(self.registry)
        self.workers = Gauge(
            "fabric_job_workers",
            "Background workers of this service process.",
            ["service"],
            registry=self.registry,
        )
        self.workers_busy = Gauge(
            "fabric_job_workers_busy",
            "Workers of this service process running a job now.",
            ["service"],
            registry=self.registry,
        )

    def track(self, runtime: Runtime, job_id: str, work: Callable[[], bool]) -> Job | None:
        """Run ``work`` (False: the job had already been claimed) and count its outcome."""
        busy = self.workers_busy.labels(self.service)
        busy.inc()
        try:
            ran = work()
        finally:
            busy.dec()
        if not ran:
            return None
        with runtime.read_session_factory() as session:
            job = get_job(session, job_id)
        self.jobs.observe_end(job)
        return job


def job_status(runtime: Runtime, job_id: str) -> Job:
    """A job as its service reports it; a running job whose worker died is failed first."""
    fail_stale_jobs(runtime.session_factory, runtime.settings.job_stale_seconds, job_id)
    with runtime.read_session_factory() as session:
        return get_job(session, job_id)


def sweep_jobs(kind: JobKind, runtime: Runtime) -> None:
    failed = fail_stale_jobs(runtime.session_factory, runtime.settings.job_stale_seconds)
    if failed:
        log.warning("failed %d job(s) whose worker stopped answering", failed)
    kind.sweep_function()(runtime)


def check_hand_over(session: Session, kind: JobKind, job_id: str, params: BaseModel) -> Job:
    """The job a service was asked to run, refusing one of another kind or other params."""
    job = get_job(session, job_id)
    if job.kind != kind.name:
        raise InvalidInputError(f"Job {job_id!r} is a {job.kind} job, not a {kind.name} job.")
    queued = kind.params_of(job)
    if queued != params:
        differing = [
            name
            for name in type(params).model_fields
            if getattr(queued, name) != getattr(params, name)
        ]
        queued_with = ", ".join(f"{_label(n)} {getattr(queued, n)!r}" for n in differing)
        asked = ", ".join(f"{_label(n)} {getattr(params, n)!r}" for n in differing)
        raise InvalidInputError(
            f"The request differs from the one job {job_id!r} was queued with: the job belongs "
            f"to {queued_with}, not {asked}."
        )
    return job


def _label(field_name: str) -> str:
    return field_name.removesuffix("_id")


def create_job_service(
    kind: JobKind,
    settings: Settings | None,
    metrics: JobServiceMetrics,
    *,
    title: str,
    summary: str,
    after_job: Callable[[Job], Any] | None = None,
) -> FastAPI:
    """The FastAPI app of the service that runs ``kind``'s jobs in a bounded worker pool."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        resolved = settings or get_settings()
        # Read once: an empty or placeholder token stops the service here, at start-up.
        setattr(app.state, SERVICE_TOKEN_STATE, resolved.resolved_service_token())
        runtime = create_runtime(resolved)
        app.state.runtime = runtime
        # Load the work now, not in the first job: its libraries take a good second to import.
        kind.load_at_start()
        app.state.workers = JobPool(
            f"{kind.service}_worker", kind.workers(runtime.settings), runtime.session_factory
        )
        metrics.workers.labels(kind.service).set(kind.workers(runtime.settings))
        metrics.workers_busy.labels(kind.service).set(0)
        # On start and every sweep_seconds: fail the jobs whose worker died, and let the kind
        # remove what such jobs left behind. The DB may be down: /health says so; start anyway.
        sweep = Periodic(
            f"{kind.service}-sweep",
            runtime.settings.sweep_seconds,
            lambda: sweep_jobs(kind, runtime),
        )
        sweep.start()
        try:
            yield
        finally:
            sweep.stop()
            app.state.workers.shutdown(
                f"The {kind.service} service stopped before this job started."
            )
            runtime.close()

    app = FastAPI(title=title, summary=summary, version="0.1.0", lifespan=lifespan)
    install_error_handlers(app)
    # Added before the request counting (which wraps it), so refusals are counted too.
    app.add_middleware(ServiceTokenMiddleware)
    install_common_routes(app, metrics, checks_storage=kind.service == "dataset")
    install_job_routes(app, kind, metrics, after_job=after_job)
    install_request_ids(app)
    return app


def install_job_routes(
    app: FastAPI,
    kind: JobKind,
    metrics: JobServiceMetrics,
    *,
    after_job: Callable[[Job], Any] | None = None,
) -> None:
    """``POST {kind.process_path}`` accepts a queued job; ``GET /status/{job_id}`` reports it."""
    request_schema = kind.request_schema
    params_fields = set(kind.params_schema.model_fields)
    metrics.jobs.initialize(kind.name)

    def run(runtime: Runtime, job_id: str) -> None:
        log.info("%s job %s starting", kind.name, job_id)
        job = metrics.track(runtime, job_id, lambda: run_job(kind, runtime, job_id))
        if job is None:
            return
        if job.status not in TERMINAL_STATUSES:  # queued again for its next attempt
            return
        log.info("%s job %s ended %s", kind.name, job_id, job.status)
        if after_job is not None:
            after_job(job)

    def process(
        body: request_schema,  # type: ignore[valid-type]
        request: Request,
        session: ReadSessionDep,
        runtime: RuntimeDep,
    ) -> JobAccepted:
        params = kind.new_params(body.model_dump(include=params_fields))
        job = check_hand_over(session, kind, body.job_id, params)
        accepted = accept_hand_over(
            runtime.session_factory, body.job_id, runtime.settings.job_handover_seconds
        )
        if accepted:
            with bound(**job_fields(job.id, job.orchestrator)):
                request.app.state.workers.submit(body.job_id, run, runtime, body.job_id)
        return JobAccepted(job_id=job.id, status=job.status, accepted=accepted)

    process.__doc__ = (
        f"Accept a queued {kind.name} job and run it in the background (a known job is not "
        "run again)."
    )
    app.post(
        kind.process_path,
        status_code=202,
        response_model=JobAccepted,
        tags=["jobs"],
        name=f"process_{kind.name}",
    )(process)

    @app.get("/status/{job_id}", response_model=JobPublic, tags=["jobs"])
    def status(job_id: str, runtime: RuntimeDep) -> JobPublic:
        """A job's status, progress, stats and error."""
        return JobPublic.model_validate(job_status(runtime, job_id))
