"""Fabric's three processes for fault tests, started the way `fabric up` starts them."""

from __future__ import annotations

import os
import socket
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from conftest import TEST_ADMIN_TOKEN, TEST_SERVICE_TOKEN
from fabric_core.launcher import ServiceProcesses, free_port, settings_env, start_services
from fabric_core.polling import wait_for_job_end
from fabric_core.settings import Settings


def fabric_settings(home: Path, **overrides) -> Settings:
    ports = {name: free_port() for name in ("gateway_port", "sync_port", "dataset_port")}
    values = {
        "home": home,
        # The tests' sample sqlite files sit next to the home.
        "sqlite_roots": [home.parent],
        "secret_key": "test-secret-key-0123456789",
        "admin_token": TEST_ADMIN_TOKEN,
        "service_token": TEST_SERVICE_TOKEN,
        "job_poll_interval": 0.05,
        # One attempt, so a failure is seen at once (the retry tests ask for more).
        "sync_retry_attempts": 1,
        "dataset_retry_attempts": 1,
        "sync_url": f"http://127.0.0.1:{ports['sync_port']}",
        "dataset_url": f"http://127.0.0.1:{ports['dataset_port']}",
        **ports,
    }
    settings = Settings(**{**values, **overrides})
    settings.ensure_home()
    return settings


def numbers_table(connection: sqlite3.Connection, rows: int) -> None:
    """Table ``t`` of ``rows`` numbered text values in a SQLite source."""
    connection.executescript(
        f"""
        CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT);
        WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {rows})
        INSERT INTO t SELECT i, 'value ' || i FROM n;
        """
    )


@contextmanager
def fabric_processes(settings: Settings, log_dir: Path) -> Iterator[ServiceProcesses]:
    services = start_services(settings, {**os.environ, **settings_env(settings)}, log_dir=log_dir)
    try:
        services.wait_until_ready(timeout=60)
        yield services
    finally:
        services.stop()


ADMIN_HEADERS = {"Authorization": f"Bearer {TEST_ADMIN_TOKEN}"}


def gateway(settings: Settings) -> httpx.Client:
    return httpx.Client(
        base_url=f"http://127.0.0.1:{settings.gateway_port}", timeout=60, headers=ADMIN_HEADERS
    )


def job_end(api: httpx.Client, job_id: str, timeout: float = 120) -> dict:
    return wait_for_job_end(
        lambda: api.get(f"/api/jobs/{job_id}").json(), poll_interval=0.1, timeout=timeout
    )


@contextmanager
def silent_server() -> Iterator[int]:
    """A TCP server on loopback that accepts connections and never says a word."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    listener.settimeout(0.2)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(5)
        for connection in held:
            connection.close()
        listener.close()
