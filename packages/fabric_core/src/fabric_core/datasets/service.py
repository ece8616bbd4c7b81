"""Datasets for the API: list, describe, delete, preview and read back."""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import itertools
import logging
from collections import Counter
from typing import Any

import polars as pl
import pyarrow.parquet as pq
from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from fabric_core.circuits import CircuitBreaker
from fabric_core.crypto import SecretBox
from fabric_core.dataset_states import DELETING
from fabric_core.datasets.casts import refuse_unsupported_casts
from fabric_core.datasets.plan import DatasetPlan, plan_dataset
from fabric_core.datasets.reading import read_source
from fabric_core.datasets.storage import Storage
from fabric_core.datasets.transform import transform_batch
from fabric_core.drift.datasets import attention_reasons
from fabric_core.errors import ConflictError, NotFoundError, ServiceUnavailableError
from fabric_core.models import Dataset, DatasetVersion, Job
from fabric_core.paging import Page, Paged
from fabric_core.schemas import (
    DatasetColumn,
    DatasetPreview,
    DatasetPreviewRequest,
    DatasetPublic,
    DatasetRequest,
    DatasetVersionPublic,
)
from fabric_core.source_policy import SourcePolicy

log = logging.getLogger(__name__)


def get_dataset(session: Session, name: str) -> Dataset:
    dataset = session.scalar(select(Dataset).where(Dataset.name == name))
    if dataset is None:
        raise NotFoundError(f"No dataset named {name!r}.")
    return dataset


def _complete_versions(session: Session, dataset_ids: list[int]) -> dict[int, list[DatasetVersion]]:
    """The complete versions of several datasets in one query, by dataset id."""
    found: dict[int, list[DatasetVersion]] = {dataset_id: [] for dataset_id in dataset_ids}
    for start in range(0, len(dataset_ids), 500):  # bounded IN lists
        for version in session.scalars(
            select(DatasetVersion)
            .where(
                DatasetVersion.dataset_id.in_(dataset_ids[start : start + 500]),
                DatasetVersion.status == "complete",
            )
            .order_by(DatasetVersion.dataset_id, DatasetVersion.version)
        ):
            found[version.dataset_id].append(version)
    return found


def dataset_public(session: Session, dataset: Dataset) -> DatasetPublic:
    [reasons] = attention_reasons(session, [dataset.definition])
    return _public(dataset, _complete_versions(session, [dataset.id])[dataset.id], reasons)


def _public(
    dataset: Dataset, versions: list[DatasetVersion], attention: list[str]
) -> DatasetPublic:
    current = next((v for v in versions if v.version == dataset.current_version), None)
    return DatasetPublic(
        name=dataset.name,
        status=dataset.status,
        storage_type=dataset.storage_type,
        current_version=dataset.current_version,
        location=current.location if current else None,
        row_count=current.row_count if current else None,
        columns=[
            DatasetColumn(**c) for c in (current.columns.get("columns", []) if current else [])
        ],
        versions=[
            DatasetVersionPublic(
                version=v.version,
                status=v.status,
                storage_type=v.storage_type,
                job_id=v.job_id,
                location=v.location,
                row_count=v.row_count,
                rows_per_source=v.manifest.get("rows_per_source", {}),
                created_at=v.created_at,
                completed_at=v.completed_at,
            )
            for v in versions
        ],
        definition=dataset.definition,
        needs_attention=bool(attention),
        attention_reasons=attention,
        created_at=dataset.created_at,
        updated_at=dataset.updated_at,
    )


def list_datasets(session: Session, page: Page = Page()) -> Paged[DatasetPublic]:
    """Datasets by name with their complete versions: two queries and a count, whatever the
    number of datasets."""
    query = select(Dataset).order_by(Dataset.name)
    datasets = page.scalars(session, query)
    versions = _complete_versions(session, [d.id for d in datasets])
    reasons = attention_reasons(session, [d.definition for d in datasets])
    items = [_public(d, versions[d.id], r) for d, r in zip(datasets, reasons, strict=True)]
    return Paged(items, page.total(session, query))


def delete_dataset(session_factory: sessionmaker[Session], storage: Storage, name: str) -> None:
    """Delete a dataset, every version's files included; refused while a build is queued or
    runs.

    Three steps, so no transaction is open during storage I/O (on SQLite it would hold the
    database's write lock): mark the dataset ``deleting`` (no build may start from then on),
    remove its files, then its rows. When storage cannot be reached, the dataset stays
    ``deleting``: a DELETE again, or the dataset service's sweep, finishes the work.

    Raises:
        NotFoundError, ConflictError; ServiceUnavailableError when the files could not be
        removed (the dataset stays ``deleting``).
    """
    with session_factory.begin() as session:
        dataset = session.scalar(select(Dataset).where(Dataset.name == name).with_for_update())
        if dataset is None:
            raise NotFoundError(f"No dataset named {name!r}.")
        building = session.scalar(
            select(Job.id).where(Job.dataset_name == name, Job.status.in_(("queued", "running")))
        )
        if building:
            raise ConflictError(f"Dataset {name!r} is being built by job {building}; wait for it.")
        dataset.status = DELETING
    finish_deletion(session_factory, storage, name)


def finish_deletion(session_factory: sessionmaker[Session], storage: Storage, name: str) -> None:
    """Remove the files, then the rows, of a dataset marked ``deleting``."""
    try:
        storage.remove_tree(storage.dataset_dir(name))
    except Exception as exc:  # s3fs and botocore raise more than OSError when S3 is away
        raise ServiceUnavailableError(
            f"Dataset {name!r} is marked for deletion, but its files could not be removed "
            f"now (storage: {type(exc).__name__}); DELETE it again, or the dataset service's "
            "sweep finishes it."
        ) from None
    with session_factory.begin() as session:
        session.execute(delete(Dataset).where(Dataset.name == name, Dataset.status == DELETING))


def finish_deletions(session_factory: sessionmaker[Session], storage: Storage) -> int:
    """The sweep's part: finish deletions that storage interrupted; returns how many ended."""
    with session_factory() as session:
        names = session.scalars(select(Dataset.name).where(Dataset.status == DELETING)).all()
    finished = 0
    for name in names:
        try:
            finish_deletion(session_factory, storage, name)
        except ServiceUnavailableError as exc:
            log.warning("%s", exc.message)
            continue
        finished += 1
    return finished


def json_safe(value: Any) -> Any:
    """A preview cell as JSON: exact decimals as text, binary as base64, times as ISO."""
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, dt.date | dt.time | dt.datetime):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, list):
        return [json_safe(v) for v in value]
    return value


def _preview_answer(frame: pl.DataFrame, plan_columns, limit: int, failures) -> DatasetPreview:
    return DatasetPreview(
        columns=[DatasetColumn(**c) for c in plan_columns],
        rows=[{k: json_safe(v) for k, v in row.items()} for row in frame.iter_rows(named=True)],
        limit=limit,
        row_count=frame.height,
        cast_failures=dict(failures),
    )


def preview_plan(
    plan: DatasetPlan, limit: int, *, timeout: float, circuits: CircuitBreaker | None = None
) -> DatasetPreview:
    """Up to ``limit`` rows of the plan, with LIMIT pushed down to each source; nothing written
    (through the sources' circuit breakers when ``circuits`` is given)."""
    failures: Counter[str] = Counter()
    frames: list[pl.DataFrame] = []
    remaining = limit
    for source in plan.sources:
        if remaining <= 0:
            break
        batches = read_source(
            source, limit=remaining, batch_rows=remaining, timeout=timeout, circuits=circuits
        )
        for batch in batches:
            frame = transform_batch(batch, source, plan, failures)
            frames.append(frame)
            remaining -= frame.height
    frame = pl.concat(frames) if frames else pl.DataFrame(schema=plan.schema)
    return _preview_answer(frame.head(limit), plan.columns_public(), limit, failures)


def preview_request(
    session_factory: sessionmaker[Session],
    request: DatasetPreviewRequest,
    box: SecretBox,
    policy: SourcePolicy,
    circuits: CircuitBreaker | None = None,
) -> DatasetPreview:
    # The plan is read, then the session ends: no metadata-DB connection waits on a source.
    with session_factory() as session:
        plan = plan_dataset(session, request, box, policy)
    refuse_unsupported_casts(plan)
    return preview_plan(plan, request.limit, timeout=policy.connect_timeout, circuits=circuits)


def read_rows(
    session_factory: sessionmaker[Session],
    storage: Storage,
    box: SecretBox,
    name: str,
    *,
    version: int | None,
    limit: int,
    policy: SourcePolicy,
    circuits: CircuitBreaker | None = None,
) -> DatasetPreview:
    """The first rows of a version: read from its Parquet parts, or computed if virtual
    (after the session ended: no metadata-DB connection waits on a source)."""
    with session_factory() as session:
        record, plan = _version_to_read(session, box, name, version, policy)
    if plan is not None:
        return preview_plan(plan, limit, timeout=policy.connect_timeout, circuits=circuits)
    return _stored_rows(storage, name, record, limit)


def _version_to_read(
    session: Session, box: SecretBox, name: str, version: int | None, policy: SourcePolicy
) -> tuple[DatasetVersion, DatasetPlan | None]:
    dataset = get_dataset(session, name)
    wanted = version or dataset.current_version
    record = session.scalar(
        select(DatasetVersion).where(
            DatasetVersion.dataset_id == dataset.id,
            DatasetVersion.version == wanted,
            DatasetVersion.status == "complete",
        )
    )
    if record is None:
        raise NotFoundError(f"Dataset {name!r} has no complete version {wanted}.")
    if record.storage_type == "virtual":
        request = DatasetRequest(**record.manifest["request"])
        plan = plan_dataset(session, request, box, policy)
        refuse_unsupported_casts(plan)
        return record, plan
    return record, None


def _stored_rows(storage: Storage, name: str, record: DatasetVersion, limit: int) -> DatasetPreview:
    folder = storage.version_dir(name, record.version)
    # The manifest's parts, not whatever the folder holds (a failed clean-up may leave files).
    parts = [f"{folder}/{part}" for part in record.manifest.get("parts", [])]
    tables = []
    remaining = limit
    for path in parts:
        with storage.fs.open(path, "rb") as handle:
            parquet = pq.ParquetFile(handle)
            for batch in itertools.islice(parquet.iter_batches(batch_size=remaining), 1):
                tables.append(pl.from_arrow(batch))
                remaining -= batch.num_rows
        if remaining <= 0:
            break
    columns = record.columns.get("columns", [])
    frame = pl.concat(tables) if tables else pl.DataFrame()
    return _preview_answer(frame.head(limit), columns, limit, {})
