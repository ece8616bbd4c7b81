"""Unified columns, column mappings and value mappings through the gateway."""

from __future__ import annotations

import sqlite3

import pytest
from service_helpers import running_stack, wait_for_job


@pytest.fixture
def api(settings):
    with running_stack(settings) as client:
        yield client


@pytest.fixture
def source(api, tmp_path):
    """A synced SQLite source; returns (connection id, path, {column name: column id})."""
    path = tmp_path / "crm.db"
    with sqlite3.connect(path) as connection:
        connection.execute(
            "CREATE TABLE customers (id INTEGER PRIMARY KEY, gender TINYINT, mail TEXT)"
        )
    connection.close()
    created = api.post(
        "/api/data-connections", json={"name": "crm", "kind": "sqlite", "database": str(path)}
    ).json()
    answer = api.post(f"/api/data-connections/{created['id']}/sync").json()
    assert wait_for_job(api, answer["dag_run_id"])["status"] == "success"
    table = api.get(f"/api/data-connections/{created['id']}/tables").json()[0]
    columns = {c["name"]: c["id"] for c in api.get(f"/api/tables/{table['id']}").json()["columns"]}
    return created["id"], path, columns


def test_unified_columns_crud(api):
    created = api.post(
        "/api/unified-columns",
        json={"name": "customer_email", "logical_type": "string", "description": "E-mail"},
    )
    assert created.status_code == 201
    unified = created.json()
    assert (unified["name"], unified["mapped_columns"]) == ("customer_email", 0)
    assert (
        api.post(
            "/api/unified-columns", json={"name": "customer_email", "logical_type": "string"}
        ).status_code
        == 409
    )
    renamed = api.patch(f"/api/unified-columns/{unified['id']}", json={"name": "email"})
    assert renamed.json()["name"] == "email"
    assert [u["name"] for u in api.get("/api/unified-columns").json()] == ["email"]
    assert api.delete(f"/api/unified-columns/{unified['id']}").status_code == 204
    assert api.get(f"/api/unified-columns/{unified['id']}").status_code == 404


@pytest.mark.parametrize(
    "body",
    [
        {"name": "../etc", "logical_type": "string"},
        {"name": "1abc", "logical_type": "string"},
        {"name": "ok", "logical_type": "uuid"},
        {"name": "a" * 64, "logical_type": "string"},
    ],
)
def test_unified_column_bad_input_is_422(api, body):
    assert api.post("/api/unified-columns", json=body).status_code == 422
    assert api.get("/api/unified-columns").json() == []


def test_column_mapping_lifecycle_and_staleness(api, source):
    connection_id, path, columns = source
    email = api.post("/api/unified-columns", json={"name": "email", "logical_type": "string"})
    unified_id = email.json()["id"]
    created = api.post(
        "/api/column-mappings", json={"column_id": columns["mail"], "unified_column_id": unified_id}
    )
    assert created.status_code == 201, created.text
    mapping = created.json()
    assert mapping["source"] == {
        "connection_id": connection_id,
        "table_id": mapping["source"]["table_id"],
        "schema": "main",
        "table": "customers",
        "column": "mail",
    }
    assert mapping["unified_column"] == "email" and mapping["stale"] is False
    assert api.get(f"/api/unified-columns/{unified_id}").json()["mapped_columns"] == 1

    other = api.post("/api/unified-columns", json={"name": "other", "logical_type": "string"})
    twice = api.post(
        "/api/column-mappings",
        json={"column_id": columns["mail"], "unified_column_id": other.json()["id"]},
    )
    assert twice.status_code == 409
    assert (
        api.post(
            "/api/column-mappings", json={"column_id": 999999, "unified_column_id": unified_id}
        ).status_code
        == 422
    )
    assert (
        api.post(
            "/api/column-mappings", json={"column_id": columns["id"], "unified_column_id": 999999}
        ).status_code
        == 422
    )

    # The source drops the column: the mapping stays, flagged stale.
    with sqlite3.connect(path) as connection:
        connection.execute("ALTER TABLE customers DROP COLUMN mail")
    connection.close()
    answer = api.post(f"/api/data-connections/{connection_id}/sync").json()
    assert wait_for_job(api, answer["dag_run_id"])["status"] == "success"
    assert api.get(f"/api/column-mappings/{mapping['id']}").json()["stale"] is True
    stale = api.get("/api/column-mappings", params={"stale": True}).json()
    assert [m["id"] for m in stale] == [mapping["id"]]
    assert api.get("/api/column-mappings", params={"stale": False}).json() == []

    assert api.delete(f"/api/column-mappings/{mapping['id']}").status_code == 204
    assert api.delete(f"/api/column-mappings/{mapping['id']}").status_code == 404


def test_value_mappings_single_and_bulk(api, source):
    _, _, columns = source
    gender = columns["gender"]
    single = api.post(
        "/api/value-mappings", json={"column_id": gender, "source_value": 1, "target_value": "M"}
    )
    assert single.status_code == 201
    assert single.json()["source_value"] == "1"  # compared as text: 1 matches "1"
    duplicate = api.post(
        "/api/value-mappings", json={"column_id": gender, "source_value": "1", "target_value": "X"}
    )
    assert duplicate.status_code == 409

    bulk = api.post(
        "/api/value-mappings",
        json={
            "column_id": gender,
            "mappings": [
                {"source_value": 2, "target_value": "F"},
                {"source_value": 9, "target_value": None},
            ],
        },
    )
    assert bulk.status_code == 201
    assert [(m["source_value"], m["target_value"]) for m in bulk.json()] == [
        ("2", "F"),
        ("9", None),
    ]

    # All or nothing: one clash refuses the whole bulk request.
    clash = api.post(
        "/api/value-mappings",
        json={
            "column_id": gender,
            "mappings": [
                {"source_value": 3, "target_value": "D"},
                {"source_value": 2, "target_value": "F"},
            ],
        },
    )
    assert clash.status_code == 409
    repeated = api.post(
        "/api/value-mappings",
        json={
            "column_id": gender,
            "mappings": [
                {"source_value": 4, "target_value": "a"},
                {"source_value": "4", "target_value": "b"},
            ],
        },
    )
    assert repeated.status_code == 422
    listed = api.get("/api/value-mappings", params={"column_id": gender}).json()
    assert sorted(m["source_value"] for m in listed) == ["1", "2", "9"]

    assert api.post("/api/value-mappings", json={"column_id": gender}).status_code == 422
    assert (
        api.post(
            "/api/value-mappings",
            json={"column_id": 999999, "source_value": "a", "target_value": "b"},
        ).status_code
        == 422
    )
    assert api.delete(f"/api/value-mappings/{single.json()['id']}").status_code == 204
    assert len(api.get("/api/value-mappings").json()) == 2
