"""Benchmark: what a request costs through the gateway as users meet it, against /health.

Run from the workspace root::

    uv run python bench/gateway_requests.py
    uv run python bench/gateway_requests.py --requests 500 --rows 200

What it does:

1. Starts the gateway, the sync service and the dataset service as their own processes (as
   ``fabric up`` does) on a temporary home with the SQLite metadata DB.
2. Creates ``--rows`` unified columns through the API (each a POST: authentication, rate
   limit, body checks, the write and its audit event).
3. Sends ``--requests`` requests of each kind one after the other on one keep-alive client:
   ``GET /health`` (the reference: one ``SELECT 1``, no authentication), ``GET
   /api/unified-columns?limit=100`` (an authenticated paged read) and ``POST
   /api/unified-columns`` + ``DELETE`` (an authenticated, audited write), and ``GET
   /metrics`` (what Prometheus scrapes: on the gateway it reads queues, pools and circuits from
   the metadata DB), and prints each one's median and 95th percentile and the ratio of its
   median to /health's.

The ratios are measured in one run against the same process's /health, so they hold on a
loaded machine; the script only uses the launcher and HTTP, so it also runs from an older
work tree's environment for a paired comparison (there the token is simply ignored).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
from fabric_core.launcher import free_port, settings_env, start_services
from fabric_core.settings import Settings

ADMIN_TOKEN = "bench-admin-token-" + uuid.uuid4().hex


def _timed(call: Callable[[], httpx.Response], count: int) -> list[float]:
    times = []
    for _ in range(count):
        started = time.perf_counter()
        answer = call()
        times.append(time.perf_counter() - started)
        if answer.status_code >= 400:
            raise SystemExit(f"{answer.request.method} {answer.request.url}: {answer.text}")
    return times


def _figures(name: str, times: list[float], reference: float | None) -> str:
    median = statistics.median(times)
    p95 = statistics.quantiles(times, n=20)[-1]
    ratio = f"{median / reference:5.2f}x /health" if reference else "reference"
    return f"{name:34} median {median * 1000:6.2f} ms  p95 {p95 * 1000:6.2f} ms  {ratio}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300, help="requests per kind")
    parser.add_argument("--rows", type=int, default=100, help="unified columns to list")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ports = {name: free_port() for name in ("gateway_port", "sync_port", "dataset_port")}
        settings = Settings(
            home=Path(tmp) / "home",
            secret_key="bench-secret-key-0123456789",
            admin_token=ADMIN_TOKEN,
            rate_limit="1000000/minute",
            sync_url=f"http://127.0.0.1:{ports['sync_port']}",
            dataset_url=f"http://127.0.0.1:{ports['dataset_port']}",
            **ports,
        )
        settings.ensure_home()
        env = {**os.environ, **settings_env(settings), "FABRIC_ADMIN_TOKEN": ADMIN_TOKEN}
        services = start_services(settings, env, log_dir=Path(tmp) / "logs")
        try:
            services.wait_until_ready(timeout=120)
            with httpx.Client(
                base_url=f"http://127.0.0.1:{settings.gateway_port}",
                headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
                timeout=30,
            ) as api:
                for i in range(args.rows):
                    body = {"name": f"c{i}", "logical_type": "string"}
                    api.post("/api/unified-columns", json=body).raise_for_status()
                health = _timed(lambda: api.get("/health"), args.requests)
                read = _timed(
                    lambda: api.get("/api/unified-columns", params={"limit": 100}), args.requests
                )

                def write() -> httpx.Response:
                    body = {"name": f"w{uuid.uuid4().hex[:12]}", "logical_type": "string"}
                    created = api.post("/api/unified-columns", json=body)
                    created.raise_for_status()
                    return api.delete(f"/api/unified-columns/{created.json()['id']}")

                writes = _timed(write, args.requests)
                scrapes = _timed(lambda: api.get("/metrics"), args.requests)
        finally:
            services.stop()
    reference = statistics.median(health)
    print(f"{args.requests} requests of each kind, {args.rows} unified columns")
    print(_figures("GET /health", health, None))
    print(_figures("GET /api/unified-columns?limit=100", read, reference))
    print(_figures("POST + DELETE /api/unified-columns", writes, reference))
    print(_figures("GET /metrics (a scrape)", scrapes, reference))


if __name__ == "__main__":
    main()
