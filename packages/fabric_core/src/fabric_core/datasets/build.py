"""Building a version of a unified dataset: read, transform, write Parquet, then publish.

A version becomes visible only when complete: its ``_manifest.json`` is written last and the
metadata DB marks it complete in the same step that makes it the dataset's current version. A
failed build removes what it wrote and its version record.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from fabric_core.datasets.plan import PROVENANCE_COLUMNS, DatasetPlan
from fabric_core.datasets.reading import read_ahead, read_source
from fabric_core.datasets.storage import Storage
from fabric_core.datasets.transform import transform_batch
from fabric_core.errors import FabricError, JobCancelledError
from fabric_core.models import Dataset, DatasetVersion, Job, utcnow
from fabric_core.schemas import TERMINAL_STATUSES, DatasetRequest

MANIFEST = "_manifest.json"
# polars hands its string views to the Parquet writer without a copy; the files carry only
# Parquet's own types (store_schema=False), so every reader sees plain strings.
_ARROW_LEVEL = pl.CompatLevel.newest()


@dataclass
class BuildResult:
    version: int
    location: str | None
    rows_written: int = 0
    rows_per_source: dict[str, int] = field(default_factory=dict)
    cast_failures: dict[str, int] = field(default_factory=dict)
    parts: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def stats(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "location": self.location,
            "rows_written": self.rows_written,
            "rows_per_source": self.rows_per_source,
            "cast_failures": self.cast_failures,
            "parts": len(self.parts),
            "seconds": round(self.seconds, 3),
            "rows_per_second": round(self.rows_written / self.seconds) if self.seconds else None,
        }


def arrow_schema(plan: DatasetPlan) -> pa.Schema:
    return pl.DataFrame(schema=plan.schema).to_arrow(compat_level=_ARROW_LEVEL).schema


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
    raise FabricError(f"Could not reserve a version of dataset {dataset_id}.")


def clean_abandoned_versions(
    session_factory: sessionmaker[Session], storage: Storage, dataset: Dataset
) -> int:
    """Remove versions left ``building`` by jobs that have ended (a crashed or killed build)."""
    with session_factory() as session:
        abandoned = session.scalars(
            select(DatasetVersion.version)
            .outerjoin(Job, Job.id == DatasetVersion.job_id)
            .where(
                DatasetVersion.dataset_id == dataset.id,
                DatasetVersion.status == "building",
                (Job.id.is_(None)) | Job.status.in_(TERMINAL_STATUSES),
            )
        ).all()
    for version in abandoned:
        storage.remove_tree(storage.version_dir(dataset.name, version))
        with session_factory.begin() as session:
            session.execute(
                delete(DatasetVersion).where(
                    DatasetVersion.dataset_id == dataset.id, DatasetVersion.version == version
                )
            )
    return len(abandoned)


class _PartWriter:
    """Parquet parts of at most ``part_rows`` rows each, zstd, one row group per batch."""

    def __init__(
        self,
        storage: Storage,
        folder: str,
        schema: pa.Schema,
        part_rows: int,
        dictionary_columns: list[str],
    ) -> None:
        self.storage, self.folder, self.schema, self.part_rows = storage, folder, schema, part_rows
        # Dictionary pages pay off only for few distinct values; elsewhere they double the
        # write time and grow the file (measured: docs/benchmarks.md).
        self.dictionary_columns = dictionary_columns
        self.parts: list[str] = []
        self._writer: pq.ParquetWriter | None = None
        self._handle = None
        self._rows_in_part = 0

    def write(self, table: pa.Table) -> None:
        if self._writer is None or self._rows_in_part >= self.part_rows:
            self._roll()
        assert self._writer is not None
        self._writer.write_table(table.cast(self.schema), row_group_size=max(table.num_rows, 1))
        self._rows_in_part += table.num_rows

    def _roll(self) -> None:
        self.close()
        path = f"{self.folder}/part-{len(self.parts):05d}.parquet"
        self._handle = self.storage.open_write(path)
        self._writer = pq.ParquetWriter(
            self._handle,
            self.schema,
            compression="zstd",
            compression_level=3,
            use_dictionary=self.dictionary_columns or False,
            # Min/max of free text costs a third of the write time and prunes little.
            write_statistics=[f.name for f in self.schema if not _is_text(f.type)],
            store_schema=False,
        )
        self.parts.append(path)
        self._rows_in_part = 0

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._handle.close()
            self._writer = self._handle = None


def _is_text(arrow_type: pa.DataType) -> bool:
    return (
        pa.types.is_string(arrow_type)
        or pa.types.is_large_string(arrow_type)
        or pa.types.is_string_view(arrow_type)
        or pa.types.is_binary(arrow_type)
        or pa.types.is_large_binary(arrow_type)
        or pa.types.is_binary_view(arrow_type)
    )


class _WriteBehind:
    """Encodes Parquet on one background thread while the caller transforms the next batch.

    At most ``depth`` tables wait; order is kept (one thread); a write error surfaces at the
    next ``write`` or at ``drain``.
    """

    def __init__(self, writer: _PartWriter, depth: int = 2) -> None:
        self.writer = writer
        self.depth = depth
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="parquet-writer")
        self._pending: deque[Future[None]] = deque()

    def write(self, table: pa.Table) -> None:
        while len(self._pending) >= self.depth:
            self._pending.popleft().result()
        self._pending.append(self._thread.submit(self.writer.write, table))

    def drain(self) -> None:
        """Wait for every queued write; raises the first write error."""
        try:
            while self._pending:
                self._pending.popleft().result()
        finally:
            self._thread.shutdown(wait=True, cancel_futures=True)

    def discard(self) -> None:
        """Stop after a failure elsewhere: wait for the thread, keep that first error."""
        self._thread.shutdown(wait=True, cancel_futures=True)
        self._pending.clear()


def write_version(
    plan: DatasetPlan,
    storage: Storage,
    folder: str,
    *,
    batch_rows: int,
    part_rows: int,
    timeout: float,
    on_rows=None,
    should_stop=None,
) -> BuildResult:
    """Stream every source of the plan into Parquet parts under ``folder``."""
    started = time.perf_counter()
    result = BuildResult(version=0, location=None)
    failures: Counter[str] = Counter()
    coded = {c.output_name for s in plan.sources for c in s.columns if c.value_map}
    writer = _PartWriter(
        storage,
        folder,
        arrow_schema(plan),
        part_rows,
        dictionary_columns=[*PROVENANCE_COLUMNS, *sorted(coded)],
    )
    behind = _WriteBehind(writer)
    try:
        for source in plan.sources:
            rows = 0
            batches = read_ahead(
                read_source(source, limit=None, batch_rows=batch_rows, timeout=timeout)
            )
            try:
                for batch in batches:
                    if should_stop and should_stop():
                        raise JobCancelledError("The job was cancelled.")
                    frame = transform_batch(batch, source, plan, failures)
                    behind.write(frame.to_arrow(compat_level=_ARROW_LEVEL))
                    rows += frame.height
                    result.rows_written += frame.height
                    if on_rows:
                        on_rows(result.rows_written)
            finally:
                batches.close()
            result.rows_per_source[source.label] = rows
        behind.drain()
        if not writer.parts:  # every source was empty: still one (empty) part with the schema
            writer._roll()
    except BaseException:
        behind.discard()
        raise
    finally:
        writer.close()
    result.parts = writer.parts
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
        "request": request.model_dump(),
    }
