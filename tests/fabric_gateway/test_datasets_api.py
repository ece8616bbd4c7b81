"""Unified datasets across PostgreSQL, MariaDB and SQLite, written to a real S3 server."""

from __future__ import annotations

import io
import json
import sqlite3
from decimal import Decimal

import polars as pl
import pyarrow.parquet as pq
import pytest
from conftest import mysql_execute, pg_execute
from service_helpers import (
    column_ids,
    mysql_source,
    pg_source,
    register_and_sync,
    running_stack,
    wait_for_job,
)

pytestmark = [pytest.mark.postgres, pytest.mark.mysql]


@pytest.fixture
def sources(pg_database, mysql_database, tmp_path):
    pg_db = pg_database()
    pg_execute(
        pg_db,
        """
        CREATE SCHEMA crm;
        CREATE TABLE crm.customers (
            id integer PRIMARY KEY, "Full Name" text, gender smallint,
            balance numeric(12, 2), signup timestamptz, active boolean);
        INSERT INTO crm.customers VALUES
            (1, 'Ada', 1, 10.50, '2024-01-01 10:00+00', true),
            (2, 'Grace', 2, 20.25, '2024-02-01 12:00+02', false),
            (3, 'Alan', 1, NULL, NULL, NULL),
            (4, 'Hedy', 7, 1.00, '2024-03-01 00:00+00', true);
        CREATE TABLE crm.doomed (id integer PRIMARY KEY, note text);
        INSERT INTO crm.doomed VALUES (1, 'x');
        ANALYZE;
        """,
    )
    my_db = mysql_database()
    mysql_execute(
        f"""
        CREATE TABLE `{my_db}`.clients (
            client_id INT PRIMARY KEY, name VARCHAR(100), sex CHAR(1),
            balance DECIMAL(10, 3), created DATETIME, vip TINYINT(1));
        INSERT INTO `{my_db}`.clients VALUES
            (10, 'Katherine', 'F', 5.125, '2023-12-31 23:59:59', 1),
            (11, 'Linus', 'M', 0.5, '2024-06-01 08:00:00', 0)
        """
    )
    path = tmp_path / "billing.db"
    with sqlite3.connect(path) as connection:
        connection.executescript(
            """
            CREATE TABLE accounts (
                acct TEXT PRIMARY KEY, holder TEXT, gender TEXT, balance REAL,
                opened TEXT, active INTEGER);
            INSERT INTO accounts VALUES
                ('A-1', 'Margaret', 'female', 99.5, '2024-05-05', 1),
                ('A-2', 'Tim', 'male', 0.25, 'not a date', 0),
                ('A-3', 'Barbara', 'female', 12, '2024-07-07 09:30:00', 1);
            """
        )
    connection.close()
    return pg_db, my_db, path


@pytest.fixture
def s3_settings(settings, s3_server, request):
    prefix = request.node.name.replace("[", "_").replace("]", "")
    return settings.model_copy(update=s3_server.settings_update(prefix))


@pytest.fixture
def api(s3_settings):
    with running_stack(s3_settings) as client:
        yield client


def _register_and_sync(api, body) -> dict[str, dict]:
    _, tables = register_and_sync(api, body)
    return {
        name: {"id": table["id"], "columns": column_ids(table)} for name, table in tables.items()
    }


@pytest.fixture
def catalog(api, sources):
    """The three sources registered, synced and mapped; returns their tables."""
    pg_db, my_db, path = sources
    pg = _register_and_sync(
        api,
        pg_source("pg_crm", pg_db, "crm"),
    )
    my = _register_and_sync(
        api,
        mysql_source("maria_shop", my_db),
    )
    lite = _register_and_sync(api, {"name": "billing", "kind": "sqlite", "database": str(path)})
    unified = {}
    for name, logical in [
        ("customer_name", "string"),
        ("gender", "string"),
        ("balance", "decimal"),
        ("signed_up", "datetime"),
        ("active", "boolean"),
    ]:
        created = api.post("/api/unified-columns", json={"name": name, "logical_type": logical})
        unified[name] = created.json()["id"]
    mappings = {
        "customer_name": [
            (pg, "customers", "Full Name"),
            (my, "clients", "name"),
            (lite, "accounts", "holder"),
        ],
        "gender": [
            (pg, "customers", "gender"),
            (my, "clients", "sex"),
            (lite, "accounts", "gender"),
        ],
        "balance": [
            (pg, "customers", "balance"),
            (my, "clients", "balance"),
            (lite, "accounts", "balance"),
        ],
        "signed_up": [
            (pg, "customers", "signup"),
            (my, "clients", "created"),
            (lite, "accounts", "opened"),
        ],
        "active": [
            (pg, "customers", "active"),
            (my, "clients", "vip"),
            (lite, "accounts", "active"),
        ],
    }
    for unified_name, columns in mappings.items():
        for source, table, column in columns:
            response = api.post(
                "/api/column-mappings",
                json={
                    "column_id": source[table]["columns"][column],
                    "unified_column_id": unified[unified_name],
                },
            )
            assert response.status_code == 201, response.text
    for source, table, column, values in [
        (pg, "customers", "gender", [(1, "M"), (2, "F")]),
        (lite, "accounts", "gender", [("male", "M"), ("female", "F")]),
    ]:
        response = api.post(
            "/api/value-mappings",
            json={
                "column_id": source[table]["columns"][column],
                "mappings": [{"source_value": s, "target_value": t} for s, t in values],
            },
        )
        assert response.status_code == 201, response.text
    return {"pg": pg, "my": my, "lite": lite}


def _request(catalog, **overrides):
    return {
        "name": "customers_unified",
        "selection_mode": "tables",
        "selected_tables": [
            catalog["pg"]["customers"]["id"],
            catalog["my"]["clients"]["id"],
            catalog["lite"]["accounts"]["id"],
        ],
        "auto_include_mapped_columns": True,
        "apply_value_mappings": True,
        "storage_type": "copy_to_minio",
        **overrides,
    }


def _read_version(s3_server, location: str) -> tuple[pl.DataFrame, dict]:
    fs = s3_server.filesystem()
    folder = location.removeprefix("s3://")
    files = sorted(fs.ls(folder))
    parts = [f for f in files if f.endswith(".parquet")]
    assert parts and f"{folder}/_manifest.json" in files
    tables = [pq.read_table(io.BytesIO(fs.cat(p))) for p in parts]
    frame = pl.concat([pl.from_arrow(t) for t in tables])
    return frame, json.loads(fs.cat(f"{folder}/_manifest.json"))


def test_build_reads_back_harmonised_parquet_on_s3(api, catalog, s3_server):
    answer = api.post("/api/datasets/unified", json=_request(catalog))
    assert answer.status_code == 202, answer.text
    queued = answer.json()
    assert set(queued) == {
        "message",
        "dag_run_id",
        "dag_id",
        "airflow_url",
        "dataset_name",
        "selection_mode",
        "status",
        "estimated_processing_time",
    }
    assert queued["message"] == "Dataset creation for 'customers_unified' has been queued"
    assert queued["dag_run_id"].startswith("dataset_customers_unified_")
    assert (queued["dag_id"], queued["status"]) == ("create_unified_dataset", "queued")
    assert "9 rows" in queued["estimated_processing_time"]

    job = wait_for_job(api, queued["dag_run_id"])
    assert job["status"] == "success", job
    stats = job["stats"]
    assert stats["rows_per_source"] == {
        "pg_crm.crm.customers": 4,
        f"maria_shop.{_schema(api, catalog['my'])}.clients": 2,
        "billing.main.accounts": 3,
    }
    assert stats["cast_failures"] == {"signed_up": 1}  # 'not a date'

    dataset = api.get("/api/datasets/customers_unified").json()
    assert (dataset["status"], dataset["current_version"], dataset["row_count"]) == ("ready", 1, 9)
    assert dataset["location"].startswith("s3://fabric-test/")
    assert dataset["location"].endswith("/datasets/customers_unified/v1")
    frame, manifest = _read_version(s3_server, dataset["location"])
    assert frame.height == 9
    assert frame.schema["balance"] == pl.Decimal(38, 3)
    assert frame.schema["signed_up"] == pl.Datetime("us", "UTC")
    assert frame.schema["active"] == pl.Boolean
    assert frame.columns[-2:] == ["_source_connection", "_source_table"]
    by_source = dict(frame.group_by("_source_connection").len().iter_rows())
    assert by_source == {"pg_crm": 4, "maria_shop": 2, "billing": 3}

    rows = {row["customer_name"]: row for row in frame.iter_rows(named=True)}
    assert rows["Ada"]["gender"] == "M" and rows["Grace"]["gender"] == "F"
    assert rows["Hedy"]["gender"] == "7"  # no mapping for 7: kept as it was
    assert rows["Katherine"]["gender"] == "F" and rows["Margaret"]["gender"] == "F"
    assert rows["Katherine"]["balance"] == Decimal("5.125")
    assert rows["Grace"]["signed_up"].isoformat() == "2024-02-01T10:00:00+00:00"
    assert rows["Tim"]["signed_up"] is None and rows["Barbara"]["signed_up"] is not None
    assert (rows["Katherine"]["active"], rows["Linus"]["active"]) == (True, False)
    assert rows["Alan"]["_source_table"] == "crm.customers"
    assert rows["Ada"]["id"] == 1 and rows["Katherine"]["client_id"] == 10

    assert manifest["job_id"] == queued["dag_run_id"] and manifest["version"] == 1
    assert manifest["row_count"] == 9 and manifest["rows_per_source"] == stats["rows_per_source"]
    assert {c["name"] for c in manifest["schema"]} == set(frame.columns)
    assert manifest["mapping_snapshot"]["value_mappings"]["pg_crm.crm.customers.gender"] == {
        "1": "M",
        "2": "F",
    }
    assert len(manifest["mapping_snapshot"]["column_mappings"]) == 15

    # Same name again: version 2, version 1 still readable.
    second = api.post("/api/datasets/unified", json=_request(catalog)).json()
    assert wait_for_job(api, second["dag_run_id"])["status"] == "success"
    dataset = api.get("/api/datasets/customers_unified").json()
    assert dataset["current_version"] == 2
    assert [v["version"] for v in dataset["versions"]] == [1, 2]
    old, _ = _read_version(s3_server, dataset["versions"][0]["location"])
    assert old.height == 9
    rows_v1 = api.get("/api/datasets/customers_unified/rows", params={"version": 1, "limit": 3})
    assert rows_v1.json()["row_count"] == 3
    assert [d["name"] for d in api.get("/api/datasets").json()] == ["customers_unified"]

    assert api.delete("/api/datasets/customers_unified").status_code == 204
    assert s3_server.filesystem().find(dataset["location"].removeprefix("s3://")) == []
    assert api.get("/api/datasets/customers_unified").status_code == 404


def _schema(api, tables) -> str:
    table = api.get(f"/api/tables/{tables['clients']['id']}").json()
    return table["schema"]


def test_preview_pushes_the_limit_down_and_writes_nothing(api, catalog, s3_server, s3_settings):
    response = api.post("/api/datasets/unified/preview", json={**_request(catalog), "limit": 5})
    assert response.status_code == 200, response.text
    preview = response.json()
    assert preview["row_count"] == 5 and len(preview["rows"]) == 5
    assert [c["name"] for c in preview["columns"]][:3] == ["id", "customer_name", "gender"]
    assert {"name": "balance", "type": "decimal(38,3)"} in preview["columns"]
    assert preview["rows"][0]["balance"] == "10.50" or preview["rows"][0]["balance"] == "10.500"
    root = s3_settings.storage_url.removeprefix("s3://")
    assert not s3_server.filesystem().exists(f"{root}/datasets")

    too_many = api.post("/api/datasets/unified/preview", json={**_request(catalog), "limit": 1001})
    assert too_many.status_code == 422 and "1000" in too_many.text


def test_columns_mode_with_auto_included_mapped_columns(api, catalog):
    pg, my = catalog["pg"], catalog["my"]
    request = _request(
        catalog,
        selection_mode="columns",
        selected_tables=[],
        selected_columns=[
            pg["customers"]["columns"]["Full Name"],
            pg["customers"]["columns"]["gender"],
            my["clients"]["columns"]["client_id"],
        ],
    )
    preview = api.post("/api/datasets/unified/preview", json={**request, "limit": 100}).json()
    names = [c["name"] for c in preview["columns"]]
    # The MariaDB table gets its columns mapped to customer_name and gender too.
    assert names == ["customer_name", "gender", "client_id", "_source_connection", "_source_table"]
    maria = [r for r in preview["rows"] if r["_source_connection"] == "maria_shop"]
    assert {r["customer_name"] for r in maria} == {"Katherine", "Linus"}
    assert {r["gender"] for r in maria} == {"F", "M"}

    without = api.post(
        "/api/datasets/unified/preview",
        json={**request, "auto_include_mapped_columns": False, "apply_value_mappings": False},
    ).json()
    assert [c["name"] for c in without["columns"]] == [
        "customer_name",
        "gender",
        "client_id",
        "_source_connection",
        "_source_table",
    ]
    maria = [r for r in without["rows"] if r["_source_connection"] == "maria_shop"]
    assert {r["customer_name"] for r in maria} == {None}
    pg_rows = [r for r in without["rows"] if r["_source_connection"] == "pg_crm"]
    assert {r["gender"] for r in pg_rows} == {"1", "2", "7"}


def test_virtual_dataset_stores_the_definition_only(api, catalog, s3_server, s3_settings):
    answer = api.post(
        "/api/datasets/unified", json=_request(catalog, name="people_live", storage_type="virtual")
    ).json()
    job = wait_for_job(api, answer["dag_run_id"])
    assert job["status"] == "success", job
    dataset = api.get("/api/datasets/people_live").json()
    assert (dataset["storage_type"], dataset["current_version"]) == ("virtual", 1)
    assert dataset["location"] is None and dataset["row_count"] is None
    assert "customer_name" in [c["name"] for c in dataset["columns"]]
    root = s3_settings.storage_url.removeprefix("s3://")
    assert not s3_server.filesystem().exists(f"{root}/datasets/people_live")
    rows = api.get("/api/datasets/people_live/rows", params={"limit": 1000}).json()
    assert rows["row_count"] == 9


def _unified_id(api, name: str) -> int:
    (unified,) = [u for u in api.get("/api/unified-columns").json() if u["name"] == name]
    return unified["id"]


def test_a_conversion_the_build_does_not_have_is_refused_up_front(api, catalog):
    """Datetimes mapped to a boolean: the build, the preview and the rows of a virtual
    dataset answer 422 naming each such column; the plan shows them unsupported."""
    virtual = api.post(
        "/api/datasets/unified", json=_request(catalog, name="people_live", storage_type="virtual")
    ).json()
    assert wait_for_job(api, virtual["dag_run_id"])["status"] == "success"
    retyped = api.patch(
        f"/api/unified-columns/{_unified_id(api, 'signed_up')}", json={"logical_type": "boolean"}
    )
    assert retyped.status_code == 200, retyped.text
    shop = f"maria_shop.{_schema(api, catalog['my'])}.clients"

    build = api.post("/api/datasets/unified", json=_request(catalog))
    assert build.status_code == 422, build.text
    detail = build.json()["detail"]
    assert "pg_crm.crm.customers.signup (datetime to boolean)" in detail
    assert f"{shop}.created (datetime to boolean)" in detail
    assert "billing.main.accounts.opened" not in detail  # text parses into a boolean
    assert [d["name"] for d in api.get("/api/datasets").json()] == ["people_live"]

    preview = api.post("/api/datasets/unified/preview", json={**_request(catalog), "limit": 5})
    assert preview.status_code == 422 and "signup (datetime to boolean)" in preview.text
    rows = api.get("/api/datasets/people_live/rows", params={"limit": 10})
    assert rows.status_code == 422 and "signup (datetime to boolean)" in rows.text

    plan = api.post("/api/datasets/unified/plan", json=_request(catalog))
    assert plan.status_code == 200, plan.text
    (signed_up,) = [c for c in plan.json()["columns"] if c["name"] == "signed_up"]
    supported = {s["column"]: s["cast"]["supported"] for s in signed_up["sources"]}
    assert supported == {"signup": False, "created": False, "opened": True}


def test_a_failed_build_leaves_no_visible_version(api, catalog, sources, s3_server, s3_settings):
    pg_db = sources[0]
    request = _request(
        catalog,
        name="half_built",
        selected_tables=[catalog["lite"]["accounts"]["id"], catalog["pg"]["doomed"]["id"]],
    )
    pg_execute(pg_db, "DROP TABLE crm.doomed")  # the catalog still lists it: reading fails
    answer = api.post("/api/datasets/unified", json=request).json()
    job = wait_for_job(api, answer["dag_run_id"])
    assert job["status"] == "failed" and "doomed" in job["error"]
    dataset = api.get("/api/datasets/half_built").json()
    assert (dataset["status"], dataset["current_version"], dataset["versions"]) == (
        "failed",
        None,
        [],
    )
    folder = s3_settings.storage_url.removeprefix("s3://") + "/datasets/half_built"
    fs = s3_server.filesystem()
    assert [p for p in fs.find(folder) if p.endswith((".parquet", ".json"))] == []
    assert not fs.exists(f"{folder}/v1")


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"name": "../etc"}, "name"),
        ({"name": "a/b"}, "name"),
        ({"name": ".hidden"}, "name"),
        ({"selected_tables": []}, "selected_tables"),
        ({"selected_tables": [999999]}, "999999"),
        ({"selection_mode": "rows"}, "selection_mode"),
        ({"storage_type": "tape"}, "storage_type"),
        ({"selection_mode": "columns", "selected_columns": [999999]}, "999999"),
    ],
)
def test_bad_requests_are_422(api, catalog, change, reason):
    response = api.post("/api/datasets/unified", json=_request(catalog, **change))
    assert response.status_code == 422
    assert reason in response.text
    assert api.get("/api/datasets").json() == []


def test_unknown_dataset_is_404(api):
    assert api.get("/api/datasets/nope").status_code == 404
    assert api.get("/api/datasets/nope/rows").status_code == 404
    assert api.delete("/api/datasets/nope").status_code == 404
