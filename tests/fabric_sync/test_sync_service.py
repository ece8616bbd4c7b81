"""The sync service on its own: submit, status, idempotence, bad requests, metrics."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time

import httpx
import pytest
from catalog_helpers import register
from fabric_core.jobs import create_job
from fabric_core.models import Job
from fabric_core.polling import wait_for_job_end
from fabric_sync.app import create_app
from fabric_web.serving import free_port
from fastapi.testclient import TestClient
from metrics_helpers import value, wait_for_value
from service_helpers import SERVICE_HEADERS


@pytest.fixture
def service(settings):
    with TestClient(create_app(settings), headers=SERVICE_HEADERS) as client:
        yield client


@pytest.fixture
def queued_job(service, tmp_path):
    path = tmp_path / "s.db"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT)")
    connection.close()
    runtime = service.app.state.runtime
    connection_id = register(runtime, name="s", kind="sqlite", database=str(path))
    with runtime.session_factory.begin() as session:
        job_id = create_job(
            session, kind="sync", id_prefix=f"sync_{connection_id}", connection_id=connection_id
        ).id
    return job_id, connection_id


def _wait(service, job_id):
    return wait_for_job_end(
        lambda: service.get(f"/status/{job_id}").json(), poll_interval=0.05, timeout=30
    )


def test_a_job_submitted_twice_runs_once(service, queued_job):
    job_id, connection_id = queued_job
    body = {"job_id": job_id, "connection_id": connection_id}
    first = service.post("/process-sync", json=body)
    assert first.status_code == 202 and first.json()["accepted"] is True
    status = _wait(service, job_id)
    assert status["status"] == "success" and status["stats"]["columns_added"] == 2
    again = service.post("/process-sync", json=body)
    assert again.status_code == 202
    assert again.json() == {"job_id": job_id, "status": "success", "accepted": False}
    time.sleep(0.3)
    status = service.get(f"/status/{job_id}").json()
    assert status["attempts"] == 1 and status["stats"]["columns_added"] == 2

    metrics = wait_for_value(
        lambda: service.get("/metrics").text,
        "fabric_jobs_ended_total",
        1,
        kind="sync",
        status="success",
    )
    assert value(metrics, "fabric_jobs_ended_total", kind="sync", status="success") == 1
    assert value(metrics, "fabric_job_workers_busy", service="sync") == 0
    assert value(metrics, "fabric_job_workers", service="sync") == 3
    assert value(metrics, "fabric_job_queue_wait_seconds_count", kind="sync") == 1
    assert value(metrics, "fabric_job_run_duration_seconds_count", kind="sync", status="success")
    assert value(metrics, "fabric_catalog_changes_total", object="table", change="added") == 1
    assert value(metrics, "fabric_catalog_changes_total", object="column", change="added") == 2
    assert value(metrics, "fabric_job_retries_total", kind="sync") == 0
    assert value(metrics, "fabric_jobs_ended_total", kind="sync", status="failed") == 0


def test_bad_requests(service, queued_job):
    job_id, _connection_id = queued_job
    unknown = service.post("/process-sync", json={"job_id": "sync_1_1", "connection_id": 1})
    assert unknown.status_code == 404 and "sync_1_1" in unknown.json()["detail"]
    wrong = service.post("/process-sync", json={"job_id": job_id, "connection_id": 999})
    assert wrong.status_code == 422 and "belongs to connection" in wrong.json()["detail"]
    assert service.post("/process-sync", json={"job_id": job_id}).status_code == 422
    assert service.get("/status/nope").status_code == 404
    assert service.get(f"/status/{job_id}").json()["status"] == "queued"


def test_health_reports_the_database(service, settings):
    assert service.get("/health").json() == {"status": "ok", "service": "sync", "database": "ok"}
    down = settings.model_copy(
        update={
            "database_url": f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/x",
            "auto_migrate": False,
        }
    )
    with TestClient(create_app(down)) as client:
        response = client.get("/health")
    assert response.status_code == 503
    assert response.json()["status"] == "unavailable"
    assert response.json()["database"].startswith("error")


def test_concurrent_hand_overs_accept_exactly_one(settings, tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    from fabric_web.serving import serve_in_thread

    app = create_app(settings)
    server = serve_in_thread(app)
    try:
        runtime, submitted = app.state.runtime, []
        # The job stays queued (no worker takes it), so every hand-over sees it queued.
        app.state.workers.submit = lambda job_id, *args: submitted.append(job_id)
        with runtime.session_factory.begin() as session:
            job_id = create_job(session, kind="sync", id_prefix="sync_c", connection_id=None).id
        body = {"job_id": job_id, "connection_id": 0}
        with runtime.session_factory.begin() as session:  # the job names connection 0
            session.get(Job, job_id).params = {"connection_id": 0}

        def hand_over(_: int) -> dict:
            with httpx.Client(base_url=server.url, timeout=30, headers=SERVICE_HEADERS) as client:
                answer = client.post("/process-sync", json=body)
                assert answer.status_code == 202, answer.text
                return answer.json()

        with ThreadPoolExecutor(6) as pool:
            answers = list(pool.map(hand_over, range(6)))
        assert [a["accepted"] for a in answers].count(True) == 1
        assert submitted == [job_id]
    finally:
        server.stop()


def test_a_job_still_queued_after_the_hand_over_window_is_taken_again(settings, tmp_path):
    from fabric_core.jobs import accept_hand_over

    settings = settings.model_copy(update={"job_handover_seconds": 0.2})
    with TestClient(create_app(settings), headers=SERVICE_HEADERS) as service:
        runtime = service.app.state.runtime
        with runtime.session_factory.begin() as session:
            job_id = create_job(session, kind="sync", id_prefix="sync_x").id
        # A service took it, then died before a worker claimed it.
        assert accept_hand_over(runtime.session_factory, job_id, 0.2)
        assert not accept_hand_over(runtime.session_factory, job_id, 0.2)
        time.sleep(0.3)
        assert accept_hand_over(runtime.session_factory, job_id, 0.2)


STARTED_SERVICE = """
import json, sys
from fastapi.testclient import TestClient
from fabric_core.settings import Settings
from fabric_sync.app import create_app

settings = Settings.model_validate_json(sys.argv[1])
before = {name: name in sys.modules for name in ("psycopg", "pymysql", "s3fs")}
with TestClient(create_app(settings)):
    after = {name: name in sys.modules for name in ("psycopg", "pymysql", "s3fs")}
print(json.dumps({"before": before, "after": after}))
"""


def test_the_service_loads_the_sql_drivers_at_start_up_and_s3_on_first_use(settings):
    """A first sync does not pay for importing its driver (psycopg: 0.3 s); the S3 kind's
    libraries (2 s, 64 MB) load only where a source on S3 is synced."""
    answer = subprocess.run(
        [sys.executable, "-c", STARTED_SERVICE, settings.model_dump_json()],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    modules = json.loads(answer.stdout.strip().splitlines()[-1])
    assert modules["before"] == {"psycopg": False, "pymysql": False, "s3fs": False}
    assert modules["after"] == {"psycopg": True, "pymysql": True, "s3fs": False}


def test_the_sweep_removes_drift_resolved_longer_ago_than_the_retention(settings, tmp_path):
    """Resolved drift items are kept FABRIC_DRIFT_RETENTION_DAYS; the sync service's sweep
    (on start and every FABRIC_SWEEP_SECONDS) removes older ones, never open ones."""
    from datetime import timedelta

    from catalog_helpers import sync, tables_by_name
    from fabric_core.models import DriftItem, utcnow
    from fabric_core.runtime import create_runtime
    from sqlalchemy import select

    settings = settings.model_copy(update={"drift_retention_days": 7.0, "sweep_seconds": 0.2})
    path = tmp_path / "d.db"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE t (id INTEGER PRIMARY KEY)")
    connection.close()
    runtime = create_runtime(settings)
    connection_id = register(runtime, name="d", kind="sqlite", database=str(path))
    sync(runtime, connection_id)
    table_id = tables_by_name(runtime, connection_id)[("main", "t")].id
    now = utcnow()
    ages = {"open": None, "resolved 6 days ago": 6, "resolved 8 days ago": 8}
    with runtime.session_factory.begin() as session:
        for message, days in ages.items():
            session.add(
                DriftItem(
                    connection_id=connection_id,
                    table_id=table_id,
                    severity="info",
                    kind="new_column",
                    column_name="main.t",
                    message=message,
                    resolved_at=None if days is None else now - timedelta(days=days),
                )
            )
    runtime.close()

    def messages() -> set[str]:
        with runtime.session_factory() as session:
            return set(session.scalars(select(DriftItem.message)))

    with TestClient(create_app(settings), headers=SERVICE_HEADERS) as client:
        runtime = client.app.state.runtime
        deadline = time.monotonic() + 10
        while "resolved 8 days ago" in messages():
            assert time.monotonic() < deadline, messages()
            time.sleep(0.1)
        assert messages() == {"open", "resolved 6 days ago"}
        with runtime.session_factory.begin() as session:
            item = session.scalars(
                select(DriftItem).where(DriftItem.message == "resolved 6 days ago")
            ).one()
            item.resolved_at = utcnow() - timedelta(days=7, seconds=1)
        deadline = time.monotonic() + 10
        while "resolved 6 days ago" in messages():  # the next round, every sweep_seconds
            assert time.monotonic() < deadline, messages()
            time.sleep(0.1)
        assert messages() == {"open"}
