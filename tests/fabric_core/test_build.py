"""Writing a version: parts split by rows, an empty build still has the schema, write errors."""

from __future__ import annotations

import dataclasses
import sqlite3
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import pytest
from catalog_helpers import register, sync, tables_by_name
from fabric_core.dataset_jobs import queue_dataset
from fabric_core.datasets import build
from fabric_core.datasets.build import write_version
from fabric_core.datasets.plan import plan_dataset
from fabric_core.job_kinds import DATASET
from fabric_core.job_runner import run_job
from fabric_core.jobs import get_job
from fabric_core.schemas import DatasetRequest


@pytest.fixture
def source(runtime, tmp_path: Path) -> dict[str, int]:
    """A SQLite source with ``big`` (6,500 rows), ``more`` (1,200 rows) and ``none`` (empty)."""
    path = tmp_path / "parts.db"
    with sqlite3.connect(path) as connection:
        connection.executescript(
            """
            CREATE TABLE big (id INTEGER PRIMARY KEY, label TEXT, score REAL);
            CREATE TABLE more (id INTEGER PRIMARY KEY, label TEXT, score REAL);
            CREATE TABLE none (id INTEGER PRIMARY KEY, label TEXT, score REAL);
            WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 6500)
            INSERT INTO big SELECT i, 'label ' || (i % 7), i / 4.0 FROM n;
            WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1200)
            INSERT INTO more SELECT 100000 + i, 'more', NULL FROM n;
            """
        )
    connection.close()
    connection_id = register(runtime, name="parts", kind="sqlite", database=str(path))
    sync(runtime, connection_id)
    return {name: t.id for (_, name), t in tables_by_name(runtime, connection_id).items()}


def _plan(runtime, *table_ids: int):
    request = DatasetRequest(name="parts", selection_mode="tables", selected_tables=table_ids)
    with runtime.session_factory() as session:
        return plan_dataset(session, request, runtime.box, runtime.source_policy)


def _write(runtime, plan, folder: str, *, batch_rows: int = 1000, part_rows: int = 2500):
    return write_version(
        plan, runtime.storage, folder, batch_rows=batch_rows, part_rows=part_rows, timeout=10
    )


def test_parts_hold_about_part_rows_and_span_sources(runtime, source):
    plan = _plan(runtime, source["big"], source["more"])
    folder = runtime.storage.path("check", "v1")
    result = _write(runtime, plan, folder)

    assert result.rows_written == 7700
    assert result.rows_per_source == {"parts.main.big": 6500, "parts.main.more": 1200}
    # Batches of 1,000: a part closes at the first batch that reaches 2,500 rows.
    counts = [pq.ParquetFile(path).metadata.num_rows for path in result.parts]
    assert counts == [3000, 3000, 1700]
    assert [Path(p).name for p in result.parts] == [
        "part-00000.parquet",
        "part-00001.parquet",
        "part-00002.parquet",
    ]
    frame = pl.concat([pl.read_parquet(path) for path in result.parts])
    assert frame["id"].to_list() == [*range(1, 6501), *range(100001, 101201)]
    assert frame.group_by("_source_table").len().sort("_source_table").rows() == [
        ("main.big", 6500),
        ("main.more", 1200),
    ]
    assert frame.filter(pl.col("id") == 10)["score"].item() == 2.5
    assert frame.schema["score"] == pl.Float64


def test_row_groups_do_not_shrink_with_the_read_batch(runtime, source, monkeypatch):
    # Small read batches bound memory; the row groups written stay as large as before.
    monkeypatch.setattr(build, "ROW_GROUP_ROWS", 2000)
    plan = _plan(runtime, source["big"])
    result = _write(runtime, plan, runtime.storage.path("groups", "v1"), part_rows=5000)

    groups = [
        [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]
        for meta in (pq.ParquetFile(path).metadata for path in result.parts)
    ]
    assert groups == [[2000, 2000, 1000], [1500]]


def test_a_build_of_empty_tables_has_one_part_with_the_schema(runtime, source):
    plan = _plan(runtime, source["none"])
    result = _write(runtime, plan, runtime.storage.path("empty", "v1"))
    assert result.rows_written == 0 and len(result.parts) == 1
    frame = pl.read_parquet(result.parts[0])
    assert frame.height == 0
    assert frame.columns == ["id", "label", "score", "_source_connection", "_source_table"]
    assert frame.schema["id"] == pl.Int64 and frame.schema["label"] == pl.String


def test_a_write_error_fails_the_job_and_removes_what_was_written(runtime, source, settings):
    request = DatasetRequest(
        name="doomed", selection_mode="tables", selected_tables=[source["big"]]
    )
    with runtime.session_factory.begin() as session:
        job, _ = queue_dataset(session, request, runtime.box, orchestrator="test")
    # The first part is written; the second cannot be, a folder holds its name.
    blocker = Path(runtime.storage.version_dir("doomed", 1)) / "part-00001.parquet"
    blocker.mkdir(parents=True)
    settings = settings.model_copy(update={"dataset_batch_rows": 1000, "dataset_part_rows": 2500})
    run_job(DATASET, dataclasses.replace(runtime, settings=settings), job.id)
    with runtime.session_factory() as session:
        ended = get_job(session, job.id)
    assert ended.status == "failed" and "part-00001.parquet" in ended.error
    folder = Path(runtime.storage.dataset_dir("doomed"))
    assert not any(folder.rglob("*.parquet")) and not any(folder.rglob("_manifest.json"))


def test_a_conversion_that_became_impossible_after_the_request_fails_the_job_by_name(
    runtime, tmp_path
):
    """The catalog checked at the request may change before the build runs: a unified
    column retyped to one its sources do not convert to fails the job, naming the column,
    before anything is read or written."""
    from fabric_core import mapping
    from fabric_core.schemas import ColumnMappingCreate, UnifiedColumnCreate, UnifiedColumnUpdate

    path = tmp_path / "days.db"
    with sqlite3.connect(path) as connection:
        connection.executescript(
            "CREATE TABLE visits (id INTEGER PRIMARY KEY, day DATE);"
            "INSERT INTO visits VALUES (1, '2024-01-02'), (2, '2024-03-04');"
        )
    connection.close()
    connection_id = register(runtime, name="days", kind="sqlite", database=str(path))
    sync(runtime, connection_id)
    table = tables_by_name(runtime, connection_id)[("main", "visits")]
    with runtime.session_factory.begin() as session:
        unified = mapping.create_unified_column(
            session, UnifiedColumnCreate(name="visited_on", logical_type="date")
        )
        column_id = next(c.id for c in table.columns if c.name == "day")
        mapping.create_column_mapping(
            session, ColumnMappingCreate(column_id=column_id, unified_column_id=unified.id)
        )
        unified_id = unified.id
    request = DatasetRequest(name="visits", selection_mode="tables", selected_tables=[table.id])
    with runtime.session_factory.begin() as session:
        job, _ = queue_dataset(session, request, runtime.box, orchestrator="test")
    with runtime.session_factory.begin() as session:
        mapping.update_unified_column(session, unified_id, UnifiedColumnUpdate(logical_type="time"))

    run_job(DATASET, runtime, job.id)
    with runtime.session_factory() as session:
        ended = get_job(session, job.id)
    assert ended.status == "failed"
    assert "days.main.visits.day (date to time)" in ended.error
    assert not any(Path(runtime.storage.dataset_dir("visits")).rglob("*.parquet"))
