"""Register a connection and sync it through fabric_core, as the sync service does."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fabric_core.catalog.browse import get_table, list_tables
from fabric_core.catalog.sync import SyncStats, sync_connection
from fabric_core.connections import connection_spec, create_connection, get_connection
from fabric_core.paging import MAX_LIMIT, Page
from fabric_core.runtime import Runtime
from fabric_core.schemas import ConnectionCreate, TableDetail

COUNTERS = (
    "tables_added",
    "tables_changed",
    "tables_removed",
    "columns_added",
    "columns_changed",
    "columns_removed",
)


def register(runtime: Runtime, **fields: Any) -> int:
    with runtime.session_factory.begin() as session:
        connection = create_connection(
            session, ConnectionCreate(**fields), runtime.box, runtime.source_policy
        )
        return connection.id


def sync(runtime: Runtime, connection_id: int) -> SyncStats:
    with runtime.session_factory() as session:
        spec = connection_spec(
            get_connection(session, connection_id), runtime.box, runtime.source_policy
        )
    return sync_connection(runtime.session_factory, connection_id, spec, timeout=5)


def counters(stats: SyncStats) -> dict[str, int]:
    return {name: getattr(stats, name) for name in COUNTERS}


def tables_by_name(runtime: Runtime, connection_id: int) -> dict[tuple[str, str], TableDetail]:
    with runtime.session_factory() as session:
        return {
            (table.schema_, table.name): get_table(session, table.id)
            for table in list_tables(session, connection_id, page=Page(limit=MAX_LIMIT)).items
        }


def columns_of(table: TableDetail) -> dict[str, Any]:
    return {column.name: column for column in table.columns}


def half_written_version(runtime: Runtime, dataset_name: str, job_id: str) -> Path:
    """Claim the dataset job and leave a version with one half-written part, as a build
    killed mid-way does; returns the version's folder."""
    from fabric_core.datasets.build import allocate_version
    from fabric_core.jobs import claim_job
    from fabric_core.models import Dataset
    from sqlalchemy import select

    assert claim_job(runtime.session_factory, job_id)
    with runtime.session_factory() as session:
        dataset_id = session.scalar(select(Dataset.id).where(Dataset.name == dataset_name))
    version = allocate_version(runtime.session_factory, dataset_id, job_id, "copy_to_minio")
    folder = Path(runtime.storage.version_dir(dataset_name, version))
    folder.mkdir(parents=True)
    (folder / "part-00000.parquet").write_bytes(b"half written by a killed build")
    return folder
