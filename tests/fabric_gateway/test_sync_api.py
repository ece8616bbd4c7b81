"""Metadata sync through the gateway: queue, run in the sync service, browse the catalog."""

from __future__ import annotations

import re
import sqlite3
import typing

import pytest
from conftest import PG_HOST, PG_USER, pg_execute
from fabric_core.models import OutboxEvent
from fabric_web.serving import free_port
from service_helpers import running_stack, wait_for_job
from sqlalchemy import select

pytestmark = pytest.mark.postgres


@pytest.fixture
def api(settings, metadata_url):
    with running_stack(settings.model_copy(update={"database_url": metadata_url})) as client:
        yield client


@pytest.fixture
def source_db(pg_database):
    database = pg_database()
    pg_execute(
        database,
        """
        CREATE SCHEMA crm;
        CREATE TABLE crm."Customers" (id int PRIMARY KEY, "Name" text NOT NULL, email text);
        COMMENT ON TABLE crm."Customers" IS 'People who buy';
        CREATE TABLE crm.orders (id int PRIMARY KEY, customer_id int REFERENCES crm."Customers",
                                 total numeric(10, 2));
        """,
    )
    return database


def _register(api, database, name="crm", **overrides):
    body = {
        "name": name,
        "kind": "postgresql",
        "host": PG_HOST,
        "database": database,
        "username": PG_USER,
        "options": {"include_schemas": ["crm"]},
        **overrides,
    }
    response = api.post("/api/data-connections", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def test_sync_answers_the_seed_contract_and_builds_the_catalog(api, source_db):
    connection = _register(api, source_db, name="MyConnection")
    response = api.post(f"/api/data-connections/{connection['id']}/sync")
    assert response.status_code == 202
    answer = response.json()
    assert set(answer) == {
        "message",
        "dag_run_id",
        "dag_id",
        "airflow_url",
        "connection_id",
        "status",
    }
    assert answer["message"] == (
        "Metadata synchronization for connection 'MyConnection' has been queued"
    )
    assert re.fullmatch(rf"sync_{connection['id']}_\d{{10}}", answer["dag_run_id"])
    assert answer["dag_id"] == "sync_data_connection"
    assert answer["airflow_url"] == (
        f"http://localhost:8080/dags/sync_data_connection/runs/{answer['dag_run_id']}"
    )
    assert (answer["connection_id"], answer["status"]) == (connection["id"], "queued")

    job = wait_for_job(api, answer["dag_run_id"])
    assert job["status"] == "success", job
    assert (job["kind"], job["progress"], job["error"], job["attempts"]) == ("sync", 1.0, None, 1)
    assert job["stats"]["tables_added"] == 2 and job["stats"]["columns_added"] == 6
    assert job["created_at"] <= job["started_at"] <= job["finished_at"]

    tables = api.get(f"/api/data-connections/{connection['id']}/tables").json()
    assert [(t["schema"], t["name"], t["kind"], t["removed"]) for t in tables] == [
        ("crm", "Customers", "table", False),
        ("crm", "orders", "table", False),
    ]
    assert tables[0]["comment"] == "People who buy"
    assert set(tables[0]) >= {"id", "schema", "name", "kind", "row_estimate", "comment", "removed"}
    orders = api.get(f"/api/tables/{tables[1]['id']}").json()
    assert [c["name"] for c in orders["columns"]] == ["id", "customer_id", "total"]
    customer_id = orders["columns"][1]
    assert customer_id["foreign_key"] == {"schema": "crm", "table": "Customers", "column": "id"}
    assert set(customer_id) >= {
        "id",
        "name",
        "ordinal",
        "native_type",
        "logical_type",
        "nullable",
        "default",
        "primary_key",
        "foreign_key",
        "comment",
        "removed",
    }
    assert orders["columns"][2]["logical_type"] == "decimal"
    assert api.get(f"/api/data-connections/{connection['id']}").json()["last_synced_at"]

    pg_execute(
        source_db, 'ALTER TABLE crm.orders DROP COLUMN total; DROP TABLE crm."Customers" CASCADE'
    )
    second = api.post(f"/api/data-connections/{connection['id']}/sync").json()
    assert second["dag_run_id"] != answer["dag_run_id"]
    job = wait_for_job(api, second["dag_run_id"])
    assert job["status"] == "success"
    assert {
        k: job["stats"][k] for k in ("tables_removed", "columns_removed", "columns_changed")
    } == {
        "tables_removed": 1,
        "columns_removed": 1 + 3,
        "columns_changed": 1,  # FK dropped
    }
    live = api.get(
        f"/api/data-connections/{connection['id']}/tables", params={"include_removed": False}
    ).json()
    assert [t["name"] for t in live] == ["orders"]
    orders_after = api.get(f"/api/tables/{tables[1]['id']}").json()
    assert [(c["name"], c["removed"]) for c in orders_after["columns"]] == [
        ("id", False),
        ("customer_id", False),
        ("total", True),
    ]
    assert orders_after["columns"][1]["foreign_key"] is None
    assert [
        j["id"] for j in api.get("/api/jobs", params={"connection_id": connection["id"]}).json()
    ] == [
        second["dag_run_id"],
        answer["dag_run_id"],
    ]


def test_syncs_in_the_same_second_get_distinct_ids(api, source_db):
    connection = _register(api, source_db)
    ids = [
        api.post(f"/api/data-connections/{connection['id']}/sync").json()["dag_run_id"]
        for _ in range(3)
    ]
    assert len(set(ids)) == 3
    jobs = [wait_for_job(api, job_id) for job_id in ids]
    assert [job["status"] for job in jobs] == ["success"] * 3
    assert sum(job["stats"]["tables_added"] for job in jobs) == 2


def test_unreachable_source_fails_the_job_with_a_clear_message(api):
    connection = _register(api, "nowhere", port=free_port(), password="Very-Secret-pw", name="down")
    answer = api.post(f"/api/data-connections/{connection['id']}/sync")
    assert answer.status_code == 202
    job = wait_for_job(api, answer.json()["dag_run_id"])
    assert job["status"] == "failed"
    assert "127.0.0.1" in job["error"] and "refused" in job["error"].lower()
    assert "Very-Secret-pw" not in job["error"]


def test_missing_sqlite_file_fails_the_job(api, tmp_path):
    connection = api.post(
        "/api/data-connections",
        json={"name": "f", "kind": "sqlite", "database": str(tmp_path / "missing.db")},
    ).json()
    job = wait_for_job(
        api, api.post(f"/api/data-connections/{connection['id']}/sync").json()["dag_run_id"]
    )
    assert job["status"] == "failed" and "missing.db" in job["error"]


def test_sync_service_down_fails_the_job_instead_of_leaving_it_queued(settings, tmp_path):
    path = tmp_path / "s.db"
    sqlite3.connect(path).close()
    with running_stack(settings, with_sync=False) as api:
        connection = api.post(
            "/api/data-connections", json={"name": "f", "kind": "sqlite", "database": str(path)}
        ).json()
        answer = api.post(f"/api/data-connections/{connection['id']}/sync")
        assert answer.status_code == 202
        job = wait_for_job(api, answer.json()["dag_run_id"])
        assert job["status"] == "failed"
        assert "did not answer" in job["error"] and "127.0.0.1" in job["error"]
        with api.app.state.runtime.session_factory() as session:
            events = session.execute(select(OutboxEvent.name, OutboxEvent.payload)).all()
    stuck = [payload for name, payload in events if name == "job.stuck"]
    assert [p["job_id"] for p in stuck] == [job["id"]]
    assert stuck[0]["reason"] == "its sync service did not answer"


def test_a_connection_with_a_sync_in_flight_cannot_be_deleted(api, source_db):
    from fabric_core.jobs import create_job

    connection = _register(api, source_db)
    runtime = api.app.state.runtime
    with runtime.session_factory.begin() as session:
        create_job(session, kind="sync", id_prefix="sync_x", connection_id=connection["id"])
    response = api.delete(f"/api/data-connections/{connection['id']}")
    assert response.status_code == 409 and "queued or running" in response.json()["detail"]
    assert api.get(f"/api/data-connections/{connection['id']}").status_code == 200


def test_jobs_filter_by_status_and_kind(api, source_db, tmp_path):
    good = _register(api, source_db)
    done = api.post(f"/api/data-connections/{good['id']}/sync").json()["dag_run_id"]
    assert wait_for_job(api, done)["status"] == "success"
    path = tmp_path / "gone.db"
    sqlite3.connect(path).close()
    gone = api.post(
        "/api/data-connections", json={"name": "gone", "kind": "sqlite", "database": str(path)}
    ).json()
    path.unlink()
    failed = api.post(f"/api/data-connections/{gone['id']}/sync").json()["dag_run_id"]
    assert wait_for_job(api, failed)["status"] == "failed"

    assert [j["id"] for j in api.get("/api/jobs", params={"status": "failed"}).json()] == [failed]
    ok = api.get("/api/jobs", params={"status": "success", "kind": "sync"})
    assert [j["id"] for j in ok.json()] == [done] and ok.headers["x-total-count"] == "1"
    assert api.get("/api/jobs", params={"kind": "dataset"}).json() == []
    assert api.get("/api/jobs", params={"status": "done"}).status_code == 422
    assert api.get("/api/jobs", params={"kind": "export"}).status_code == 422


def test_the_jobs_kind_filter_names_every_kind():
    from fabric_core.job_kinds import JOB_KINDS
    from fabric_gateway.routers.catalog import JobKindName

    assert set(typing.get_args(JobKindName)) == set(JOB_KINDS)


def test_table_pages_run_across_schemas_in_schema_and_name_order(api, pg_database):
    """Pages of any size, from any offset, cut through schemas as one list ordered by schema
    and table name, with or without removed tables, and count them all."""
    database = pg_database()
    statements = ["CREATE SCHEMA zeta; CREATE SCHEMA alpha; CREATE SCHEMA mid;"]
    for schema, count in (("zeta", 4), ("alpha", 5), ("mid", 3)):
        statements += [f"CREATE TABLE {schema}.t{i:02d} (x int);" for i in range(count)]
    pg_execute(database, "\n".join(statements))
    connection = api.post(
        "/api/data-connections",
        json={
            "name": "paged",
            "kind": "postgresql",
            "host": PG_HOST,
            "database": database,
            "username": PG_USER,
        },
    ).json()
    path = f"/api/data-connections/{connection['id']}/tables"

    def sync() -> None:
        job_id = api.post(f"/api/data-connections/{connection['id']}/sync").json()["dag_run_id"]
        assert wait_for_job(api, job_id)["status"] == "success"

    def listed(**params) -> tuple[list[str], int]:
        answer = api.get(path, params=params)
        assert answer.status_code == 200, answer.text
        names = [f"{t['schema']}.{t['name']}" for t in answer.json()]
        return names, int(answer.headers["X-Total-Count"])

    sync()
    everything = (
        [f"alpha.t{i:02d}" for i in range(5)]
        + [f"mid.t{i:02d}" for i in range(3)]
        + [f"zeta.t{i:02d}" for i in range(4)]
    )
    assert listed() == (everything, 12)
    for limit in (1, 2, 5, 7, 12, 50):
        for offset in range(0, 14):
            assert listed(limit=limit, offset=offset) == (
                everything[offset : offset + limit],
                12,
            ), (limit, offset)

    pg_execute(database, "DROP TABLE alpha.t01; DROP TABLE mid.t00, mid.t01, mid.t02;")
    sync()
    live = [name for name in everything if name not in {"alpha.t01"} and name[:3] != "mid"]
    assert listed(include_removed=False) == (live, 8)
    assert listed(include_removed=False, limit=3, offset=3) == (live[3:6], 8)
    assert listed(limit=4, offset=4) == (everything[4:8], 12)  # removed ones still listed
