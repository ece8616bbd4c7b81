"""The gateway's connection API, driven over HTTP against the real apps."""

from __future__ import annotations

import pytest
from conftest import MYSQL_HOST, PG_HOST, PG_USER
from fabric_web.serving import free_port
from service_helpers import bearer, running_stack


@pytest.fixture
def api(settings):
    with running_stack(settings) as client:
        yield client


def _pg_body(**overrides):
    body = {
        "name": "warehouse",
        "kind": "postgresql",
        "host": PG_HOST,
        "port": 5432,
        "database": "postgres",
        "username": PG_USER,
        "password": "pg-Secret-123",
        "options": {"exclude_schemas": ["tmp_*"]},
    }
    return {**body, **overrides}


def test_root_health_docs_and_metrics(api):
    assert api.get("/").json()["docs"] == "/docs"
    health = api.get("/health")
    assert health.status_code == 200
    assert health.json() == {
        "status": "ok",
        "service": "gateway",
        "database": "ok",
        "storage": "ok",
    }
    assert api.get("/docs").status_code == 200
    paths = api.get("/openapi.json").json()["paths"]
    assert "/api/data-connections/{connection_id}/sync" in paths
    metrics = api.get("/metrics")
    assert metrics.headers["content-type"].startswith("text/plain")
    assert 'fabric_http_requests_total{method="GET",route="/health"' in metrics.text.replace(
        'service="gateway",', ""
    )


def test_create_read_update_delete(api):
    created = api.post("/api/data-connections", json=_pg_body())
    assert created.status_code == 201, created.text
    body = created.json()
    assert "pg-Secret-123" not in created.text and "password" not in body
    assert body["has_password"] is True
    assert (body["name"], body["kind"], body["port"]) == ("warehouse", "postgresql", 5432)
    assert body["options"] == {"exclude_schemas": ["tmp_*"]}
    connection_id = body["id"]

    listed = api.get("/api/data-connections")
    assert [c["id"] for c in listed.json()] == [connection_id]
    assert "pg-Secret-123" not in listed.text

    patched = api.patch(
        f"/api/data-connections/{connection_id}",
        json={"name": "dwh", "password": "other-Secret-9"},
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["name"] == "dwh" and "other-Secret-9" not in patched.text
    assert api.get(f"/api/data-connections/{connection_id}").json()["name"] == "dwh"

    assert api.delete(f"/api/data-connections/{connection_id}").status_code == 204
    assert api.get(f"/api/data-connections/{connection_id}").status_code == 404


def test_moving_a_connection_needs_its_password_again(api):
    created = api.post("/api/data-connections", json=_pg_body()).json()
    url = f"/api/data-connections/{created['id']}"
    for change in ({"host": "collector.example"}, {"port": 6543}, {"kind": "mysql"}):
        refused = api.patch(url, json=change)
        assert refused.status_code == 422, change
        assert "password" in refused.json()["detail"]
    assert api.get(url).json()["host"] == PG_HOST and api.get(url).json()["port"] == 5432
    # The same values, other fields, or the password sent along are fine.
    assert api.patch(url, json={"host": PG_HOST, "database": "template1"}).status_code == 200
    moved = api.patch(url, json={"host": "localhost", "password": "pg-Secret-123"})
    assert moved.status_code == 200 and moved.json()["has_password"] is True
    cleared = api.patch(url, json={"port": 5433, "password": None})
    assert cleared.status_code == 200 and cleared.json()["has_password"] is False
    # Without a stored password there is nothing to protect.
    assert api.patch(url, json={"host": "elsewhere"}).status_code == 200


def test_another_kinds_secret_field_does_not_count_as_sending_the_secret(api):
    created = api.post("/api/data-connections", json=_pg_body()).json()
    url = f"/api/data-connections/{created['id']}"
    for change in (
        {"host": "collector.example", "secret_access_key": None},
        {"kind": "s3", "bucket": "b", "password": None},
        {"kind": "s3", "bucket": "b", "host": None, "port": None, "database": None},
    ):
        refused = api.patch(url, json=change)
        assert refused.status_code == 422, (change, refused.text)
    kept = api.get(url).json()
    assert (kept["kind"], kept["host"], kept["has_password"]) == ("postgresql", PG_HOST, True)


def test_a_mysql_connection_cannot_be_given_sslmode_by_patch(api):
    created = api.post("/api/data-connections", json=_pg_body(name="m", kind="mysql")).json()
    url = f"/api/data-connections/{created['id']}"
    refused = api.patch(url, json={"options": {"sslmode": "require"}, "password": None})
    assert refused.status_code == 422 and "do not take sslmode" in refused.text
    assert api.get(url).json()["options"].get("sslmode") is None


def test_port_defaults_per_kind(api):
    body = _pg_body(name="m", kind="mysql", host=MYSQL_HOST, port=None, password=None)
    created = api.post("/api/data-connections", json=body).json()
    assert created["port"] == 3306 and created["has_password"] is False


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"kind": "oracle"}, "kind"),
        ({"host": None}, "host"),
        ({"options": {"include_schema": ["x"]}}, "include_schema"),
        ({"port": 70000}, "port"),
        ({"name": "  "}, "name"),
        ({"colour": "blue"}, "colour"),
        ({"kind": "sqlite", "database": None}, "database"),
        (
            {"kind": "mysql", "options": {"sslmode": "require"}},
            "MySQL connections do not take sslmode",
        ),
    ],
)
def test_invalid_bodies_are_422_with_the_reason(api, body, reason):
    response = api.post("/api/data-connections", json=_pg_body(**body))
    assert response.status_code == 422
    assert reason in response.text
    assert api.get("/api/data-connections").json() == []


def test_duplicate_name_is_409_and_keeps_the_first(api):
    first = api.post("/api/data-connections", json=_pg_body()).json()
    again = api.post("/api/data-connections", json=_pg_body(host="elsewhere"))
    assert again.status_code == 409 and "warehouse" in again.json()["detail"]
    other = api.post("/api/data-connections", json=_pg_body(name="other")).json()
    renamed = api.patch(f"/api/data-connections/{other['id']}", json={"name": "warehouse"})
    assert renamed.status_code == 409
    assert api.get(f"/api/data-connections/{first['id']}").json()["host"] == PG_HOST
    assert api.get(f"/api/data-connections/{other['id']}").json()["name"] == "other"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/api/data-connections/999"),
        ("patch", "/api/data-connections/999"),
        ("delete", "/api/data-connections/999"),
        ("post", "/api/data-connections/999/test"),
        ("post", "/api/data-connections/999/sync"),
        ("get", "/api/data-connections/999/tables"),
        ("get", "/api/tables/999"),
        ("get", "/api/jobs/sync_999_1"),
    ],
)
def test_unknown_ids_are_404(api, method, path):
    kwargs = {"json": {}} if method == "patch" else {}
    response = getattr(api, method)(path, **kwargs)
    assert response.status_code == 404
    assert "999" in response.json()["detail"]


@pytest.mark.postgres
def test_test_endpoint_tells_reachable_from_authenticated(api, pg_admin, mysql_admin):
    ok = api.post("/api/data-connections", json=_pg_body(password=None)).json()
    result = api.post(f"/api/data-connections/{ok['id']}/test").json()
    assert result["ok"] and result["reachable"] and result["authenticated"]
    assert result["server_version"]

    closed = api.post(
        "/api/data-connections", json=_pg_body(name="closed", port=free_port())
    ).json()
    result = api.post(f"/api/data-connections/{closed['id']}/test").json()
    assert (result["ok"], result["reachable"]) == (False, False)
    assert "pg-Secret-123" not in str(result)

    denied = api.post(
        "/api/data-connections",
        json=_pg_body(
            name="denied",
            kind="mysql",
            host=MYSQL_HOST,
            port=3306,
            username="fabric_nobody",
            password="my-Secret-77",
        ),
    ).json()
    result = api.post(f"/api/data-connections/{denied['id']}/test").json()
    assert (result["ok"], result["reachable"], result["authenticated"]) == (False, True, False)
    assert "fabric_nobody" in result["message"] and "my-Secret-77" not in result["message"]


def test_out_of_range_ids_and_nul_bytes_are_422(api):
    assert api.get(f"/api/data-connections/{2**70}").status_code == 422
    assert api.get(f"/api/tables/{2**70}").status_code == 422
    nul = api.post(
        "/api/data-connections",
        json={"name": "n", "kind": "sqlite", "database": "/tmp/a\u0000b.db"},
    )
    assert nul.status_code == 422 and "NUL" in nul.text


def test_a_secret_key_that_does_not_fit_is_a_503_that_says_what_to_do(settings):
    with running_stack(settings) as api:
        created = api.post("/api/data-connections", json=_pg_body())
        assert created.status_code == 201
    other_key = settings.model_copy(update={"secret_key": "another-key-0123456789"})
    with running_stack(other_key, with_sync=False, with_dataset=False) as api:
        answer = api.post(f"/api/data-connections/{created.json()['id']}/test")
    assert answer.status_code == 503
    assert "cannot be decrypted" in answer.json()["detail"]


def test_a_commit_that_fails_is_an_error_answer_and_stores_nothing(settings):
    from fabric_gateway.app import create_app
    from fastapi.testclient import TestClient
    from sqlalchemy import event
    from sqlalchemy.exc import OperationalError

    def refuse(_session):
        raise OperationalError("COMMIT", {}, Exception("disk I/O error"))

    with TestClient(
        create_app(settings), raise_server_exceptions=False, headers=bearer(settings)
    ) as api:
        factory = api.app.state.runtime.session_factory
        event.listen(factory, "before_commit", refuse)
        try:
            answer = api.post("/api/data-connections", json=_pg_body())
        finally:
            event.remove(factory, "before_commit", refuse)
        assert answer.status_code == 503, answer.text
        assert "nothing was changed" in answer.json()["detail"]
        assert api.get("/api/data-connections").json() == []
        assert api.post("/api/data-connections", json=_pg_body()).status_code == 201
