"""The dataset service on its own: submit once, status, bad requests, health, metrics."""

from __future__ import annotations

import sqlite3
import time

import pytest
from catalog_helpers import register, sync, tables_by_name
from fabric_core.dataset_jobs import queue_dataset
from fabric_core.polling import wait_for_job_end
from fabric_core.schemas import DatasetRequest
from fabric_dataset.app import create_app
from fastapi.testclient import TestClient
from metrics_helpers import value, wait_for_value
from service_helpers import SERVICE_HEADERS


@pytest.fixture
def service(settings):
    with TestClient(create_app(settings), headers=SERVICE_HEADERS) as client:
        yield client


@pytest.fixture
def queued(service, tmp_path):
    path = tmp_path / "s.db"
    with sqlite3.connect(path) as connection:
        connection.executescript(
            "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT);"
            "INSERT INTO t VALUES (1, 'a'), (2, 'b');"
        )
    connection.close()
    runtime = service.app.state.runtime
    connection_id = register(runtime, name="s", kind="sqlite", database=str(path))
    sync(runtime, connection_id)
    table_id = tables_by_name(runtime, connection_id)[("main", "t")].id
    request = DatasetRequest(name="small", selection_mode="tables", selected_tables=[table_id])
    with runtime.session_factory.begin() as session:
        job, _ = queue_dataset(session, request, runtime.box, orchestrator="test")
    return job.id, request


def _wait(service, job_id):
    return wait_for_job_end(
        lambda: service.get(f"/status/{job_id}").json(), poll_interval=0.05, timeout=30
    )


def test_a_job_submitted_twice_builds_once(service, queued, settings):
    job_id, request = queued
    body = {**request.model_dump(), "job_id": job_id}
    assert service.post("/process-dataset-creation", json=body).json()["accepted"] is True
    status = _wait(service, job_id)
    assert status["status"] == "success" and status["stats"]["rows_written"] == 2
    again = service.post("/process-dataset-creation", json=body)
    assert again.status_code == 202 and again.json()["accepted"] is False
    versions = list((settings.storage_path / "datasets" / "small").iterdir())
    assert [v.name for v in versions] == ["v1"]
    metrics = wait_for_value(
        lambda: service.get("/metrics").text,
        "fabric_jobs_ended_total",
        1,
        kind="dataset",
        status="success",
    )
    assert value(metrics, "fabric_job_written_rows_total", kind="dataset") == 2
    part_bytes = sum(p.stat().st_size for p in versions[0].glob("part-*.parquet"))
    assert part_bytes > 0 and status["stats"]["bytes_written"] == part_bytes
    assert value(metrics, "fabric_job_written_bytes_total", kind="dataset") == part_bytes
    assert value(metrics, "fabric_job_cast_failures_total", kind="dataset") == 0


def test_bad_requests(service, queued):
    job_id, request = queued
    other = {**request.model_dump(), "name": "other", "job_id": job_id}
    response = service.post("/process-dataset-creation", json=other)
    assert response.status_code == 422 and "differs" in response.json()["detail"]
    unknown = service.post(
        "/process-dataset-creation", json={**request.model_dump(), "job_id": "dataset_x_1"}
    )
    assert unknown.status_code == 404
    assert service.get(f"/status/{job_id}").json()["status"] == "queued"
    preview = service.post("/preview-dataset-creation", json={**request.model_dump(), "limit": 0})
    assert preview.status_code == 422


def test_health_checks_database_and_storage(service):
    assert service.get("/health").json() == {
        "status": "ok",
        "service": "dataset",
        "database": "ok",
        "storage": "ok",
    }


def test_a_cancelled_build_stops_and_leaves_no_version(settings, tmp_path):
    import threading

    from fabric_core.job_kinds import DATASET
    from fabric_core.job_runner import run_job
    from fabric_core.jobs import cancel_job, get_job
    from fabric_core.runtime import create_runtime

    path = tmp_path / "big.db"
    with sqlite3.connect(path) as connection:
        connection.executescript(
            """
            CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT);
            WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 500000)
            INSERT INTO t SELECT i, 'value ' || i FROM n;
            """
        )
    connection.close()
    runtime = create_runtime(settings.model_copy(update={"dataset_batch_rows": 1000}))
    connection_id = register(runtime, name="big", kind="sqlite", database=str(path))
    sync(runtime, connection_id)
    table_id = tables_by_name(runtime, connection_id)[("main", "t")].id
    request = DatasetRequest(name="big", selection_mode="tables", selected_tables=[table_id])
    with runtime.session_factory.begin() as session:
        job, _ = queue_dataset(session, request, runtime.box, orchestrator="test")
    worker = threading.Thread(
        target=run_job,
        args=(DATASET, runtime, job.id),
    )
    worker.start()
    deadline = time.monotonic() + 30
    while True:
        with runtime.session_factory() as session:
            if get_job(session, job.id).status == "running":
                break
        assert time.monotonic() < deadline
        time.sleep(0.02)
    time.sleep(0.3)
    cancel_job(runtime.session_factory, job.id)
    worker.join(30)
    assert not worker.is_alive()
    with runtime.session_factory() as session:
        ended = get_job(session, job.id)
    assert (ended.status, ended.error) == ("cancelled", "Cancelled on request.")
    folder = settings.storage_path / "datasets" / "big"
    assert not any(folder.rglob("*.parquet")) and not any(folder.rglob("_manifest.json"))
    runtime.close()
