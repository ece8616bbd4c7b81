"""Building a version of a unified dataset: read, transform, write Parquet, then publish.

A version becomes visible only when complete: its ``_manifest.json`` is written last and the
metadata DB marks it complete in the same step that makes it the dataset's current version. A
failed build removes what it wrote and its version record.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import polars as pl
from polars.io.plugins import register_io_source
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from fabric_core.circuits import CircuitBreaker
from fabric_core.datasets.plan import DatasetPlan
from fabric_core.datasets.reading import read_ahead, read_source
from fabric_core.datasets.storage import Storage
from fabric_core.datasets.transform import transform_batch
from fabric_core.errors import ConflictError, JobCancelledError
from fabric_core.models import Dataset, DatasetVersion, Job, utcnow
from fabric_core.schemas import TERMINAL_STATUSES, DatasetRequest

MANIFEST = "_manifest.json"
# Level 1 costs about a quarter less CPU than level 3 for files about 2% larger; polars
# chooses dictionary pages per column from the data (measured: docs/benchmarks.md).
ZSTD_LEVEL = 1
# Row groups stay this large whatever the read batch: smaller ones made files larger and the
# encoding slower (docs/benchmarks.md), while smaller read batches cost nothing and hold less.
ROW_GROUP_ROWS = 100_000
# polars' S3 writer fills an upload part of this many bytes before sending it (32 MiB by
# default, read once per process); 8 MiB parts (S3's minimum is 5) hold less memory at no
# cost in speed (docs/benchmarks.md, "Dataset builds through the services").
UPLOAD_PART_BYTES = 8 * 2**20
os.environ.setdefault("POLARS_UPLOAD_CHUNK_SIZE", str(UPLOAD_PART_BYTES))


@dataclass
class BuildResult:
    version: int
    location: str | None
    rows_written: int = 0
    bytes_written: int = 0
    rows_per_source: dict[str, int] = field(default_factory=dict)
    cast_failures: dict[str, int] = field(default_factory=dict)
    parts: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def stats(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "location": self.location,
            "rows_written": self.rows_written,
            "bytes_written": self.bytes_written,
            "rows_per_source": self.rows_per_source,
            "cast_failures": self.cast_failures,
            "parts": len(self.parts),
            "seconds": round(self.seconds, 3),
            "rows_per_second": round(self.rows_written / self.seconds) if self.seconds else None,
        }


def allocate_version(
    session_factory: sessionmaker[Session], dataset_id: int, job_id: str, storage_type: str
) -> int:
    """Reserve the next version number (the unique key settles races between builds)."""
    for _ in range(20):
        with session_factory.begin() as session:
            latest = session.scalar(
                select(func.max(DatasetVersion.version)).where(
                    DatasetVersion.dataset_id == dataset_id
                )
            )
            version = (latest or 0) + 1
            try:
                with session.begin_nested():
                    session.add(
                        DatasetVersion(
                            dataset_id=dataset_id,
                            version=version,
                            status="building",
                            storage_type=storage_type,
                            job_id=job_id,
                        )
                    )
            except IntegrityError:
                continue
            session.execute(
                update(Dataset).where(Dataset.id == dataset_id).values(status="building")
            )
            return version
    raise ConflictError(f"Could not reserve a version of dataset {dataset_id}.")


def clean_abandoned_versions(
    session_factory: sessionmaker[Session], storage: Storage, dataset: Dataset
) -> int:
    """Remove the files of versions whose job ended without publishing them (left ``building``
    by a killed build, or ``failed`` when their job was ended from outside), and mark them
    ``removed``. The record stays, so a version number is never given to another build: a
    clean-up racing a new build can never remove that build's files."""
    with session_factory() as session:
        abandoned = session.execute(
            select(DatasetVersion.version, DatasetVersion.job_id)
            .outerjoin(Job, Job.id == DatasetVersion.job_id)
            .where(
                DatasetVersion.dataset_id == dataset.id,
                DatasetVersion.status.in_(("building", "failed")),
                (Job.id.is_(None)) | Job.status.in_(TERMINAL_STATUSES),
            )
        ).all()
    for version, job_id in abandoned:
        storage.remove_tree(storage.version_dir(dataset.name, version))
        mark_removed(session_factory, dataset.id, version, job_id)
    return len(abandoned)


def mark_removed(
    session_factory: sessionmaker[Session], dataset_id: int, version: int, job_id: str | None
) -> None:
    with session_factory.begin() as session:
        session.execute(
            update(DatasetVersion)
            .where(
                DatasetVersion.dataset_id == dataset_id,
                DatasetVersion.version == version,
                DatasetVersion.job_id == job_id,
                DatasetVersion.status.in_(("building", "failed")),
            )
            .values(status="removed")
        )


def _transformed_frames(
    plan: DatasetPlan,
    result: BuildResult,
    failures: Counter[str],
    *,
    batch_rows: int,
    timeout: float,
    on_rows: Callable[[int], None] | None,
    should_stop: Callable[[], bool] | None,
    circuits: CircuitBreaker | None,
) -> Iterator[pl.DataFrame]:
    """Every source of the plan, one after the other, batch by batch in the unified schema."""
    for source in plan.sources:
        result.rows_per_source[source.label] = 0
        batches = read_ahead(
            read_source(
                source, limit=None, batch_rows=batch_rows, timeout=timeout, circuits=circuits
            )
        )
        try:
            for batch in batches:
                if should_stop and should_stop():
                    raise JobCancelledError("The job was cancelled.")
                frame = transform_batch(batch, source, plan, failures)
                result.rows_per_source[source.label] += frame.height
                result.rows_written += frame.height
                if on_rows:
                    on_rows(result.rows_written)
                yield frame
        finally:
            batches.close()


def _write_parts(
    frames: Iterator[pl.DataFrame],
    storage: Storage,
    folder: str,
    schema: pl.Schema,
    *,
    part_rows: int,
    row_group_rows: int,
) -> list[str]:
    """Parquet parts of about ``part_rows`` rows each; at least one, if only with the schema.

    Each part is a streaming polars sink fed by ``frames``: it encodes row groups on polars'
    threads while the next batches are read and transformed, holding only a few batches.
    """
    parts: list[str] = []
    head = next(frames, None)
    while head is not None or not parts:

        def part_frames(*_pushdown: object, first: pl.DataFrame | None = head):
            nonlocal head
            rows, frame = 0, first
            while frame is not None:
                yield frame
                rows += frame.height
                frame = next(frames, None)
                if rows >= part_rows:
                    break
            head = frame  # the first frame of the next part, if any

        path = f"{folder}/part-{len(parts):05d}.parquet"
        parts.append(path)
        target, storage_options = storage.native_target(path)
        register_io_source(part_frames, schema=schema, validate_schema=True).sink_parquet(
            target,
            storage_options=storage_options,
            mkdir=True,
            compression="zstd",
            compression_level=ZSTD_LEVEL,
            row_group_size=row_group_rows,
        )
    return parts


def write_version(
    plan: DatasetPlan,
    storage: Storage,
    folder: str,
    *,
    batch_rows: int,
    part_rows: int,
    timeout: float,
    on_rows: Callable[[int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    circuits: CircuitBreaker | None = None,
) -> BuildResult:
    """Stream every source of the plan into Parquet parts under ``folder`` (through the
    sources' circuit breakers when ``circuits`` is given)."""
    started = time.perf_counter()
    result = BuildResult(version=0, location=None)
    failures: Counter[str] = Counter()
    frames = _transformed_frames(
        plan,
        result,
        failures,
        batch_rows=batch_rows,
        timeout=timeout,
        on_rows=on_rows,
        should_stop=should_stop,
        circuits=circuits,
    )
    try:
        result.parts = _write_parts(
            frames,
            storage,
            folder,
            plan.schema,
            part_rows=part_rows,
            row_group_rows=max(batch_rows, ROW_GROUP_ROWS),
        )
    finally:
        frames.close()
    # The parts' sizes as stored (one stat, or one HEAD on S3, per part).
    result.bytes_written = sum(storage.fs.size(part) for part in result.parts)
    result.cast_failures = dict(failures)
    result.seconds = time.perf_counter() - started
    return result


def manifest(
    plan: DatasetPlan, request: DatasetRequest, result: BuildResult, job_id: str, storage: Storage
) -> dict[str, Any]:
    return {
        "name": plan.name,
        "version": result.version,
        "storage_type": request.storage_type,
        "job_id": job_id,
        "created_at": utcnow().isoformat(),
        "schema": plan.columns_public(),
        "row_count": result.rows_written if request.storage_type == "copy_to_minio" else None,
        "rows_per_source": result.rows_per_source,
        "cast_failures": result.cast_failures,
        "parts": [storage.url(p).rsplit("/", 1)[-1] for p in result.parts],
        "sources": [
            {
                "connection": s.connection_name,
                "schema": s.schema,
                "table": s.name,
                "table_id": s.table_id,
                "columns": [c.source_name for c in s.columns],
            }
            for s in plan.sources
        ],
        "mapping_snapshot": plan.mapping_snapshot,
        "output_names": plan.output_names,
        "request": request.model_dump(),
    }
