"""A burst through the gateway, with the local orchestrator: 50 syncs over five connections
and 10 dataset builds at once. Every request is answered without a 5xx, every job ends, the
pools' sizes (sync 3, dataset 2) are reached and never exceeded, and the gateway's /health
keeps answering quickly throughout (99 in 100 checks under 200 ms, none over 500 ms)."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

import httpx
from fault_helpers import (
    ADMIN_HEADERS,
    fabric_processes,
    fabric_settings,
    gateway,
    job_end,
    numbers_table,
)

CONNECTIONS, SYNCS, BUILDS = 5, 50, 10

# Times GET /health (argv[1]) every 50 ms until the file argv[2] exists; prints the times.
HEALTH_PROBE = """
import json, sys, time
from pathlib import Path
import httpx

times = []
with httpx.Client(base_url=sys.argv[1], timeout=10) as client:
    while not Path(sys.argv[2]).exists():
        started = time.perf_counter()
        answer = client.get("/health")
        assert answer.status_code == 200, answer.text
        times.append(time.perf_counter() - started)
        time.sleep(0.05)
print(json.dumps(times))
"""


def _source(path, rows: int) -> None:
    with sqlite3.connect(path) as connection:
        numbers_table(connection, rows)
        for i in range(1500):  # a catalog big enough that syncs overlap (about a second each)
            connection.execute(f"CREATE TABLE c{i} (id INTEGER PRIMARY KEY, a TEXT, b INTEGER)")
    connection.close()


def _most_at_once(jobs: list[dict]) -> int:
    events = []
    for job in jobs:
        events.append((datetime.fromisoformat(job["started_at"]), 1))
        events.append((datetime.fromisoformat(job["finished_at"]), -1))
    running = most = 0
    for _, change in sorted(events, key=lambda e: (e[0], e[1])):
        running += change
        most = max(most, running)
    return most


def test_a_burst_of_syncs_and_builds_keeps_the_pools_and_the_gateway(tmp_path):
    settings = fabric_settings(tmp_path / "home", job_poll_interval=0.5)  # the default
    with fabric_processes(settings, tmp_path / "logs"), gateway(settings) as api:
        connection_ids, table_ids = [], []
        for i in range(CONNECTIONS):
            path = tmp_path / f"s{i}.db"
            _source(path, 200_000)
            body = {"name": f"s{i}", "kind": "sqlite", "database": str(path)}
            connection_ids.append(api.post("/api/data-connections", json=body).json()["id"])
        for connection_id in connection_ids:
            job_id = api.post(f"/api/data-connections/{connection_id}/sync").json()["dag_run_id"]
            assert job_end(api, job_id)["status"] == "success"
            tables = api.get(
                f"/api/data-connections/{connection_id}/tables", params={"limit": 10_000}
            ).json()
            table_ids.append(next(t["id"] for t in tables if t["name"] == "t"))

        # The probe is a process of its own, as a load balancer's is: in this one its
        # timings would include the burst's client threads and this test process's own
        # garbage collections.
        stop_file = tmp_path / "stop-probing"
        probe = subprocess.Popen(
            [sys.executable, "-c", HEALTH_PROBE, str(api.base_url), str(stop_file)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

        # One client for the burst, made beforehand: a client per request (an SSL context
        # each) would load the machine's two cores, not the gateway.
        burst = httpx.Client(
            base_url=str(api.base_url),
            timeout=60,
            headers=ADMIN_HEADERS,
            limits=httpx.Limits(max_connections=20),
        )

        def request(n: int) -> httpx.Response:
            if n < SYNCS:
                return burst.post(f"/api/data-connections/{connection_ids[n % CONNECTIONS]}/sync")
            body = {
                "name": f"d{n - SYNCS}",
                "selection_mode": "tables",
                "selected_tables": [table_ids[n % CONNECTIONS]],
            }
            return burst.post("/api/datasets/unified", json=body)

        try:
            with burst, ThreadPoolExecutor(16) as pool:
                answers = list(pool.map(request, range(SYNCS + BUILDS)))
            assert [a.status_code for a in answers if a.status_code != 202] == []
            ended = [job_end(api, a.json()["dag_run_id"], timeout=300) for a in answers]
        finally:
            stop_file.touch()
            probed, errors = probe.communicate(timeout=30)
        assert probe.returncode == 0, errors[-2000:]
        health_times = json.loads(probed)

    assert {job["status"] for job in ended} == {"success"}
    syncs = [job for job in ended if job["kind"] == "sync"]
    builds = [job for job in ended if job["kind"] == "dataset"]
    assert (len(syncs), len(builds)) == (SYNCS, BUILDS)
    assert _most_at_once(syncs) == settings.sync_pool_slots
    assert _most_at_once(builds) == settings.dataset_pool_slots
    # Under 200 ms for 99 in 100 checks, and never a stall (this 2-core machine runs the
    # three services, the sources and the burst's clients at once).
    ordered = sorted(health_times)
    assert len(ordered) > 50 and ordered[int(len(ordered) * 0.99)] < 0.2, ordered[-5:]
    assert ordered[-1] < 0.5, ordered[-5:]
