"""The metadata PostgreSQL drops every connection of the services while jobs run: the
services reconnect, every job ends (none stays running or queued), and new jobs succeed."""

from __future__ import annotations

import sqlite3
import time

import psycopg
import pytest
from conftest import PG_HOST, PG_PORT, PG_USER, pg_url
from fault_helpers import fabric_processes, fabric_settings, gateway, job_end

pytestmark = pytest.mark.postgres


def _terminate_backends(database: str) -> int:
    with psycopg.connect(
        host=PG_HOST, port=PG_PORT, user=PG_USER, dbname="postgres", autocommit=True
    ) as admin:
        return admin.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            (database,),
        ).fetchone()[0]


def test_jobs_end_and_services_reconnect_when_the_metadata_db_drops_them(tmp_path, pg_database):
    meta = pg_database()
    path = tmp_path / "big.db"
    with sqlite3.connect(path) as connection:
        connection.executescript(
            """
            CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT);
            WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1500000)
            INSERT INTO t SELECT i, 'value ' || i FROM n;
            """
        )
    connection.close()
    settings = fabric_settings(
        tmp_path / "home", database_url=pg_url(meta), dataset_batch_rows=20_000
    )
    with fabric_processes(settings, tmp_path / "logs"), gateway(settings) as api:
        source = api.post(
            "/api/data-connections", json={"name": "s", "kind": "sqlite", "database": str(path)}
        ).json()
        first = api.post(f"/api/data-connections/{source['id']}/sync").json()["dag_run_id"]
        assert job_end(api, first)["status"] == "success"
        table_id = api.get(f"/api/data-connections/{source['id']}/tables").json()[0]["id"]

        builds = [
            api.post(
                "/api/datasets/unified",
                json={"name": f"d{i}", "selection_mode": "tables", "selected_tables": [table_id]},
            ).json()["dag_run_id"]
            for i in range(2)
        ]
        syncs = [
            api.post(f"/api/data-connections/{source['id']}/sync").json()["dag_run_id"]
            for _ in range(3)
        ]
        deadline = time.monotonic() + 30
        while api.get(f"/api/jobs/{builds[0]}").json()["status"] != "running":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        dropped = _terminate_backends(meta)
        time.sleep(0.5)
        dropped += _terminate_backends(meta)
        assert dropped > 0

        ended = [job_end(api, job_id, timeout=120) for job_id in builds + syncs]
        assert all(job["status"] in ("success", "failed") for job in ended), ended
        for job in ended:
            if job["status"] == "failed":
                assert job["error"], job

        again = api.post(f"/api/data-connections/{source['id']}/sync").json()["dag_run_id"]
        assert job_end(api, again)["status"] == "success"
        for port in (settings.gateway_port, settings.sync_port, settings.dataset_port):
            assert api.get(f"http://127.0.0.1:{port}/health").status_code == 200
        for i in range(2):
            dataset = api.get(f"/api/datasets/d{i}").json()
            assert dataset["status"] in ("ready", "failed"), dataset
