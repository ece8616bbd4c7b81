"""The s3 kind through the gateway: settings and secrets, and a unified dataset across
PostgreSQL, MariaDB and a folder of Parquet files on S3."""

from __future__ import annotations

from decimal import Decimal

import pyarrow as pa
import pytest
from conftest import MYSQL_HOST, MYSQL_USER, PG_HOST, PG_USER, mysql_execute, pg_execute
from s3_helpers import parquet_bytes, put, s3_body, unique_prefix
from service_helpers import running_stack, wait_for_job


@pytest.fixture
def s3_settings(settings, s3_server, request):
    return settings.model_copy(update=s3_server.settings_update(unique_prefix("storage")))


@pytest.fixture
def api(s3_settings):
    with running_stack(s3_settings) as client:
        yield client


def test_secret_key_is_stored_never_returned_and_moving_needs_it(api, s3_server):
    prefix = unique_prefix("crud")
    created = api.post("/api/data-connections", json=s3_body(s3_server, f"/{prefix}/"))
    assert created.status_code == 201, created.text
    body = created.json()
    assert s3_server.secret_key not in created.text and "secret_access_key" not in body
    assert (body["bucket"], body["prefix"], body["access_key_id"]) == (
        s3_server.bucket,
        prefix,
        s3_server.access_key,
    )
    assert (body["has_secret"], body["has_password"], body["host"]) == (True, False, None)
    url = f"/api/data-connections/{body['id']}"
    assert s3_server.secret_key not in api.get("/api/data-connections").text

    for change in ({"endpoint_url": "http://collector.example:9000"}, {"bucket": "theirs"}):
        refused = api.patch(url, json=change)
        assert refused.status_code == 422 and "secret_access_key" in refused.json()["detail"]
    assert api.get(url).json()["endpoint_url"] == s3_server.endpoint_url
    assert api.patch(url, json={"prefix": "elsewhere"}).status_code == 200
    moved = api.patch(
        url, json={"bucket": "theirs", "secret_access_key": "another-Secret-1"}
    ).json()
    assert moved["bucket"] == "theirs" and "another-Secret-1" not in str(moved)

    check = api.post(f"{url}/test").json()  # bucket "theirs" does not exist
    assert not check["ok"] and "another-Secret-1" not in str(check)


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"options": {"include_schemas": ["x"]}}, "include_schemas"),
        ({"bucket": None}, "bucket"),
        ({"endpoint_url": "file:///etc"}, "endpoint_url"),
        ({"kind": "postgresql", "host": PG_HOST}, "does not apply to a postgresql"),
    ],
)
def test_settings_of_another_kind_are_422(api, s3_server, overrides, reason):
    response = api.post("/api/data-connections", json=s3_body(s3_server, "p", **overrides))
    assert response.status_code == 422 and reason in response.text
    assert api.get("/api/data-connections").json() == []


BROKEN_ENDPOINTS = [
    "http://[::1",
    "http://127.0.0.1:99999",
    "http://127.0.0.1:abc",
    "http://127.0.0.1:0",
    "http://user:pw@127.0.0.1:9000",
    "ftp://127.0.0.1",
]


def test_a_broken_endpoint_url_is_422_on_create_and_patch(api, s3_server):
    for endpoint in BROKEN_ENDPOINTS:
        body = s3_body(s3_server, "p", endpoint_url=endpoint)
        response = api.post("/api/data-connections", json=body)
        assert response.status_code == 422 and "endpoint_url" in response.text, endpoint
    assert api.get("/api/data-connections").json() == []
    created = api.post("/api/data-connections", json=s3_body(s3_server, "p")).json()
    url = f"/api/data-connections/{created['id']}"
    for endpoint in BROKEN_ENDPOINTS:
        change = {"endpoint_url": endpoint, "secret_access_key": s3_server.secret_key}
        response = api.patch(url, json=change)
        assert response.status_code == 422 and "endpoint_url" in response.text, endpoint
    assert api.get(url).json()["endpoint_url"] == s3_server.endpoint_url
    assert api.post(f"{url}/test").status_code == 200


def _register_and_sync(api, body) -> tuple[dict, dict[str, dict]]:
    connection = api.post("/api/data-connections", json=body)
    assert connection.status_code == 201, connection.text
    answer = api.post(f"/api/data-connections/{connection.json()['id']}/sync").json()
    job = wait_for_job(api, answer["dag_run_id"])
    assert job["status"] == "success", job
    tables = {}
    for table in api.get(f"/api/data-connections/{connection.json()['id']}/tables").json():
        detail = api.get(f"/api/tables/{table['id']}").json()
        tables[table["name"]] = {
            "id": table["id"],
            "columns": {c["name"]: c["id"] for c in detail["columns"]},
        }
    return job, tables


@pytest.mark.postgres
@pytest.mark.mysql
def test_unified_dataset_across_postgresql_mariadb_and_s3_files(
    api, s3_server, pg_database, mysql_database
):
    pg_db = pg_database()
    pg_execute(
        pg_db,
        """
        CREATE TABLE customers (id integer PRIMARY KEY, name text, gender smallint,
                                balance numeric(12, 2));
        INSERT INTO customers VALUES (1, 'Ada', 1, 10.50), (2, 'Grace', 2, 20.25);
        """,
    )
    my_db = mysql_database()
    mysql_execute(
        f"""
        CREATE TABLE `{my_db}`.clients (client_id INT PRIMARY KEY, full_name VARCHAR(100),
                                        sex CHAR(1), balance DECIMAL(10, 3));
        INSERT INTO `{my_db}`.clients VALUES (10, 'Katherine', 'F', 5.125)
        """
    )
    prefix = unique_prefix("lake")
    for region, rows in {
        "eu": [("Linus", "m", "0.50"), ("Ken", "m", "1.00")],
        "us": [("Barbara", "f", "12.00")],
    }.items():
        put(
            s3_server,
            f"{prefix}/accounts/region={region}/part-0.parquet",
            parquet_bytes(
                pa.table(
                    {
                        "holder": [r[0] for r in rows],
                        "sex": [r[1] for r in rows],
                        "balance": pa.array([Decimal(r[2]) for r in rows], pa.decimal128(9, 2)),
                    }
                )
            ),
        )
    put(s3_server, f"{prefix}/junk.parquet", b"this is not parquet")

    _, pg = _register_and_sync(
        api,
        {
            "name": "pg",
            "kind": "postgresql",
            "host": PG_HOST,
            "database": pg_db,
            "username": PG_USER,
        },
    )
    _, my = _register_and_sync(
        api,
        {
            "name": "maria",
            "kind": "mysql",
            "host": MYSQL_HOST,
            "database": my_db,
            "username": MYSQL_USER,
        },
    )
    lake_job, lake = _register_and_sync(api, s3_body(s3_server, prefix))
    assert [e["object"] for e in lake_job["stats"]["errors"]] == ["junk.parquet"]
    assert set(lake) == {"accounts"}
    assert set(lake["accounts"]["columns"]) == {"holder", "sex", "balance", "region"}

    sex_column = lake["accounts"]["columns"]["sex"]
    values = api.get(f"/api/columns/{sex_column}/values").json()
    assert values == {"column_id": sex_column, "values": ["f", "m"], "truncated": False}
    capped = api.get(f"/api/columns/{pg['customers']['columns']['gender']}/values?limit=1")
    assert capped.json()["truncated"] is True and len(capped.json()["values"]) == 1

    unified = {
        name: api.post("/api/unified-columns", json={"name": name, "logical_type": logical}).json()[
            "id"
        ]
        for name, logical in [("customer", "string"), ("gender", "string"), ("balance", "decimal")]
    }
    for unified_name, columns in {
        "customer": [
            (pg, "customers", "name"),
            (my, "clients", "full_name"),
            (lake, "accounts", "holder"),
        ],
        "gender": [(pg, "customers", "gender"), (my, "clients", "sex"), (lake, "accounts", "sex")],
        "balance": [
            (pg, "customers", "balance"),
            (my, "clients", "balance"),
            (lake, "accounts", "balance"),
        ],
    }.items():
        for source, table, column in columns:
            response = api.post(
                "/api/column-mappings",
                json={
                    "column_id": source[table]["columns"][column],
                    "unified_column_id": unified[unified_name],
                },
            )
            assert response.status_code == 201, response.text
    for column_id, pairs in [
        (pg["customers"]["columns"]["gender"], [(1, "M"), (2, "F")]),
        (sex_column, [("m", "M"), ("f", "F")]),
    ]:
        response = api.post(
            "/api/value-mappings",
            json={
                "column_id": column_id,
                "mappings": [{"source_value": s, "target_value": t} for s, t in pairs],
            },
        )
        assert response.status_code == 201, response.text

    request = {
        "name": "customers_everywhere",
        "selection_mode": "tables",
        "selected_tables": [
            pg["customers"]["id"],
            my["clients"]["id"],
            lake["accounts"]["id"],
        ],
        "auto_include_mapped_columns": True,
        "apply_value_mappings": True,
        "storage_type": "copy_to_minio",
    }
    preview = api.post("/api/datasets/unified/preview", json={**request, "limit": 10})
    assert preview.status_code == 200, preview.text
    previewed = {(r["customer"], r["gender"]) for r in preview.json()["rows"]}
    assert {("Linus", "M"), ("Barbara", "F"), ("Katherine", "F"), ("Ada", "M")} <= previewed

    answer = api.post("/api/datasets/unified", json=request).json()
    job = wait_for_job(api, answer["dag_run_id"])
    assert job["status"] == "success", job
    frame = _read_dataset(api, s3_server, "customers_everywhere")
    rows = {
        r["customer"]: (r["gender"], r["balance"], r["region"], r["_source_connection"])
        for r in frame.to_dicts()
    }
    assert rows["Ada"] == ("M", Decimal("10.500"), None, "pg")
    assert rows["Katherine"] == ("F", Decimal("5.125"), None, "maria")
    assert rows["Linus"] == ("M", Decimal("0.500"), "eu", "lake")
    assert rows["Barbara"] == ("F", Decimal("12.000"), "us", "lake")
    assert len(rows) == 6


def _read_dataset(api, s3_server, name):
    import io

    import polars as pl
    import pyarrow.parquet as pq

    location = api.get(f"/api/datasets/{name}").json()["location"]
    fs = s3_server.filesystem()
    folder = location.removeprefix("s3://")
    parts = sorted(p for p in fs.ls(folder) if p.endswith(".parquet"))
    return pl.concat([pl.from_arrow(pq.read_table(io.BytesIO(fs.cat(p)))) for p in parts])
