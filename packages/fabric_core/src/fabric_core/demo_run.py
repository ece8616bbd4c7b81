"""The demo's steps: start the services in-process, register sources, sync, browse."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx

from fabric_core.demo import create_demo_sources
from fabric_core.schemas import TERMINAL_STATUSES
from fabric_core.settings import Settings


def run_demo(settings: Settings, echo: Callable[[str], None] = print) -> None:
    """Register the sample sources through the gateway, sync them and print the catalog."""
    from fabric_gateway.app import create_app as create_gateway
    from fabric_sync.app import create_app as create_sync

    from fabric_core.serving import free_port, serve_in_thread

    settings.ensure_home()
    sources = create_demo_sources(settings.home / "demo")
    for name, (path, created) in sources.items():
        echo(f"source {name:8} {'created' if created else 'reused '} {path}")

    sync_port = free_port()
    settings = settings.model_copy(
        update={"sync_url": f"http://127.0.0.1:{sync_port}", "job_poll_interval": 0.1}
    )
    sync_server = serve_in_thread(create_sync(settings), port=sync_port)
    gateway_server = serve_in_thread(create_gateway(settings))
    echo(f"metadata DB {settings.resolved_database_url}")
    echo(f"sync service on {sync_server.url}, gateway on {gateway_server.url}")
    try:
        with httpx.Client(base_url=gateway_server.url, timeout=30) as api:
            _register_sync_and_browse(api, sources, echo)
    finally:
        gateway_server.stop()
        sync_server.stop()


def _register_sync_and_browse(api: httpx.Client, sources, echo) -> None:
    existing = {c["name"]: c for c in api.get("/api/data-connections").raise_for_status().json()}
    connections = {}
    for name, (path, _) in sources.items():
        connection_name = f"demo_{name}"
        if connection_name in existing:
            connections[name] = existing[connection_name]
            echo(f"connection {connection_name} already registered (id {connections[name]['id']})")
            continue
        body = {"name": connection_name, "kind": "sqlite", "database": str(path)}
        connections[name] = api.post("/api/data-connections", json=body).raise_for_status().json()
        echo(f"registered connection {connection_name} (id {connections[name]['id']})")

    for name, connection in connections.items():
        result = api.post(f"/api/data-connections/{connection['id']}/test").json()
        echo(f"test {name:8} ok={result['ok']} {result['message']}")

    queued = {
        name: api.post(f"/api/data-connections/{c['id']}/sync").raise_for_status().json()
        for name, c in connections.items()
    }
    for name, answer in queued.items():
        echo(f"sync {name:8} queued as {answer['dag_run_id']}")
    for name, answer in queued.items():
        job = _wait(api, answer["dag_run_id"])
        stats = job["stats"]
        if job["status"] != "success":
            raise RuntimeError(f"sync of {name} {job['status']}: {job['error']}")
        echo(
            f"sync {name:8} {job['status']}: {stats['tables']} tables, {stats['columns']} columns "
            f"(+{stats['tables_added']} ~{stats['tables_changed']} -{stats['tables_removed']} "
            f"tables, +{stats['columns_added']} ~{stats['columns_changed']} "
            f"-{stats['columns_removed']} columns)"
        )

    echo("")
    echo("catalog:")
    for name, connection in connections.items():
        for table in api.get(f"/api/data-connections/{connection['id']}/tables").json():
            detail = api.get(f"/api/tables/{table['id']}").json()
            columns = ", ".join(
                f"{c['name']} {c['logical_type']}{' PK' if c['primary_key'] else ''}"
                + (
                    f" -> {c['foreign_key']['table']}.{c['foreign_key']['column']}"
                    if c["foreign_key"]
                    else ""
                )
                for c in detail["columns"]
                if not c["removed"]
            )
            echo(f"  {name}.{table['name']} ({table['row_estimate']} rows): {columns}")


def _wait(api: httpx.Client, job_id: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = api.get(f"/api/jobs/{job_id}").raise_for_status().json()
        if job["status"] in TERMINAL_STATUSES:
            return job
        time.sleep(0.1)
    raise RuntimeError(f"job {job_id} did not end within {timeout} s")
