"""Circuit breakers through the gateway: a connection's circuit on GET, in /metrics, in syncs,
builds and previews; the gateway's circuit to a service that is down, then back."""

from __future__ import annotations

import time

import pytest
from conftest import PG_HOST, PG_USER, pg_execute
from fabric_core.models import CircuitState, OutboxEvent
from fabric_sync.app import create_app as create_sync
from fabric_web.serving import free_port, serve_in_thread
from service_helpers import running_stack, wait_for_job
from sqlalchemy import select

pytestmark = pytest.mark.postgres

FAILURES = 2
RESET = 1.0


@pytest.fixture
def circuit_settings(settings):
    return settings.model_copy(
        update={"circuit_failures": FAILURES, "circuit_reset_seconds": RESET}
    )


# The first test's circuit must stay open through a sync, a build and a preview, however slow
# the machine; the second one waits for RESET to pass.
STAYS_OPEN = 60.0


@pytest.fixture
def api(circuit_settings):
    settings = circuit_settings.model_copy(update={"circuit_reset_seconds": STAYS_OPEN})
    with running_stack(settings) as client:
        yield client


def _gauge(api, circuit: str) -> float | None:
    for line in api.get("/metrics").text.splitlines():
        if line.startswith(f'fabric_circuit_open{{circuit="{circuit}"}} '):
            return float(line.rsplit(" ", 1)[1])
    return None


def _events(api, name: str) -> list[dict]:
    with api.app.state.runtime.session_factory() as session:
        query = select(OutboxEvent.payload).where(OutboxEvent.name == name)
        return list(session.scalars(query.order_by(OutboxEvent.id)))


def _connection(api, database: str, port: int) -> dict:
    # No password (the server trusts loopback): the port may change without sending one.
    created = api.post(
        "/api/data-connections",
        json={
            "name": f"pg {database}",
            "kind": "postgresql",
            "host": PG_HOST,
            "port": port,
            "database": database,
            "username": PG_USER,
        },
    )
    assert created.status_code == 201, created.text
    return created.json()


def test_a_connection_circuit_on_get_in_metrics_in_jobs_and_closed_by_test(api, pg_database):
    database = pg_database()
    pg_execute(database, "CREATE TABLE t (code text); INSERT INTO t VALUES ('a'), ('b')")
    created = _connection(api, database, 5432)
    url = f"/api/data-connections/{created['id']}"
    circuit = f"connection:{created['id']}"
    assert created["circuit"] == {
        "state": "closed",
        "failures": 0,
        "opened_at": None,
        "retry_at": None,
    }
    sync = api.post(f"{url}/sync").json()
    assert wait_for_job(api, sync["dag_run_id"])["status"] == "success"
    assert _gauge(api, circuit) is None  # never failed: no series

    assert api.patch(url, json={"port": free_port()}).status_code == 200
    for _ in range(FAILURES):
        assert api.post(f"{url}/test").json()["reachable"] is False
    shown = api.get(url).json()["circuit"]
    assert (shown["state"], shown["failures"]) == ("open", FAILURES)
    assert shown["opened_at"] and shown["retry_at"] > shown["opened_at"]
    assert api.get("/api/data-connections").json()[0]["circuit"] == shown
    assert _gauge(api, circuit) == 1.0

    # A sync and a build fail at once, saying which circuit and when it retries.
    sync = api.post(f"{url}/sync").json()
    job = wait_for_job(api, sync["dag_run_id"])
    assert job["status"] == "failed" and f"Circuit {circuit} is open" in job["error"]
    tables = api.get(f"{url}/tables").json()
    request = {
        "name": "codes",
        "selection_mode": "tables",
        "selected_tables": [tables[0]["id"]],
        "storage_type": "copy_to_minio",
    }
    build = api.post("/api/datasets/unified", json=request)
    assert build.status_code == 202, build.text
    job = wait_for_job(api, build.json()["dag_run_id"])
    assert job["status"] == "failed" and f"Circuit {circuit} is open" in job["error"]

    # The preview's 503 comes from the dataset service, which answered: the gateway's circuit
    # to that service does not count it.
    preview = api.post("/api/datasets/unified/preview", json={**request, "limit": 5})
    assert preview.status_code == 503 and f"Circuit {circuit}" in preview.json()["detail"]
    # When to try again, from the circuit's reset time, through the dataset service's answer.
    assert STAYS_OPEN / 2 <= int(preview.headers["retry-after"]) <= STAYS_OPEN
    with api.app.state.runtime.session_factory() as session:
        assert session.get(CircuitState, "service:dataset") is None

    # /test is the operator's probe: let through while open, and it closes the circuit.
    assert api.patch(url, json={"port": 5432}).status_code == 200
    tested = api.post(f"{url}/test").json()
    assert tested["ok"] is True
    assert api.get(url).json()["circuit"]["state"] == "closed"
    assert _gauge(api, circuit) == 0.0
    assert [e["circuit"] for e in _events(api, "circuit.opened")] == [circuit]
    assert [e["circuit"] for e in _events(api, "circuit.closed")] == [circuit]
    preview = api.post("/api/datasets/unified/preview", json={**request, "limit": 5})
    assert preview.status_code == 200 and preview.json()["row_count"] == 2


def test_the_gateway_circuit_to_a_service_that_is_down_and_back(circuit_settings, pg_database):
    database = pg_database()
    with running_stack(circuit_settings, with_sync=False) as api:
        settings = api.app.state.runtime.settings
        created = _connection(api, database, 5432)
        url = f"/api/data-connections/{created['id']}/sync"

        for _ in range(FAILURES):  # nothing listens on the sync service's port
            job = wait_for_job(api, api.post(url).json()["dag_run_id"])
            assert job["status"] == "failed" and "did not answer" in job["error"]
        assert _gauge(api, "service:sync") == 1.0

        started = time.perf_counter()
        job = wait_for_job(api, api.post(url).json()["dag_run_id"])
        assert job["status"] == "failed"
        assert "Circuit service:sync is open" in job["error"], job["error"]
        assert time.perf_counter() - started < 2
        (opened,) = _events(api, "circuit.opened")
        assert opened["circuit"] == "service:sync" and opened["service"] == "sync"

        port = int(settings.resolved_sync_url.rsplit(":", 1)[1])
        server = serve_in_thread(create_sync(settings), port=port)
        try:
            time.sleep(RESET + 0.1)
            job = wait_for_job(api, api.post(url).json()["dag_run_id"])
            assert job["status"] == "success", job
            assert _gauge(api, "service:sync") == 0.0
            (closed,) = _events(api, "circuit.closed")
            assert closed["circuit"] == "service:sync"
        finally:
            server.stop()
