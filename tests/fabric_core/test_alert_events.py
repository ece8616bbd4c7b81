"""The events Fabric records for alerts, each in the transaction of the change it reports."""

from __future__ import annotations

import sqlite3
from datetime import timedelta

import pytest
from catalog_helpers import register, sync, tables_by_name
from fabric_core import jobs
from fabric_core.alerts.messages import with_links
from fabric_core.models import ColumnMapping, Job, OutboxEvent, UnifiedColumn, utcnow
from fabric_core.orchestrators import LocalOrchestrator
from sqlalchemy import select, update


@pytest.fixture
def event_runtime(metadata_url, settings):
    from fabric_core.runtime import create_runtime

    runtime = create_runtime(settings.model_copy(update={"database_url": metadata_url}))
    yield runtime
    runtime.close()


def _events(runtime) -> list[tuple[str, dict]]:
    with runtime.session_factory() as session:
        rows = session.execute(
            select(OutboxEvent.name, OutboxEvent.payload).order_by(OutboxEvent.id)
        )
        return [(name, payload) for name, payload in rows]


def _new_job(runtime, **fields) -> str:
    with runtime.session_factory.begin() as session:
        return jobs.create_job(session, kind="sync", id_prefix="sync_1", **fields).id


def test_a_failed_end_records_job_failed_and_other_ends_nothing(event_runtime, tmp_path):
    runtime = event_runtime
    connection_id = register(runtime, name="crm", kind="sqlite", database=str(tmp_path / "x.db"))
    failed = _new_job(runtime, connection_id=connection_id, orchestrator="airflow")
    succeeded, cancelled = _new_job(runtime), _new_job(runtime)
    assert jobs.claim_job(runtime.session_factory, failed)
    assert jobs.finish_job(runtime.session_factory, failed, status="failed", error="boom")
    assert jobs.finish_job(runtime.session_factory, succeeded, status="success", stats={})
    jobs.cancel_job(runtime.session_factory, cancelled)
    # A second end is refused and records nothing either.
    assert not jobs.finish_job(runtime.session_factory, failed, status="failed", error="again")
    assert _events(runtime) == [
        (
            "job.failed",
            {
                "job_id": failed,
                "kind": "sync",
                "orchestrator": "airflow",
                "attempts": 1,
                "connection_id": connection_id,
                "connection_name": "crm",
                "status": "failed",
                "error": "boom",
            },
        )
    ]


def test_an_end_rolled_back_leaves_no_event(event_runtime):
    job_id = _new_job(event_runtime)
    with pytest.raises(RuntimeError), event_runtime.session_factory.begin() as session:
        assert jobs.end_job(session, job_id, status="failed", error="boom")
        raise RuntimeError("the change is rolled back")
    assert _events(event_runtime) == []


def test_a_stale_job_is_failed_and_stuck(event_runtime):
    job_id = _new_job(event_runtime)
    assert jobs.claim_job(event_runtime.session_factory, job_id)
    with event_runtime.session_factory.begin() as session:
        session.execute(
            update(Job).where(Job.id == job_id).values(updated_at=utcnow() - timedelta(hours=1))
        )
    assert jobs.fail_stale_jobs(event_runtime.session_factory, 120) == 1
    events = _events(event_runtime)
    assert [name for name, _ in events] == ["job.failed", "job.stuck"]
    stuck = events[1][1]
    assert stuck["job_id"] == job_id and stuck["reason"] == "no heartbeat from its worker"
    assert "no heartbeat" in stuck["error"]


def test_a_job_that_cannot_be_handed_over_again_is_stuck(event_runtime, monkeypatch):
    runtime = event_runtime
    settings = runtime.settings.model_copy(update={"job_handover_seconds": 0})
    job_id = _new_job(runtime, orchestrator="local")
    with runtime.session_factory.begin() as session:
        session.execute(
            update(Job).where(Job.id == job_id).values(created_at=utcnow() - timedelta(hours=1))
        )
    with runtime.session_factory.begin() as session:
        # Params that no longer validate: the job cannot be handed over again.
        session.execute(update(Job).where(Job.id == job_id).values(params={"connection_id": "x"}))
    orchestrator = LocalOrchestrator(settings, runtime.session_factory)
    try:
        assert orchestrator.recover() == 0
    finally:
        orchestrator.shutdown()
    names = [(name, payload.get("reason")) for name, payload in _events(runtime)]
    assert names == [("job.failed", None), ("job.stuck", "could not be handed over again")]


def _source(path, gender_type: str, with_mail: bool = True) -> None:
    with sqlite3.connect(path) as connection:
        connection.execute("DROP TABLE IF EXISTS customers")
        mail = ", mail TEXT" if with_mail else ""
        connection.execute(
            f"CREATE TABLE customers (id INTEGER PRIMARY KEY, gender {gender_type}{mail})"
        )
    connection.close()


def test_sync_records_catalog_changed_and_broken_mappings(event_runtime, tmp_path):
    runtime = event_runtime
    path = tmp_path / "crm.db"
    _source(path, "INTEGER")
    connection_id = register(runtime, name="crm", kind="sqlite", database=str(path))
    sync(runtime, connection_id)
    assert _events(runtime) == [
        (
            "catalog.changed",
            {
                "connection_id": connection_id,
                "connection_name": "crm",
                "tables_added": 1,
                "tables_changed": 0,
                "tables_removed": 0,
                "columns_added": 3,
                "columns_changed": 0,
                "columns_removed": 0,
            },
        )
    ]
    sync(runtime, connection_id)  # nothing changed: no event
    assert len(_events(runtime)) == 1

    columns = {
        c.name: c.id for c in tables_by_name(runtime, connection_id)[("main", "customers")].columns
    }
    with runtime.session_factory.begin() as session:
        for name, logical_type in (("gender", "integer"), ("mail", "string"), ("id", "integer")):
            unified = UnifiedColumn(name=f"u_{name}", logical_type=logical_type)
            session.add(unified)
            session.flush()
            session.add(ColumnMapping(column_id=columns[name], unified_column_id=unified.id))

    _source(path, "TEXT", with_mail=False)  # gender retyped, mail removed, id unchanged
    sync(runtime, connection_id)
    events = _events(runtime)[1:]
    assert [name for name, _ in events] == ["catalog.changed", "mapping.broken", "mapping.broken"]
    changed = events[0][1]
    assert (changed["columns_changed"], changed["columns_removed"]) == (1, 1)
    broken = sorted((payload for _, payload in events[1:]), key=lambda p: p["unified_column"])
    assert [
        (p["unified_column"], p["source_column"], p["reason"], p["old_type"], p["new_type"])
        for p in broken
    ] == [
        ("u_gender", "main.customers.gender", "retyped", "integer", "string"),
        ("u_mail", "main.customers.mail", "removed", "string", None),
    ]
    assert all(p["connection_name"] == "crm" for p in broken)

    sync(runtime, connection_id)  # already broken: not reported again
    assert len(_events(runtime)) == 4


def test_links_are_added_at_delivery(settings):
    settings = settings.model_copy(
        update={
            "public_url": "https://fabric.example.com/",
            "airflow_public_url": "https://af.example.com",
        }
    )
    local = with_links({"job_id": "sync_3_17", "kind": "sync", "orchestrator": "local"}, settings)
    assert local["job_url"] == "https://fabric.example.com/api/jobs/sync_3_17"
    assert "dag_run_url" not in local
    airflow = with_links(
        {"job_id": "dataset_x_17", "kind": "dataset", "orchestrator": "airflow"}, settings
    )
    assert airflow["dag_run_url"] == (
        "https://af.example.com/dags/create_unified_dataset/runs/dataset_x_17"
    )
    assert with_links({"connection_id": 3}, settings) == {"connection_id": 3}


def test_a_failed_dataset_job_names_its_dataset(event_runtime):
    with event_runtime.session_factory.begin() as session:
        job_id = jobs.create_job(
            session, kind="dataset", id_prefix="dataset_sales", dataset_name="sales"
        ).id
    assert jobs.finish_job(event_runtime.session_factory, job_id, status="failed", error="x")
    [(name, payload)] = _events(event_runtime)
    assert name == "job.failed"
    assert (payload["kind"], payload["dataset_name"]) == ("dataset", "sales")
    assert "connection_id" not in payload
