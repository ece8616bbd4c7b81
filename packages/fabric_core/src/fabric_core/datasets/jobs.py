"""Dataset creation as a job: queued by the gateway, run once by a dataset-service worker."""

from __future__ import annotations

import logging
import time

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from fabric_core.crypto import SecretBox, redact
from fabric_core.datasets.build import (
    MANIFEST,
    BuildResult,
    allocate_version,
    clean_abandoned_versions,
    manifest,
    write_version,
)
from fabric_core.datasets.plan import DatasetPlan, plan_dataset
from fabric_core.datasets.storage import Storage
from fabric_core.errors import FabricError, InvalidInputError, JobCancelledError
from fabric_core.jobs import (
    DATASET_JOB,
    claim_job,
    create_job,
    finish_job,
    get_job,
    heartbeat,
    is_cancelled,
    set_progress,
)
from fabric_core.models import Dataset, DatasetVersion, Job, utcnow
from fabric_core.schemas import DatasetRequest
from fabric_core.settings import Settings

log = logging.getLogger(__name__)

# Throughput assumed for the estimate in the queued answer (see docs/benchmarks.md).
ESTIMATED_ROWS_PER_SECOND = 250_000


def estimate_text(rows: int) -> str:
    seconds = max(1, round(rows / ESTIMATED_ROWS_PER_SECOND))
    return f"about {seconds} s for about {rows:,} rows"


def queue_dataset(
    session: Session, request: DatasetRequest, box: SecretBox, *, orchestrator: str
) -> tuple[Job, DatasetPlan]:
    """Check the request against the catalog and queue ``dataset_{name}_{unix_ts}``."""
    plan = plan_dataset(session, request, box)
    dataset = session.scalar(select(Dataset).where(Dataset.name == request.name))
    if dataset is None:
        dataset = Dataset(name=request.name, storage_type=request.storage_type, status="queued")
        session.add(dataset)
    elif dataset.current_version is None:
        dataset.status = "queued"
    dataset.definition = request.model_dump()
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError:  # created by a concurrent request a moment ago: use that one
        dataset = session.scalar(select(Dataset).where(Dataset.name == request.name))
        if dataset is None:
            raise
        dataset.definition = request.model_dump()
    job = create_job(
        session,
        kind=DATASET_JOB,
        id_prefix=f"dataset_{request.name}",
        dataset_name=request.name,
        params=request.model_dump(),
        orchestrator=orchestrator,
    )
    return job, plan


def check_dataset_request(session: Session, job_id: str, request: DatasetRequest) -> Job:
    job = get_job(session, job_id)
    if job.kind != DATASET_JOB:
        raise InvalidInputError(f"Job {job_id!r} is a {job.kind} job, not a dataset job.")
    if DatasetRequest(**job.params) != request:
        raise InvalidInputError(f"The request differs from the one job {job_id!r} was queued with.")
    return job


def run_dataset_job(
    session_factory: sessionmaker[Session],
    job_id: str,
    *,
    box: SecretBox,
    settings: Settings,
    storage: Storage,
) -> bool:
    """Run a queued dataset job to its end; False (and nothing done) if already claimed."""
    if not claim_job(session_factory, job_id):
        log.info("dataset job %s already claimed, not running it again", job_id)
        return False
    try:
        with heartbeat(session_factory, job_id, settings.job_heartbeat_seconds):
            result = _build(session_factory, job_id, box=box, settings=settings, storage=storage)
    except JobCancelledError:
        log.info("dataset job %s cancelled; what it wrote is removed", job_id)
    except FabricError as exc:
        log.warning("dataset job %s failed: %s", job_id, exc.message)
        finish_job(session_factory, job_id, status="failed", error=exc.message)
    except Exception as exc:
        message = redact(f"Unexpected error: {type(exc).__name__}: {exc}", [])
        log.error("dataset job %s crashed: %s", job_id, message)
        finish_job(session_factory, job_id, status="failed", error=message)
    else:
        finish_job(session_factory, job_id, status="success", stats=result.stats())
    return True


def _build(
    session_factory: sessionmaker[Session],
    job_id: str,
    *,
    box: SecretBox,
    settings: Settings,
    storage: Storage,
) -> BuildResult:
    with session_factory() as session:
        request = DatasetRequest(**get_job(session, job_id).params)
        plan = plan_dataset(session, request, box)
        dataset = session.scalar(select(Dataset).where(Dataset.name == request.name))
        if dataset is None:
            raise InvalidInputError(f"Dataset {request.name!r} was deleted before it was built.")
    clean_abandoned_versions(session_factory, storage, dataset)
    version = allocate_version(session_factory, dataset.id, job_id, request.storage_type)
    folder = storage.version_dir(dataset.name, version)
    try:
        if request.storage_type == "virtual":
            result = BuildResult(version=version, location=None)
        else:
            estimated = max(plan.estimated_rows, 1)
            last_progress = [0.0]

            def on_rows(rows: int) -> None:
                now = time.monotonic()
                if now - last_progress[0] >= 1.0:
                    last_progress[0] = now
                    with session_factory.begin() as session:
                        set_progress(session, job_id, min(0.99, rows / estimated))

            checked = [time.monotonic()]

            def should_stop() -> bool:
                if time.monotonic() - checked[0] < 0.25:
                    return False
                checked[0] = time.monotonic()
                return is_cancelled(session_factory, job_id)

            result = write_version(
                plan,
                storage,
                folder,
                batch_rows=settings.dataset_batch_rows,
                part_rows=settings.dataset_part_rows,
                timeout=settings.source_connect_timeout,
                on_rows=on_rows,
                should_stop=should_stop,
            )
            result.version = version
            result.location = storage.url(folder)
        document = manifest(plan, request, result, job_id, storage)
        if request.storage_type == "copy_to_minio":
            storage.write_json(f"{folder}/{MANIFEST}", document)
        _publish(session_factory, job_id, dataset.id, version, result, document, plan)
        return result
    except BaseException:
        _discard(session_factory, storage, dataset, version)
        raise


def _publish(session_factory, job_id, dataset_id, version, result, document, plan) -> None:
    """Make the version visible and the job successful in one transaction.

    The job's own conditional UPDATE comes first: a job cancelled at the last moment is not
    published (its version is discarded instead).
    """
    now = utcnow()
    with session_factory.begin() as session:
        ended = session.execute(
            update(Job)
            .where(Job.id == job_id, Job.status == "running")
            .values(
                status="success",
                progress=1.0,
                stats=result.stats(),
                finished_at=now,
                updated_at=now,
            )
        ).rowcount
        if not ended:
            raise JobCancelledError("The job was cancelled before its version was published.")
        session.execute(
            update(DatasetVersion)
            .where(DatasetVersion.dataset_id == dataset_id, DatasetVersion.version == version)
            .values(
                status="complete",
                location=result.location,
                row_count=document["row_count"],
                columns={"columns": plan.columns_public()},
                manifest=document,
                completed_at=now,
            )
        )
        dataset = session.get_one(Dataset, dataset_id)
        # A slower build of an older version must not replace a newer current version.
        if dataset.current_version is None or version > dataset.current_version:
            dataset.current_version = version
            dataset.storage_type = document["storage_type"]
        dataset.status = "ready"


def _discard(session_factory, storage: Storage, dataset: Dataset, version: int) -> None:
    try:
        storage.remove_tree(storage.version_dir(dataset.name, version))
    finally:
        with session_factory.begin() as session:
            session.execute(
                delete(DatasetVersion).where(
                    DatasetVersion.dataset_id == dataset.id, DatasetVersion.version == version
                )
            )
            current = session.get(Dataset, dataset.id)
            if current is not None:
                current.status = "ready" if current.current_version else "failed"
