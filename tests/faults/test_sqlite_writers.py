"""The embedded SQLite metadata DB under concurrent writers: the gateway, the sync service and
8 clients writing at once, as separate processes started the way `fabric up` starts them.
Every request is answered without a 5xx, and every write that was confirmed is stored."""

from __future__ import annotations

import os
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
from fabric_core.launcher import settings_env, start_services
from fabric_core.polling import wait_for_job_end
from fault_helpers import ADMIN_HEADERS, fabric_settings

CLIENTS = 8
WRITES_PER_CLIENT = 25


def _source(path, tables: int) -> None:
    with sqlite3.connect(path) as connection:
        for i in range(tables):
            connection.execute(f"CREATE TABLE t{i} (id INTEGER PRIMARY KEY, v TEXT)")
    connection.close()


def test_eight_writers_and_running_syncs_get_no_5xx_and_lose_nothing(tmp_path):
    settings = fabric_settings(tmp_path / "home")
    services = start_services(
        settings, {**os.environ, **settings_env(settings)}, log_dir=tmp_path / "logs"
    )
    try:
        services.wait_until_ready(timeout=60)
        base = f"http://127.0.0.1:{settings.gateway_port}"
        with httpx.Client(base_url=base, timeout=60, headers=ADMIN_HEADERS) as api:
            connection_ids = []
            for i in range(3):
                _source(tmp_path / f"s{i}.db", 200)
                body = {"name": f"s{i}", "kind": "sqlite", "database": str(tmp_path / f"s{i}.db")}
                connection_ids.append(api.post("/api/data-connections", json=body).json()["id"])

        statuses: list[int] = []
        confirmed: list[str] = []

        def writer(client_no: int) -> None:
            with httpx.Client(base_url=base, timeout=60, headers=ADMIN_HEADERS) as api:
                for n in range(WRITES_PER_CLIENT):
                    name = f"col_{client_no}_{n}"
                    answer = api.post(
                        "/api/unified-columns", json={"name": name, "logical_type": "string"}
                    )
                    statuses.append(answer.status_code)
                    if answer.status_code == 201:
                        confirmed.append(name)
                        # Reads, then writes: the pattern a deferred transaction cannot upgrade.
                        patched = api.patch(
                            f"/api/unified-columns/{answer.json()['id']}",
                            json={"description": f"by client {client_no}"},
                        )
                        statuses.append(patched.status_code)
                    if n % 5 == 0:  # syncs running meanwhile write whole catalogs
                        connection_id = connection_ids[(client_no + n) % len(connection_ids)]
                        sync = api.post(f"/api/data-connections/{connection_id}/sync")
                        statuses.append(sync.status_code)

        started = time.monotonic()
        with ThreadPoolExecutor(CLIENTS) as pool:
            list(pool.map(writer, range(CLIENTS)))
        assert time.monotonic() - started < 240

        assert [s for s in statuses if s >= 500] == []
        assert len(confirmed) == CLIENTS * WRITES_PER_CLIENT
        with httpx.Client(base_url=base, timeout=60, headers=ADMIN_HEADERS) as api:
            stored = {u["name"]: u for u in api.get("/api/unified-columns").json()}
            assert set(confirmed) <= set(stored)
            assert all(stored[name]["description"] for name in confirmed)
            jobs = api.get("/api/jobs", params={"limit": 1000}).json()
            ended = [
                wait_for_job_end(
                    lambda job_id=job["id"]: api.get(f"/api/jobs/{job_id}").json(),
                    poll_interval=0.2,
                    timeout=120,
                )
                for job in jobs
            ]
        assert {job["status"] for job in ended} == {"success"}, [
            job["error"] for job in ended if job["status"] != "success"
        ]
    finally:
        services.stop()
