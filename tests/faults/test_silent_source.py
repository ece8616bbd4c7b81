"""A source that accepts connections and never answers: its sync and its build fail within
the source timeout, with a reason, while the jobs of other sources keep running."""

from __future__ import annotations

import sqlite3
import time

import pytest
from conftest import PG_HOST, PG_USER, pg_execute
from fault_helpers import fabric_processes, fabric_settings, gateway, job_end, silent_server

pytestmark = pytest.mark.postgres

TIMEOUT = 2.0


def test_a_silent_source_fails_its_jobs_in_time_and_others_run(tmp_path, pg_database):
    database = pg_database()
    pg_execute(database, "CREATE TABLE t AS SELECT i AS id FROM generate_series(1, 1000) i;")
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as connection:
        connection.execute("CREATE TABLE o (id INTEGER PRIMARY KEY)")
    connection.close()
    settings = fabric_settings(tmp_path / "home", source_connect_timeout=TIMEOUT)
    with (
        silent_server() as port,
        fabric_processes(settings, tmp_path / "logs"),
        gateway(settings) as api,
    ):
        pg_body = {
            "name": "pg",
            "kind": "postgresql",
            "host": PG_HOST,
            "database": database,
            "username": PG_USER,
        }
        pg = api.post("/api/data-connections", json=pg_body).json()
        synced = job_end(
            api, api.post(f"/api/data-connections/{pg['id']}/sync").json()["dag_run_id"]
        )
        assert synced["status"] == "success"
        table_id = api.get(f"/api/data-connections/{pg['id']}/tables").json()[0]["id"]
        # The source moves to a server that never answers.
        moved = api.patch(f"/api/data-connections/{pg['id']}", json={"port": port})
        assert moved.status_code == 200, moved.text
        silent_my = api.post(
            "/api/data-connections",
            json={
                "name": "my",
                "kind": "mysql",
                "host": "127.0.0.1",
                "port": port,
                "username": "root",
            },
        ).json()
        good = api.post(
            "/api/data-connections", json={"name": "o", "kind": "sqlite", "database": str(other)}
        ).json()

        started = time.monotonic()
        jobs = {
            "pg sync": api.post(f"/api/data-connections/{pg['id']}/sync").json()["dag_run_id"],
            "mysql sync": api.post(f"/api/data-connections/{silent_my['id']}/sync").json()[
                "dag_run_id"
            ],
            "build": api.post(
                "/api/datasets/unified",
                json={"name": "d", "selection_mode": "tables", "selected_tables": [table_id]},
            ).json()["dag_run_id"],
            "other sync": api.post(f"/api/data-connections/{good['id']}/sync").json()["dag_run_id"],
        }
        ended = {name: job_end(api, job_id, timeout=60) for name, job_id in jobs.items()}
        elapsed = time.monotonic() - started

    assert ended["other sync"]["status"] == "success"
    for name in ("pg sync", "mysql sync", "build"):
        assert ended[name]["status"] == "failed", (name, ended[name])
        assert str(port) in ended[name]["error"], (name, ended[name]["error"])
    assert elapsed < 8 * TIMEOUT, elapsed
