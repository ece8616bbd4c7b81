"""The sync and dataset services answer only callers with the service token (over HTTP)."""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys

import httpx
import pytest
from conftest import TEST_ADMIN_TOKEN, TEST_SERVICE_TOKEN
from fabric_core.clients import ServiceClient
from fabric_core.errors import ConfigurationError, NotFoundError
from fabric_core.job_kinds import SYNC
from fabric_dataset.app import create_app as create_dataset
from fabric_sync.app import create_app as create_sync
from fabric_web.service_auth import OPEN_PATHS
from fabric_web.serving import free_port, serve_in_thread
from service_helpers import SERVICE_HEADERS, running_stack, wait_for_job
from starlette.routing import Route

SERVICES = {"sync": create_sync, "dataset": create_dataset}
GATEWAY_HEADERS = {"Authorization": f"Bearer {TEST_ADMIN_TOKEN}"}
REFUSALS = {
    "no token": {},
    "wrong token": {"Authorization": "Bearer not-the-service-token-000000"},
    "token prefix": {"Authorization": f"Bearer {TEST_SERVICE_TOKEN[:-1]}"},
    "other scheme": {"Authorization": f"Basic {TEST_SERVICE_TOKEN}"},
    "bare scheme": {"Authorization": "Bearer"},
}


@pytest.fixture(params=sorted(SERVICES))
def service(request, settings):
    app = SERVICES[request.param](settings)
    server = serve_in_thread(app)
    try:
        yield app, server.url
    finally:
        server.stop()


def _every_route(app) -> list[tuple[str, str]]:
    """(method, concrete path) of every route the app has, /docs and /openapi.json included."""
    routes = []
    for route in app.routes:
        if not isinstance(route, Route):
            continue
        path = re.sub(r"\{[^}]+\}", "x", route.path)
        routes.extend((method, path) for method in sorted(route.methods - {"HEAD"}))
    return routes


def test_every_route_but_health_and_metrics_needs_the_service_token(service):
    app, url = service
    routes = _every_route(app)
    paths = {path for _, path in routes}
    assert {"/status/x", "/docs", "/openapi.json", "/health", "/metrics"} <= paths
    with httpx.Client(base_url=url, timeout=30) as client:
        for method, path in [*routes, ("GET", "/no-such-route")]:
            for case, headers in REFUSALS.items():
                answer = client.request(method, path, headers=headers, json={})
                if path in OPEN_PATHS:
                    assert answer.status_code == 200, (method, path, case)
                    continue
                assert answer.status_code == 401, (method, path, case, answer.text)
                assert answer.headers["www-authenticate"] == "Bearer"
                assert TEST_SERVICE_TOKEN not in answer.text
            # With the token the route itself answers (whatever it makes of an empty body).
            answer = client.request(method, path, headers=SERVICE_HEADERS, json={})
            assert answer.status_code != 401, (method, path)


def test_the_right_token_is_served(service):
    _app, url = service
    with httpx.Client(base_url=url, timeout=30, headers=SERVICE_HEADERS) as client:
        assert client.get("/status/nope").status_code == 404
        assert client.get("/openapi.json").json()["info"]["title"].startswith("Fabric")
        # The refusals were counted under one label, not one per path probed.
        assert client.get("/metrics").status_code == 200


def test_a_client_with_a_wrong_token_gets_a_configuration_error(settings):
    server = serve_in_thread(create_sync(settings))
    try:
        with ServiceClient(server.url, "not-the-service-token-000000") as client:
            with pytest.raises(ConfigurationError, match="refused the service token"):
                client.job_status("sync_1")
            assert client.health()["status"] == "ok"
        same_home = settings.model_copy(update={"sync_url": server.url})
        with (
            ServiceClient.of_service(same_home, SYNC.service) as client,
            pytest.raises(NotFoundError),
        ):
            client.job_status("sync_1")
    finally:
        server.stop()


def test_a_sync_and_a_preview_through_the_gateway_carry_the_token(settings, tmp_path):
    path = tmp_path / "s.db"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT)")
        connection.execute("INSERT INTO t VALUES (1, 'a')")
    connection.close()
    with running_stack(settings) as gateway:
        gateway.headers.update(GATEWAY_HEADERS)
        created = gateway.post(
            "/api/data-connections", json={"name": "s", "kind": "sqlite", "database": str(path)}
        )
        assert created.status_code == 201, created.text
        answer = gateway.post(f"/api/data-connections/{created.json()['id']}/sync")
        assert answer.status_code == 202, answer.text
        job = wait_for_job(gateway, answer.json()["dag_run_id"])
        assert job["status"] == "success", job
        tables = gateway.get(f"/api/data-connections/{created.json()['id']}/tables").json()
        preview = gateway.post(
            "/api/datasets/unified/preview",
            json={"name": "p", "selection_mode": "tables", "selected_tables": [tables[0]["id"]]},
        )
        assert preview.status_code == 200, preview.text
        assert preview.json()["rows"]


def test_a_service_with_a_placeholder_token_does_not_start(tmp_path):
    env = {
        "FABRIC_HOME": str(tmp_path / "home"),
        "FABRIC_SERVICE_TOKEN": "change-me",
        "FABRIC_SYNC_PORT": str(free_port()),
    }
    result = subprocess.run(
        [sys.executable, "-m", "fabric_sync"],
        env={**_base_env(), **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "FABRIC_SERVICE_TOKEN is the placeholder 'change-me'" in result.stderr


def _base_env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith("FABRIC_")}
