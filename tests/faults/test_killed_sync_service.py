"""`kill -9` of the sync service in the middle of storing a large catalog, with every process
started as `fabric up` starts them: the catalog stays as it was before that sync (all or
nothing), the connection is not left locked, and a re-sync gives the right diff."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from contextlib import ExitStack

import httpx
import pytest
from conftest import PG_HOST, PG_USER, pg_execute
from fabric_core.launcher import settings_env, start_services
from fabric_core.polling import wait_for_job_end
from fault_helpers import fabric_settings, gateway

pytestmark = pytest.mark.postgres

TABLES, DROPPED, WIDENED = 3000, 1000, 500


def _in_batches(database: str, first: int, last: int, statement: str) -> None:
    # 500 tables a transaction: more overflow PostgreSQL's default lock table.
    for start in range(first, last + 1, 500):
        end = min(start + 499, last)
        pg_execute(
            database,
            f"DO $$ BEGIN FOR i IN {start}..{end} LOOP EXECUTE format('{statement}', i); "
            "END LOOP; END $$;",
        )


def _create_tables(database: str) -> None:
    columns = "id int PRIMARY KEY, a text, b text, c int, d int, e date, f text, g text, k bool"
    _in_batches(database, 1, TABLES, f"CREATE TABLE t%s ({columns})")


def _change_tables(database: str) -> None:
    _in_batches(database, 1, DROPPED, "DROP TABLE t%s")
    _in_batches(database, DROPPED + 1, DROPPED + WIDENED, "ALTER TABLE t%s ADD COLUMN added text")


def _live_tables(api: httpx.Client, connection_id: int) -> int:
    answer = api.get(
        f"/api/data-connections/{connection_id}/tables",
        params={"include_removed": False, "limit": 1},
    )
    return int(answer.headers["X-Total-Count"])


def test_a_killed_sync_leaves_the_catalog_as_it_was(tmp_path, pg_database):
    database = pg_database()
    _create_tables(database)
    settings = fabric_settings(tmp_path / "home", job_heartbeat_seconds=0.5, job_stale_seconds=5)
    env = {**os.environ, **settings_env(settings)}
    services = start_services(settings, env, log_dir=tmp_path / "logs")
    restarted = None
    stack = ExitStack()
    try:
        services.wait_until_ready(timeout=60)
        api = stack.enter_context(gateway(settings))

        def register(name: str) -> int:
            body = {
                "name": name,
                "kind": "postgresql",
                "host": PG_HOST,
                "database": database,
                "username": PG_USER,
            }
            return api.post("/api/data-connections", json=body).json()["id"]

        def sync(connection_id: int) -> str:
            answer = api.post(f"/api/data-connections/{connection_id}/sync")
            assert answer.status_code == 202, answer.text
            return answer.json()["dag_run_id"]

        def job(job_id: str):
            return lambda: api.get(f"/api/jobs/{job_id}").json()

        # The same source twice: the first sync of one times the phases for the other.
        timed, killed_one = register("timed"), register("killed")
        first = wait_for_job_end(job(sync(timed)), timeout=120)
        assert first["status"] == "success" and first["stats"]["tables"] == TABLES

        doomed = sync(killed_one)
        while job(doomed)()["status"] == "queued":
            time.sleep(0.02)
        stats = first["stats"]  # into the store phase (the second sync runs faster than the first)
        store_seconds = stats["diff_seconds"] + stats["persist_seconds"]
        time.sleep(0.8 * stats["harvest_seconds"] + 0.3 * store_seconds)
        services.processes["sync"].send_signal(signal.SIGKILL)
        services.processes["sync"].wait()

        killed = wait_for_job_end(job(doomed), timeout=30)
        assert killed["status"] == "failed" and killed["error"]
        assert _live_tables(api, killed_one) == 0  # nothing of the killed sync

        restarted = subprocess.Popen([sys.executable, "-m", "fabric_sync"], env=env)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{settings.resolved_sync_url}/health").status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        _change_tables(database)
        again = wait_for_job_end(job(sync(killed_one)), timeout=120)  # its lock is free
        assert again["status"] == "success", again["error"]
        assert again["stats"]["tables_added"] == TABLES - DROPPED
        assert _live_tables(api, killed_one) == TABLES - DROPPED
        diff = wait_for_job_end(job(sync(timed)), timeout=120)["stats"]
        assert (diff["tables_removed"], diff["columns_added"]) == (DROPPED, WIDENED)
    finally:
        stack.close()
        if restarted is not None:
            restarted.terminate()
            restarted.wait(15)
        services.stop()
