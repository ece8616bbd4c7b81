"""The gateway's metrics: queue depth and pool occupancy read from the metadata DB at scrape
time (the same on every replica), bounded in time, and source checks by outcome."""

from __future__ import annotations

import sqlite3
import threading
import time
from datetime import timedelta

from conftest import MYSQL_HOST
from fabric_core.jobs import create_job
from fabric_core.models import utcnow
from fabric_core.runtime import create_runtime
from fabric_gateway.app import create_app
from fabric_web.db_metrics import MetadataDbCollector, job_families
from fabric_web.serving import free_port
from fastapi.testclient import TestClient
from metrics_helpers import value
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import GaugeMetricFamily
from service_helpers import bearer


def _job(runtime, kind: str, status: str, age_seconds: float = 0, **values) -> None:
    with runtime.session_factory.begin() as session:
        job = create_job(session, kind=kind, id_prefix=f"{kind}_metrics")
        job.status = status
        job.created_at = job.updated_at = utcnow() - timedelta(seconds=age_seconds)
        for name, value in values.items():
            setattr(job, name, value)


def test_queue_and_pools_are_read_from_the_metadata_db_alike_by_every_replica(
    settings, metadata_url
):
    settings = settings.model_copy(update={"database_url": metadata_url, "sync_pool_slots": 4})
    first, second = create_app(settings), create_app(settings)
    with (
        TestClient(first, headers=bearer(settings)) as replica,
        TestClient(second, headers=bearer(settings)) as other_replica,
    ):
        runtime = replica.app.state.runtime
        _job(runtime, "sync", "queued", age_seconds=90)
        _job(runtime, "sync", "queued")
        _job(runtime, "sync", "running")
        _job(runtime, "dataset", "running")
        _job(runtime, "dataset", "running")
        _job(runtime, "dataset", "success")
        scrapes = [replica.get("/metrics").text, other_replica.get("/metrics").text]

    for text in scrapes:
        assert value(text, "fabric_metadata_db_up") == 1
        assert value(text, "fabric_jobs_queued", kind="sync") == 2
        assert value(text, "fabric_jobs_queued", kind="dataset") == 0
        assert value(text, "fabric_jobs_running", kind="sync") == 1
        assert value(text, "fabric_jobs_running", kind="dataset") == 2
        assert value(text, "fabric_pool_slots", pool="sync_pool") == 4
        assert value(text, "fabric_pool_slots", pool="dataset_pool") == 2
        assert value(text, "fabric_pool_slots_in_use", pool="sync_pool") == 1
        assert value(text, "fabric_pool_slots_in_use", pool="dataset_pool") == 2
        assert 90 <= value(text, "fabric_jobs_oldest_queued_age_seconds", kind="sync") < 120
        assert value(text, "fabric_jobs_oldest_queued_age_seconds", kind="dataset") == 0


def test_jobs_handed_over_or_waiting_for_a_retry_hold_their_pool_slots(settings, metadata_url):
    settings = settings.model_copy(update={"database_url": metadata_url, "sync_pool_slots": 3})
    with TestClient(create_app(settings), headers=bearer(settings)) as api:
        runtime = api.app.state.runtime
        later = utcnow() + timedelta(minutes=1)
        _job(runtime, "sync", "running")
        _job(runtime, "sync", "queued", handed_over_at=utcnow())  # its service has it
        # Queued again an hour after it was created, for an attempt a minute from now.
        _job(runtime, "sync", "queued", age_seconds=3600, next_attempt_at=later)
        _job(runtime, "sync", "queued", age_seconds=30)  # waits for a slot
        text = api.get("/metrics").text

    assert value(text, "fabric_pool_slots_in_use", pool="sync_pool") == 3
    assert value(text, "fabric_jobs_queued", kind="sync") == 2
    assert value(text, "fabric_jobs_retry_waiting", kind="sync") == 1
    # The job waiting for its retry is not the longest waiter: the one without a slot is.
    assert 30 <= value(text, "fabric_jobs_oldest_queued_age_seconds", kind="sync") < 60


def _scrape(collector: MetadataDbCollector) -> str:
    registry = CollectorRegistry()
    registry.register(collector)
    return generate_latest(registry).decode()


def test_a_slow_metadata_db_is_reported_down_without_holding_the_scrape(runtime):
    runtime.settings.metrics_db_timeout_seconds = 0.3
    release = threading.Event()
    calls = []

    def slow(session, settings):
        calls.append(1)
        release.wait(10)
        family = GaugeMetricFamily("fabric_test_slow", "A family that waits.")
        family.add_metric([], 1)
        yield family

    collector = MetadataDbCollector(lambda: runtime, families=[slow, job_families])
    started = time.monotonic()
    text = _scrape(collector)
    assert time.monotonic() - started < 2
    assert value(text, "fabric_metadata_db_up") == 0
    assert value(text, "fabric_jobs_queued", kind="sync") is None

    # While the first queries still run, a scrape answers at once and starts no more.
    started = time.monotonic()
    assert value(_scrape(collector), "fabric_metadata_db_up") == 0
    assert time.monotonic() - started < 0.2 and len(calls) == 1

    release.set()
    deadline = time.monotonic() + 5
    while collector._busy and time.monotonic() < deadline:
        time.sleep(0.02)
    text = _scrape(collector)
    assert value(text, "fabric_metadata_db_up") == 1
    assert value(text, "fabric_test_slow") == 1
    assert value(text, "fabric_jobs_queued", kind="sync") == 0
    assert len(calls) == 2


def test_an_unreachable_metadata_db_is_reported_down_not_raised(settings):
    url = f"postgresql+psycopg://nobody@127.0.0.1:{free_port()}/fabric?connect_timeout=2"
    unreachable = create_runtime(settings.model_copy(update={"database_url": url}), migrate=False)
    try:
        text = _scrape(MetadataDbCollector(lambda: unreachable))
    finally:
        unreachable.close()
    assert value(text, "fabric_metadata_db_up") == 0
    assert "fabric_pool_slots" not in text


def test_before_the_app_starts_the_db_is_reported_down():
    assert value(_scrape(MetadataDbCollector(lambda: None)), "fabric_metadata_db_up") == 0


def test_source_checks_are_counted_by_outcome(settings, tmp_path, mysql_admin):
    path = tmp_path / "ok.db"
    sqlite3.connect(path).close()
    bodies = {
        "ok": {"kind": "sqlite", "database": str(path)},
        "unreachable": {"kind": "postgresql", "host": "127.0.0.1", "port": free_port()},
        "rejected": {
            "kind": "mysql",
            "host": MYSQL_HOST,
            "port": 3306,
            "username": "fabric_nobody",
            "password": "my-Secret-77",
        },
    }
    with TestClient(create_app(settings), headers=bearer(settings)) as api:
        before = api.get("/metrics").text
        for outcome in ("ok", "unreachable", "rejected", "error"):
            assert value(before, "fabric_source_checks_total", outcome=outcome) == 0
        for name, body in bodies.items():
            created = api.post("/api/data-connections", json={"name": name, **body})
            assert created.status_code == 201, created.text
            check = api.post(f"/api/data-connections/{created.json()['id']}/test")
            assert check.status_code == 200 and check.json()["ok"] is (name == "ok")
        # The file became a link to Fabric's own DB after it was saved: the policy refuses it.
        path.unlink()
        path.symlink_to(settings.home / "fabric.db")
        ok_id = api.get("/api/data-connections").json()[0]["id"]
        assert api.post(f"/api/data-connections/{ok_id}/test").status_code == 422
        assert api.post("/api/data-connections/999/test").status_code == 404  # not a check
        after = api.get("/metrics").text
    for outcome in ("ok", "unreachable", "rejected", "error"):
        assert value(after, "fabric_source_checks_total", outcome=outcome) == 1, outcome
