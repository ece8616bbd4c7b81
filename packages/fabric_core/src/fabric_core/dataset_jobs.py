"""Dataset creation as a job kind: queued by the gateway, run by a dataset-service worker."""

from __future__ import annotations

import logging
import time
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from fabric_core.connections import connection_spec
from fabric_core.crypto import SecretBox
from fabric_core.dataset_states import DELETING
from fabric_core.datasets.build import (
    MANIFEST,
    BuildResult,
    allocate_version,
    clean_abandoned_versions,
    manifest,
    mark_removed,
    write_version,
)
from fabric_core.datasets.casts import refuse_unsupported_casts
from fabric_core.datasets.plan import DatasetPlan, plan_dataset
from fabric_core.datasets.service import finish_deletions
from fabric_core.datasets.storage import Storage
from fabric_core.drift.datasets import request_attention
from fabric_core.errors import (
    ConflictError,
    DriftRefusedError,
    InvalidInputError,
    JobCancelledError,
)
from fabric_core.job_kinds import DATASET
from fabric_core.job_runner import JobContext
from fabric_core.jobs import create_job
from fabric_core.models import (
    CatalogColumn,
    CatalogTable,
    Connection,
    Dataset,
    DatasetVersion,
    Job,
    utcnow,
)
from fabric_core.runtime import Runtime
from fabric_core.schemas import TERMINAL_STATUSES, DatasetRequest

log = logging.getLogger(__name__)

# Throughput assumed for the estimate in the queued answer (see docs/benchmarks.md).
ESTIMATED_ROWS_PER_SECOND = 250_000


def estimate_text(rows: int) -> str:
    seconds = max(1, round(rows / ESTIMATED_ROWS_PER_SECOND))
    return f"about {seconds} s for about {rows:,} rows"


def queue_dataset(
    session: Session,
    request: DatasetRequest,
    box: SecretBox,
    *,
    orchestrator: str,
    retry_policy: dict[str, Any] | None = None,
    allow_drift: bool = False,
) -> tuple[Job, DatasetPlan]:
    """Check the request against the catalog and queue ``dataset_{name}_{unix_ts}``
    (``retry_policy``: see fabric_core.retry.policy_for; None: the settings' at run time).

    Raises:
        InvalidInputError: the request does not fit the catalog (as a plan would say), or
            needs a conversion the build does not have.
        DriftRefusedError: it reads columns with open breaking drift and ``allow_drift`` is
            false.
    """
    plan = plan_dataset(session, request, box)
    refuse_unsupported_casts(plan)
    if not allow_drift and (reasons := request_attention(session, request)):
        raise DriftRefusedError(
            f"Dataset {request.name!r} reads columns with breaking drift; fix them or build "
            'with "allow_drift": true.',
            reasons,
        )
    # Locked: a DELETE of the same dataset waits for this request, or this one sees it.
    dataset = session.scalar(select(Dataset).where(Dataset.name == request.name).with_for_update())
    if dataset is not None and dataset.status == DELETING:
        raise ConflictError(f"Dataset {request.name!r} is being deleted; build it again after.")
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
        kind=DATASET.name,
        id_prefix=DATASET.id_prefix(request),
        dataset_name=request.name,
        params=request.model_dump(),
        orchestrator=orchestrator,
        retry_policy=retry_policy,
    )
    return job, plan


def dataset_secrets(session: Session, params: DatasetRequest, box: SecretBox) -> list[str | None]:
    """The secrets of every connection the dataset reads (found without planning the build,
    which the work does)."""
    tables = select(CatalogTable.connection_id).where(CatalogTable.id.in_(params.selected_tables))
    columns = (
        select(CatalogTable.connection_id)
        .join(CatalogColumn, CatalogColumn.table_id == CatalogTable.id)
        .where(CatalogColumn.id.in_(params.selected_columns))
    )
    ids = tables if params.selection_mode == "tables" else columns
    connections = session.scalars(select(Connection).where(Connection.id.in_(ids))).all()
    return [secret for c in connections for secret in connection_spec(c, box).secrets]


def dataset_work(context: JobContext, params: DatasetRequest) -> dict:
    """Build the next version of the dataset and publish it with the job's success."""
    request = params
    runtime = context.runtime
    session_factory, storage, settings = runtime.session_factory, runtime.storage, runtime.settings
    with session_factory() as session:
        plan = plan_dataset(session, request, runtime.box, runtime.source_policy)
        # The catalog may have changed since the request was checked.
        refuse_unsupported_casts(plan)
        context.add_secrets(secret for s in plan.sources for secret in s.spec.secrets)
        dataset = session.scalar(select(Dataset).where(Dataset.name == request.name))
        if dataset is None:
            raise InvalidInputError(f"Dataset {request.name!r} was deleted before it was built.")
    clean_abandoned_versions(session_factory, storage, dataset)
    version = allocate_version(session_factory, dataset.id, context.job_id, request.storage_type)
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
                    context.set_progress(min(0.99, rows / estimated))

            def should_stop() -> bool:
                try:
                    context.raise_if_cancelled(min_interval=0.25)
                except JobCancelledError:
                    return True
                return False

            result = write_version(
                plan,
                storage,
                folder,
                batch_rows=settings.dataset_batch_rows,
                part_rows=settings.dataset_part_rows,
                timeout=settings.source_connect_timeout,
                on_rows=on_rows,
                should_stop=should_stop,
                circuits=runtime.circuits,
            )
            result.version = version
            result.location = storage.url(folder)
        document = manifest(plan, request, result, context.job_id, storage)
        if request.storage_type == "copy_to_minio":
            storage.write_json(f"{folder}/{MANIFEST}", document)
        _publish(context, dataset.id, version, result, document, plan)
        return result.stats()
    except BaseException:
        _discard(session_factory, storage, dataset, version, context.job_id)
        raise


def _publish(
    context: JobContext,
    dataset_id: int,
    version: int,
    result: BuildResult,
    document: dict,
    plan: DatasetPlan,
) -> None:
    """Make the version visible and the job successful in one transaction.

    The job's own conditional UPDATE comes first: a job cancelled at the last moment is not
    published (its version is discarded instead).
    """
    with context.runtime.session_factory.begin() as session:
        context.succeed_in(session, result.stats())
        published = session.execute(
            update(DatasetVersion)
            .where(
                DatasetVersion.dataset_id == dataset_id,
                DatasetVersion.version == version,
                DatasetVersion.job_id == context.job_id,
                DatasetVersion.status == "building",
            )
            .values(
                status="complete",
                location=result.location,
                row_count=document["row_count"],
                columns={"columns": plan.columns_public()},
                manifest=document,
                completed_at=utcnow(),
            )
        ).rowcount
        if not published:  # its record was failed or removed meanwhile: never publish it
            raise ConflictError(f"Version {version} was ended before it could be published.")
        dataset = session.get_one(Dataset, dataset_id)
        # A slower build of an older version must not replace a newer current version.
        if dataset.current_version is None or version > dataset.current_version:
            dataset.current_version = version
            dataset.storage_type = document["storage_type"]
        dataset.status = "ready"


def _discard(
    session_factory, storage: Storage, dataset: Dataset, version: int, job_id: str
) -> None:
    """Remove what a build that did not finish wrote. When its storage cannot be reached now
    (the reason the build failed, often), the version is kept as ``failed`` so the sweep
    removes its files later; the build's own error is the one reported. The dataset's state
    follows the job's end (``dataset_states``)."""
    try:
        storage.remove_tree(storage.version_dir(dataset.name, version))
    except Exception as exc:
        log.warning(
            "could not remove version %s of %s yet: %s", version, dataset.name, type(exc).__name__
        )
        with session_factory.begin() as session:
            session.execute(
                update(DatasetVersion)
                .where(
                    DatasetVersion.dataset_id == dataset.id,
                    DatasetVersion.version == version,
                    DatasetVersion.status == "building",
                )
                .values(status="failed")
            )
        return
    mark_removed(session_factory, dataset.id, version, job_id)


def sweep_datasets(runtime: Runtime) -> None:
    """The dataset service's recovery sweep: versions builds left behind, and deletions that
    storage interrupted."""
    remove_abandoned_versions(runtime)
    finished = finish_deletions(runtime.session_factory, runtime.storage)
    if finished:
        log.warning("finished %d dataset deletion(s) that storage had interrupted", finished)


def remove_abandoned_versions(runtime: Runtime) -> int:
    """The dataset service's sweep: files and records of versions whose job ended without
    publishing them (a killed build, a job failed from outside); returns how many."""
    with runtime.session_factory() as session:
        # A subquery, not DISTINCT over datasets: PostgreSQL cannot compare their JSON columns.
        with_abandoned = (
            select(DatasetVersion.dataset_id)
            .outerjoin(Job, Job.id == DatasetVersion.job_id)
            .where(
                DatasetVersion.status.in_(("building", "failed")),
                Job.id.is_(None) | Job.status.in_(TERMINAL_STATUSES),
            )
        )
        datasets = session.scalars(select(Dataset).where(Dataset.id.in_(with_abandoned))).all()
    removed = 0
    for dataset in datasets:
        removed += clean_abandoned_versions(runtime.session_factory, runtime.storage, dataset)
    if removed:
        log.warning("removed %d version(s) left by builds that died", removed)
    return removed
