"""Start the real apps: the sync service over HTTP on a thread, the gateway in a TestClient."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager

from conftest import MYSQL_HOST, MYSQL_USER, PG_HOST, PG_USER, TEST_SERVICE_TOKEN
from fabric_core.bearer import bearer_header
from fabric_core.polling import wait_for_job_end
from fabric_core.settings import Settings
from fabric_dataset.app import create_app as create_dataset
from fabric_gateway.app import create_app as create_gateway
from fabric_sync.app import create_app as create_sync
from fabric_web.serving import bound_socket, serve_in_thread
from fastapi.testclient import TestClient

# What the gateway and the Airflow tasks send to the sync and dataset services.
SERVICE_HEADERS = bearer_header(TEST_SERVICE_TOKEN)


@contextmanager
def running_stack(
    settings: Settings, *, with_sync: bool = True, with_dataset: bool = True
) -> Iterator[TestClient]:
    """The gateway (TestClient) with the sync and dataset services running over HTTP."""
    # Held from here until the servers listen on them: their ports cannot be taken meanwhile.
    sync_socket, dataset_socket = bound_socket(), bound_socket()
    settings = settings.model_copy(
        update={
            "sync_url": _url_of(sync_socket),
            "dataset_url": _url_of(dataset_socket),
        }
    )
    servers = []
    try:
        if with_sync:
            servers.append(serve_in_thread(create_sync(settings), sock=sync_socket))
        else:
            sync_socket.close()
        if with_dataset:
            servers.append(serve_in_thread(create_dataset(settings), sock=dataset_socket))
        else:
            dataset_socket.close()
        with TestClient(create_gateway(settings), headers=bearer(settings)) as client:
            yield client
    finally:
        for server in servers:
            server.stop()
        sync_socket.close()
        dataset_socket.close()


def _url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://{host}:{port}"


def bearer(settings: Settings, token: str | None = None) -> dict[str, str]:
    """The Authorization header of ``token`` (default: the settings' admin token)."""
    return {"Authorization": f"Bearer {token or settings.resolved_admin_token()}"}


def wait_for_job(client: TestClient, job_id: str, timeout: float = 30) -> dict:
    return wait_for_job_end(
        lambda: client.get(f"/api/jobs/{job_id}").json(), poll_interval=0.05, timeout=timeout
    )


def sync_through_gateway(client: TestClient, connection_id: int) -> dict:
    """Queue a sync of ``connection_id`` and wait for it; the ended job (asserted a success)."""
    answer = client.post(f"/api/data-connections/{connection_id}/sync")
    assert answer.status_code == 202, answer.text
    job = wait_for_job(client, answer.json()["dag_run_id"])
    assert job["status"] == "success", job
    return job


def register_and_sync(client: TestClient, body: dict) -> tuple[int, dict[str, dict]]:
    """Register a connection through the gateway and sync it: its id and each table's
    ``GET /api/tables/{id}`` answer by table name."""
    created = client.post("/api/data-connections", json=body)
    assert created.status_code == 201, created.text
    connection_id = created.json()["id"]
    sync_through_gateway(client, connection_id)
    tables = {
        table["name"]: client.get(f"/api/tables/{table['id']}").json()
        for table in client.get(f"/api/data-connections/{connection_id}/tables").json()
    }
    return connection_id, tables


def column_ids(table: dict) -> dict[str, int]:
    """A ``GET /api/tables/{id}`` answer's column ids by name."""
    return {c["name"]: c["id"] for c in table["columns"]}


def pg_source(name: str, database: str, schema: str | None = None) -> dict:
    """The body registering a database of the test PostgreSQL server (one schema of it)."""
    body = {
        "name": name,
        "kind": "postgresql",
        "host": PG_HOST,
        "database": database,
        "username": PG_USER,
    }
    return body | ({"options": {"include_schemas": [schema]}} if schema else {})


def mysql_source(name: str, database: str) -> dict:
    """The body registering a database of the test MariaDB/MySQL server."""
    return {
        "name": name,
        "kind": "mysql",
        "host": MYSQL_HOST,
        "database": database,
        "username": MYSQL_USER,
    }
