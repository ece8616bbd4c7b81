"""A dataset's and its versions' states follow their job's end, whoever ends the job."""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest
from catalog_helpers import half_written_version, register, sync, tables_by_name
from fabric_core.dataset_jobs import queue_dataset, sweep_datasets
from fabric_core.datasets.build import allocate_version, clean_abandoned_versions
from fabric_core.jobs import cancel_job, claim_job, fail_stale_jobs, finish_job
from fabric_core.models import Dataset, DatasetVersion, Job, utcnow
from fabric_core.runtime import create_runtime
from fabric_core.schemas import DatasetRequest
from service_helpers import running_stack, wait_for_job
from sqlalchemy import select, update


def _one_table(path: Path) -> None:
    with sqlite3.connect(path) as connection:
        connection.executescript(
            "CREATE TABLE t (id INTEGER PRIMARY KEY); INSERT INTO t VALUES (1);"
        )
    connection.close()


@pytest.fixture
def table_id(runtime, tmp_path):
    path = tmp_path / "src.db"
    with sqlite3.connect(path) as connection:
        connection.executescript(
            "CREATE TABLE t (id INTEGER PRIMARY KEY); INSERT INTO t VALUES (1);"
        )
    connection.close()
    connection_id = register(runtime, name="src", kind="sqlite", database=str(path))
    sync(runtime, connection_id)
    return tables_by_name(runtime, connection_id)[("main", "t")].id


def _queue(runtime, table_id, name="d") -> str:
    request = DatasetRequest(name=name, selection_mode="tables", selected_tables=[table_id])
    with runtime.session_factory.begin() as session:
        job, _ = queue_dataset(session, request, runtime.box, orchestrator="test")
        return job.id


def _dataset(runtime, name="d"):
    with runtime.session_factory() as session:
        dataset = session.scalar(select(Dataset).where(Dataset.name == name))
        versions = session.execute(
            select(DatasetVersion.version, DatasetVersion.status).where(
                DatasetVersion.dataset_id == dataset.id
            )
        ).all()
        return dataset.status, dataset.current_version, sorted(tuple(v) for v in versions)


def test_a_job_failed_before_any_worker_took_it_leaves_no_queued_dataset(runtime, table_id):
    job_id = _queue(runtime, table_id)
    assert _dataset(runtime) == ("queued", None, [])
    assert finish_job(runtime.session_factory, job_id, status="failed", error="service down")
    assert _dataset(runtime) == ("failed", None, [])


@pytest.mark.parametrize("end", ["stale", "cancelled"])
def test_a_build_ended_from_outside_fails_its_version_and_the_clean_up_removes_it(
    runtime, table_id, end
):
    job_id = _queue(runtime, table_id)
    assert claim_job(runtime.session_factory, job_id)
    with runtime.session_factory() as session:
        dataset = session.scalar(select(Dataset).where(Dataset.name == "d"))
    version = allocate_version(runtime.session_factory, dataset.id, job_id, "copy_to_minio")
    folder = Path(runtime.storage.version_dir("d", version))
    folder.mkdir(parents=True)
    (folder / "part-00000.parquet").write_bytes(b"half written")
    assert _dataset(runtime) == ("building", None, [(1, "building")])

    if end == "stale":  # its service was killed: no heartbeat any more
        with runtime.session_factory.begin() as session:
            session.execute(
                update(Job).where(Job.id == job_id).values(updated_at=utcnow() - timedelta(1))
            )
        assert fail_stale_jobs(runtime.session_factory, 120) == 1
    else:
        cancel_job(runtime.session_factory, job_id)
    assert _dataset(runtime) == ("failed", None, [(1, "failed")])

    assert clean_abandoned_versions(runtime.session_factory, runtime.storage, dataset) == 1
    assert _dataset(runtime) == ("failed", None, [(1, "removed")])  # never given out again
    assert not folder.exists()


def test_another_build_still_running_keeps_the_dataset_building(runtime, table_id):
    first, second = _queue(runtime, table_id), _queue(runtime, table_id)
    assert claim_job(runtime.session_factory, second)
    assert finish_job(runtime.session_factory, first, status="failed", error="x")
    assert _dataset(runtime)[0] == "queued"  # the second build owns the state


def test_a_dataset_queued_while_the_dataset_service_is_down_ends_failed(settings, tmp_path):
    path = tmp_path / "src.db"
    with sqlite3.connect(path) as connection:
        connection.executescript(
            "CREATE TABLE t (id INTEGER PRIMARY KEY); INSERT INTO t VALUES (1);"
        )
    connection.close()
    with running_stack(settings, with_dataset=False) as api:
        created = api.post(
            "/api/data-connections", json={"name": "s", "kind": "sqlite", "database": str(path)}
        ).json()
        synced = api.post(f"/api/data-connections/{created['id']}/sync").json()
        assert wait_for_job(api, synced["dag_run_id"])["status"] == "success"
        table = api.get(f"/api/data-connections/{created['id']}/tables").json()[0]
        body = {"name": "d", "selection_mode": "tables", "selected_tables": [table["id"]]}
        queued = api.post("/api/datasets/unified", json=body).json()
        job = wait_for_job(api, queued["dag_run_id"])
        assert job["status"] == "failed" and "did not answer" in job["error"]
        dataset = api.get("/api/datasets/d").json()
        assert (dataset["status"], dataset["current_version"], dataset["versions"]) == (
            "failed",
            None,
            [],
        )


@pytest.fixture
def runtime_on(settings, metadata_url):
    """A runtime on the embedded SQLite and on a PostgreSQL metadata DB."""
    runtime = create_runtime(settings.model_copy(update={"database_url": metadata_url}))
    yield runtime
    runtime.close()


def test_the_dataset_sweep_removes_what_a_dead_build_left(runtime_on, tmp_path):
    runtime = runtime_on
    path = tmp_path / "src.db"
    _one_table(path)
    connection_id = register(runtime, name="src", kind="sqlite", database=str(path))
    sync(runtime, connection_id)
    table = tables_by_name(runtime, connection_id)[("main", "t")].id
    job_id = _queue(runtime, table)
    folder = half_written_version(runtime, "d", job_id)
    assert finish_job(runtime.session_factory, job_id, status="failed", error="killed")

    sweep_datasets(runtime)  # what the dataset service runs on start and periodically
    assert _dataset(runtime) == ("failed", None, [(1, "removed")])
    assert not folder.exists()
