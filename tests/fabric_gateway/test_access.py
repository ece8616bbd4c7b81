"""Tokens, roles, rate limits, CORS and the audit log, through the real gateway over HTTP."""

from __future__ import annotations

import re
import socket
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from conftest import PG_HOST, PG_USER, TEST_ADMIN_TOKEN, _missing_server
from fabric_core import connections
from fabric_core.models import ApiToken, AuditEvent
from fabric_gateway.app import create_app
from fabric_web.serving import free_port, serve_config_in_thread, uvicorn_config
from fastapi.testclient import TestClient
from faults.fault_helpers import silent_server
from service_helpers import bearer, running_stack, wait_for_job
from sqlalchemy import select

# The role each API route needs. A new route missing here fails
# test_every_api_route_is_in_the_role_table: every route must be placed on purpose.
ROUTE_ROLES = {
    ("GET", "/api/alert-channels"): "admin",
    ("POST", "/api/alert-channels"): "admin",
    ("DELETE", "/api/alert-channels/{channel_id}"): "admin",
    ("GET", "/api/alert-channels/{channel_id}"): "admin",
    ("PATCH", "/api/alert-channels/{channel_id}"): "admin",
    ("POST", "/api/alert-channels/{channel_id}/test"): "admin",
    ("GET", "/api/audit-events"): "admin",
    ("GET", "/api/column-mappings"): "viewer",
    ("POST", "/api/column-mappings"): "editor",
    ("DELETE", "/api/column-mappings/{mapping_id}"): "editor",
    ("GET", "/api/column-mappings/{mapping_id}"): "viewer",
    ("GET", "/api/columns/{column_id}/values"): "editor",
    ("GET", "/api/data-connections"): "viewer",
    ("POST", "/api/data-connections"): "admin",
    ("DELETE", "/api/data-connections/{connection_id}"): "admin",
    ("GET", "/api/data-connections/{connection_id}"): "viewer",
    ("PATCH", "/api/data-connections/{connection_id}"): "admin",
    ("POST", "/api/data-connections/{connection_id}/sync"): "editor",
    ("GET", "/api/data-connections/{connection_id}/tables"): "viewer",
    ("POST", "/api/data-connections/{connection_id}/test"): "admin",
    ("GET", "/api/datasets"): "viewer",
    ("POST", "/api/datasets/unified"): "editor",
    ("POST", "/api/datasets/unified/plan"): "viewer",
    ("POST", "/api/datasets/unified/preview"): "editor",
    ("DELETE", "/api/datasets/{name}"): "editor",
    ("GET", "/api/datasets/{name}"): "viewer",
    ("GET", "/api/datasets/{name}/diff"): "viewer",
    ("GET", "/api/datasets/{name}/rows"): "viewer",
    ("GET", "/api/drift"): "viewer",
    ("GET", "/api/jobs"): "viewer",
    ("GET", "/api/jobs/{job_id}"): "viewer",
    ("POST", "/api/jobs/{job_id}/cancel"): "editor",
    ("GET", "/api/tables/{table_id}"): "viewer",
    ("GET", "/api/tokens"): "admin",
    ("POST", "/api/tokens"): "admin",
    ("DELETE", "/api/tokens/{token_id}"): "admin",
    ("GET", "/api/unified-columns"): "viewer",
    ("POST", "/api/unified-columns"): "editor",
    ("DELETE", "/api/unified-columns/{unified_column_id}"): "editor",
    ("GET", "/api/unified-columns/{unified_column_id}"): "viewer",
    ("PATCH", "/api/unified-columns/{unified_column_id}"): "editor",
    ("GET", "/api/unified-columns/{unified_column_id}/value-suggestions"): "editor",
    ("GET", "/api/unified-columns/{unified_column_id}/suggestions"): "editor",
    ("GET", "/api/unified-columns/{unified_column_id}/suggestions/dismissed"): "viewer",
    ("POST", "/api/unified-columns/{unified_column_id}/suggestions/dismissed"): "editor",
    (
        "DELETE",
        "/api/unified-columns/{unified_column_id}/suggestions/dismissed/{column_id}",
    ): "editor",
    ("POST", "/api/unified-columns/{unified_column_id}/suggestions/accept"): "editor",
    ("GET", "/api/column-suggestions"): "editor",
    ("GET", "/api/value-mappings"): "viewer",
    ("POST", "/api/value-mappings"): "editor",
    ("DELETE", "/api/value-mappings/{value_mapping_id}"): "editor",
}
RANK = {"viewer": 0, "editor": 1, "admin": 2}


@pytest.fixture
def api(settings):
    with running_stack(settings) as client:
        yield client


def _token(api: TestClient, role: str, name: str | None = None) -> dict:
    answer = api.post("/api/tokens", json={"name": name or f"{role}-token", "role": role})
    assert answer.status_code == 201, answer.text
    return answer.json()


def _as(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _concrete(path: str) -> str:
    """A path of the template whose objects do not exist (no route changes anything)."""
    return re.sub(r"\{(\w+)\}", lambda m: "nope" if m.group(1) == "name" else "987654", path)


def test_every_api_route_is_in_the_role_table(api):
    spec = api.get("/openapi.json").json()
    routes = {
        (method.upper(), path)
        for path, operations in spec["paths"].items()
        if path.startswith("/api")
        for method in operations
    }
    assert routes == set(ROUTE_ROLES)
    for route in api.app.routes:
        if getattr(route, "path", "").startswith("/api"):
            required = [
                d.call.required_role.value
                for d in route.dependant.dependencies
                if hasattr(d.call, "required_role")
            ]
            for method in route.methods:
                assert required == [ROUTE_ROLES[(method, route.path)]], (method, route.path)


def test_each_role_against_each_route(api):
    tokens = {role: _token(api, role)["token"] for role in RANK}
    for (method, path), needed in ROUTE_ROLES.items():
        url = _concrete(path)
        anonymous = api.request(method, url, json={}, headers={"Authorization": ""})
        assert anonymous.status_code == 401, (method, path)
        assert anonymous.headers["WWW-Authenticate"] == "Bearer"
        wrong = api.request(method, url, json={}, headers=_as("fabric_not-a-token"))
        assert wrong.status_code == 401, (method, path)
        for role, token in tokens.items():
            answer = api.request(method, url, json={}, headers=_as(token))
            if RANK[role] < RANK[needed]:
                assert answer.status_code == 403, (role, method, path, answer.text)
                assert needed in answer.json()["detail"]
            else:
                assert answer.status_code not in (401, 403), (role, method, path, answer.text)


def test_the_openapi_description_says_every_api_route_takes_a_bearer_token(api):
    spec = api.get("/openapi.json").json()
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            documented = operation.get("security") == [{"HTTPBearer": []}]
            assert documented == path.startswith("/api"), (method, path)


def test_open_routes_need_no_token(api):
    for path in ("/", "/health", "/docs", "/openapi.json"):
        assert api.get(path, headers={"Authorization": ""}).status_code == 200, path


def test_a_token_is_shown_once_stored_as_a_digest_and_revoked_at_once(api):
    created = _token(api, "viewer", "dashboards")
    assert created["token"].startswith("fabric_") and len(created["token"]) > 40
    headers = _as(created["token"])
    assert api.get("/api/data-connections", headers=headers).status_code == 200

    listed = api.get("/api/tokens").json()
    assert [t["name"] for t in listed] == ["dashboards"]
    assert "token" not in listed[0] and listed[0]["created_by"] == "bootstrap-admin"
    with api.app.state.runtime.session_factory() as session:
        digests = session.scalars(select(ApiToken.token_digest)).all()
    assert created["token"] not in str(digests) and len(digests[0]) == 64

    assert api.delete(f"/api/tokens/{created['id']}").status_code == 204
    refused = api.get("/api/data-connections", headers=headers)
    assert refused.status_code == 401
    assert api.get("/api/tokens").json()[0]["revoked_at"] is not None
    assert api.delete("/api/tokens/424242").status_code == 404


def test_token_requests_are_checked(api):
    assert api.post("/api/tokens", json={"name": "x", "role": "root"}).status_code == 422
    assert api.post("/api/tokens", json={"name": "", "role": "viewer"}).status_code == 422
    assert api.post("/api/tokens", json={"name": "x" * 200, "role": "viewer"}).status_code == 422


def test_a_job_records_the_token_that_queued_it(api, pg_database):
    editor = _token(api, "editor", "etl-bot")
    connection = api.post(
        "/api/data-connections",
        json={
            "name": "pg",
            "kind": "postgresql",
            "host": PG_HOST,
            "port": 5432,
            "database": pg_database(),
            "username": PG_USER,
        },
    ).json()
    queued = api.post(
        f"/api/data-connections/{connection['id']}/sync", headers=_as(editor["token"])
    )
    assert queued.status_code == 202, queued.text
    job = wait_for_job(api, queued.json()["dag_run_id"])
    assert job["requested_by"] == "etl-bot"
    with api.app.state.runtime.session_factory() as session:
        from fabric_core.models import Job

        assert session.get(Job, job["id"]).requested_by_token_id == editor["id"]


def test_the_audit_log_records_changes_and_refusals_without_secrets(api, settings):
    viewer = _token(api, "viewer", "reader")
    sqlite_file = str(settings.home / "sqlite" / "x.db")  # inside the default sqlite root
    body = {"name": "local", "kind": "sqlite", "database": sqlite_file}
    secret_body = {"name": "pw", "kind": "postgresql", "host": PG_HOST, "password": "pw-Hidden-77"}
    created = api.post("/api/data-connections", json=body)
    api.post("/api/data-connections", json=secret_body, headers={"X-Request-ID": "req-42"})
    api.get("/api/data-connections", headers={"Authorization": "Bearer wrong"})  # 401
    api.delete(f"/api/data-connections/{created.json()['id']}", headers=_as(viewer["token"]))
    api.get("/api/data-connections")  # a read: not recorded

    answer = api.get("/api/audit-events")
    assert answer.status_code == 200
    events = answer.json()
    assert int(answer.headers["X-Total-Count"]) == len(events)
    summary = [(e["action"], e["status"], e["token_name"]) for e in events]
    assert summary == [
        ("delete_connection", 403, "reader"),
        ("list_connections", 401, None),
        ("create_connection", 201, "bootstrap-admin"),
        ("create_connection", 201, "bootstrap-admin"),
        ("create_token", 201, "bootstrap-admin"),
    ]
    assert events[2]["request_id"] == "req-42"
    assert events[3]["object_id"] == str(created.json()["id"])
    assert events[0]["object_id"] == str(created.json()["id"])
    assert events[4]["object_id"] == str(viewer["id"])
    assert events[0]["route"] == "/api/data-connections/{connection_id}"
    assert events[0]["client"] and events[0]["method"] == "DELETE"
    with api.app.state.runtime.session_factory() as session:
        stored = str([vars(e) for e in session.scalars(select(AuditEvent))])
    for secret in ("pw-Hidden-77", viewer["token"], TEST_ADMIN_TOKEN):
        assert secret not in stored and secret not in answer.text

    by_token = api.get("/api/audit-events", params={"token_id": viewer["id"]}).json()
    assert [e["action"] for e in by_token] == ["delete_connection"]
    by_action = api.get("/api/audit-events", params={"action": "create_connection"}).json()
    assert len(by_action) == 2
    later = (datetime.now(UTC) + timedelta(minutes=1)).isoformat()
    assert api.get("/api/audit-events", params={"since": later}).json() == []
    paged = api.get("/api/audit-events", params={"limit": 2, "offset": 1})
    assert [e["id"] for e in paged.json()] == [e["id"] for e in events[1:3]]
    # Append-only through the API: no route changes or removes events.
    assert api.delete("/api/audit-events").status_code == 405
    assert api.post("/api/audit-events", json={}).status_code == 405
    assert api.get("/api/audit-events", headers=_as(viewer["token"])).status_code == 403


def test_the_audit_log_records_failed_changes_and_refusals_on_unknown_paths(settings, monkeypatch):
    def broken(*_args, **_kwargs):
        raise RuntimeError("unexpected")

    monkeypatch.setattr(connections, "delete_connection", broken)
    with TestClient(
        create_app(settings), headers=bearer(settings), raise_server_exceptions=False
    ) as api:
        assert api.delete("/api/data-connections/1").status_code == 500
        assert api.get("/api/anything", headers=_as("wrong")).status_code == 401
        assert api.put("/api/data-connections", headers=_as("wrong")).status_code == 401
        events = api.get("/api/audit-events").json()
    assert [(e["method"], e["route"], e["action"], e["status"]) for e in events] == [
        ("PUT", "unmatched", "unmatched", 401),
        ("GET", "unmatched", "unmatched", 401),
        ("DELETE", "/api/data-connections/{connection_id}", "delete_connection", 500),
    ]


def test_rate_limit_per_token_and_per_address(settings):
    limited = settings.model_copy(update={"rate_limit": "5/minute"})
    with TestClient(create_app(limited), headers=bearer(limited)) as api:
        other = _token(api, "viewer")["token"]  # request 1 of the admin token
        statuses = [api.get("/api/jobs").status_code for _ in range(5)]
        assert statuses == [200, 200, 200, 200, 429]
        refused = api.get("/api/jobs")
        assert refused.status_code == 429 and 1 <= int(refused.headers["Retry-After"]) <= 60
        # Another token has its own count; open routes are not limited.
        assert api.get("/api/jobs", headers=_as(other)).status_code == 200
        assert api.get("/health").status_code == 200
        # Without a valid token the client address is counted: guessing is slowed too.
        guesses = [api.get("/api/jobs", headers=_as(f"guess-{n}")).status_code for n in range(6)]
        assert guesses == [401] * 5 + [429]


@pytest.mark.redis
def test_gateway_replicas_share_counts_through_redis(settings):
    try:
        socket.create_connection(("127.0.0.1", 6379), timeout=2).close()
    except OSError:
        _missing_server("Redis is not running on 127.0.0.1:6379")
    shared = settings.model_copy(
        update={
            "rate_limit": "4/minute",
            "rate_limit_storage_url": "redis://127.0.0.1:6379/0",
            "admin_token": f"admin-{uuid.uuid4().hex}",
        }
    )
    with (
        TestClient(create_app(shared), headers=bearer(shared)) as first,
        TestClient(create_app(shared), headers=bearer(shared)) as second,
    ):
        statuses = [client.get("/api/jobs").status_code for client in (first, second) * 3]
    assert statuses == [200, 200, 200, 200, 429, 429]


def test_a_silent_rate_limit_store_stalls_no_other_request(settings):
    """A Redis that accepts and never answers: /health answers at once, and an API request
    passes uncounted after the store's short timeout instead of hanging."""
    with silent_server() as port:
        silent = settings.model_copy(
            update={"rate_limit_storage_url": f"redis://127.0.0.1:{port}/0"}
        )
        with TestClient(create_app(silent), headers=bearer(silent)) as api:
            pool = ThreadPoolExecutor(max_workers=2)
            try:
                stuck = pool.submit(api.get, "/api/jobs")
                time.sleep(0.3)  # that request now waits on the store
                started = time.monotonic()
                health = pool.submit(api.get, "/health").result(timeout=10)
                assert health.status_code == 200
                assert time.monotonic() - started < 0.5
                assert stuck.result(timeout=20).status_code == 200
            finally:
                pool.shutdown(wait=False)


@pytest.mark.parametrize(("trusted", "seen"), [([], "127.0.0.1"), (["127.0.0.1"], "203.0.113.9")])
def test_x_forwarded_for_counts_only_from_listed_proxies(settings, trusted, seen):
    """The gateway as its entry point serves it: a loopback caller's X-Forwarded-For is
    ignored unless FABRIC_FORWARDED_ALLOW_IPS lists it."""
    configured = settings.model_copy(update={"forwarded_allow_ips": trusted})
    config = uvicorn_config(create_app(configured), configured, free_port())
    config.log_level = "warning"
    server = serve_config_in_thread(config)
    try:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            refused = client.post(
                "/api/tokens", headers={"X-Forwarded-For": "203.0.113.9", **_as("wrong")}
            )
            assert refused.status_code == 401
            events = client.get("/api/audit-events", headers=bearer(configured)).json()
    finally:
        server.stop()
    assert [e["client"] for e in events] == [seen]


def test_cors_is_off_unless_origins_are_listed(settings):
    preflight = {
        "Origin": "https://evil.example",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization",
    }
    with TestClient(create_app(settings), headers=bearer(settings)) as api:
        answer = api.options("/api/data-connections", headers=preflight)
        assert "access-control-allow-origin" not in answer.headers
        simple = api.get("/api/jobs", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in simple.headers
    allowed = settings.model_copy(update={"cors_origins": ["https://ui.example"]})
    with TestClient(create_app(allowed), headers=bearer(allowed)) as api:
        answer = api.options(
            "/api/data-connections", headers={**preflight, "Origin": "https://ui.example"}
        )
        assert answer.headers["access-control-allow-origin"] == "https://ui.example"
        evil = api.options("/api/data-connections", headers=preflight)
        assert "access-control-allow-origin" not in evil.headers


def test_a_generated_admin_token_is_private_and_works(settings):
    generated = settings.model_copy(update={"admin_token": None})
    with TestClient(create_app(generated)) as api:
        token_file = generated.home / "admin.token"
        assert token_file.stat().st_mode & 0o077 == 0
        token = token_file.read_text().strip()
        assert api.get("/api/tokens", headers=_as(token)).status_code == 200
        assert api.get("/api/tokens", headers=_as(TEST_ADMIN_TOKEN)).status_code == 401
