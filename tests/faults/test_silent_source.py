"""A source that accepts connections and never answers: its sync and its build fail within
the source timeout, with a reason, while the jobs of other sources keep running."""

from __future__ import annotations

import sqlite3
import statistics
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import httpx
import pytest
from conftest import PG_HOST, PG_USER, TEST_ADMIN_TOKEN, pg_execute
from fabric_core.settings import Settings
from fault_helpers import fabric_processes, fabric_settings, gateway, job_end, silent_server

pytestmark = pytest.mark.postgres

TIMEOUT = 2.0
AUTH = {"Authorization": f"Bearer {TEST_ADMIN_TOKEN}"}


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


def _silent_connections(api, port: int) -> dict[str, int]:
    bodies = {
        "postgresql": {"kind": "postgresql", "host": "127.0.0.1", "port": port, "username": "u"},
        "mysql": {"kind": "mysql", "host": "127.0.0.1", "port": port, "username": "root"},
        "s3": {"kind": "s3", "bucket": "b", "endpoint_url": f"http://127.0.0.1:{port}"},
    }
    ids = {}
    for kind, body in bodies.items():
        created = api.post("/api/data-connections", json={"name": kind, **body}, headers=AUTH)
        assert created.status_code == 201, created.text
        ids[kind] = created.json()["id"]
    return ids


@contextmanager
def silent_stack(tmp_path) -> Iterator[tuple[int, Settings, httpx.Client]]:
    """A silent server's port, and Fabric running with short source timeouts."""
    settings = fabric_settings(
        tmp_path / "home", source_connect_timeout=TIMEOUT, source_read_timeout=TIMEOUT
    )
    with (
        silent_server() as port,
        fabric_processes(settings, tmp_path / "logs"),
        gateway(settings) as api,
    ):
        yield port, settings, api


def test_every_kind_on_a_silent_server_ends_test_and_sync_in_time(tmp_path):
    with silent_stack(tmp_path) as (port, _settings, api):
        ids = _silent_connections(api, port)
        for kind, connection_id in ids.items():
            started = time.monotonic()
            checked = api.post(f"/api/data-connections/{connection_id}/test", headers=AUTH)
            elapsed = time.monotonic() - started
            assert checked.status_code == 200 and not checked.json()["ok"], (kind, checked.text)
            # One read timeout per attempt; S3: s3fs tries twice, one botocore attempt each.
            assert elapsed < 3 * TIMEOUT + 1, (kind, elapsed)
        started = time.monotonic()
        jobs = {
            kind: api.post(f"/api/data-connections/{i}/sync", headers=AUTH).json()["dag_run_id"]
            for kind, i in ids.items()
        }
        ended = {kind: job_end(api, job_id, timeout=60) for kind, job_id in jobs.items()}
        elapsed = time.monotonic() - started
    for kind, job in ended.items():
        assert job["status"] == "failed", (kind, job)
    assert elapsed < 8 * TIMEOUT + 4, elapsed


def test_a_silent_source_preview_ends_in_time(tmp_path, pg_database):
    database = pg_database()
    pg_execute(database, "CREATE TABLE t AS SELECT i AS id FROM generate_series(1, 10) i;")
    with silent_stack(tmp_path) as (port, _settings, api):
        body = {"name": "pg", "kind": "postgresql", "host": PG_HOST, "database": database}
        pg = api.post("/api/data-connections", json={**body, "username": PG_USER}).json()
        synced = api.post(f"/api/data-connections/{pg['id']}/sync", headers=AUTH).json()
        assert job_end(api, synced["dag_run_id"])["status"] == "success"
        table_id = api.get(f"/api/data-connections/{pg['id']}/tables").json()[0]["id"]
        api.patch(f"/api/data-connections/{pg['id']}", json={"port": port}, headers=AUTH)
        started = time.monotonic()
        preview = api.post(
            "/api/datasets/unified/preview",
            json={"name": "p", "selection_mode": "tables", "selected_tables": [table_id]},
            headers=AUTH,
        )
        elapsed = time.monotonic() - started
    assert preview.status_code == 422, preview.text
    assert elapsed < 3 * TIMEOUT + 2, elapsed


def test_health_stays_fast_while_fifty_tests_hang(tmp_path):
    with silent_stack(tmp_path) as (port, settings, api):
        ids = list(_silent_connections(api, port).values())
        # One client for the 50 calls, made beforehand: 50 clients made at once (an SSL
        # context each) would slow this process's own /health timing, not the gateway.
        # Fifty: more than the 40 threads of AnyIO's shared pool, which /health must not need.
        callers = httpx.Client(
            base_url=f"http://127.0.0.1:{settings.gateway_port}",
            timeout=60,
            limits=httpx.Limits(max_connections=60),
        )

        def hang(i: int) -> int:
            path = f"/api/data-connections/{ids[i % len(ids)]}/test"
            return callers.post(path, headers=AUTH).status_code

        with callers, ThreadPoolExecutor(max_workers=50) as pool:
            calls = [pool.submit(hang, i) for i in range(50)]
            time.sleep(0.5)  # the calls are in and waiting on the silent servers
            times: list[float] = []
            while not all(call.done() for call in calls):
                started = time.monotonic()
                health = api.get("/health")
                times.append(time.monotonic() - started)
                assert health.status_code == 200, health.text
                time.sleep(0.1)
            statuses = [call.result() for call in calls]
    assert statuses == [200] * 50
    # Waiting for the shared pool would cost a call up to the source timeout (2 s): typical
    # answers stay fast, and no single one waits that long on this shared machine.
    assert len(times) >= 5 and statistics.median(times) < 0.2, times
    assert max(times) < 1.0, times
