"""A dataset's dry run (POST /api/datasets/unified/plan) and the difference between two of its
versions (GET /api/datasets/{name}/diff), on PostgreSQL, MariaDB and SQLite sources."""

from __future__ import annotations

import sqlite3

import pytest
from conftest import mysql_execute, pg_execute
from fabric_core.datasets.build import allocate_version
from fabric_core.models import CircuitState, Dataset
from fabric_web.serving import free_port
from service_helpers import (
    column_ids,
    mysql_source,
    pg_source,
    register_and_sync,
    running_stack,
    sync_through_gateway,
    wait_for_job,
)
from sqlalchemy import select

pytestmark = [pytest.mark.postgres, pytest.mark.mysql]

NAME = "people"


@pytest.fixture
def sources(pg_database, mysql_database, tmp_path):
    pg_db = pg_database()
    pg_execute(
        pg_db,
        """
        CREATE SCHEMA crm;
        CREATE TABLE crm.people (
            id integer PRIMARY KEY, "Full Name" text, gender smallint, age integer,
            balance numeric(12, 2), code text, legacy text);
        INSERT INTO crm.people VALUES
            (1, 'Ada', 1, 36, 10.50, '10', 'a'),
            (2, 'Grace', 2, 45, 20.25, '20', 'b'),
            (3, 'Alan', 7, 41, NULL, '30', 'c');
        ANALYZE;
        """,
    )
    my_db = mysql_database()
    mysql_execute(
        f"""
        CREATE TABLE `{my_db}`.clients (
            client_id INT PRIMARY KEY, name VARCHAR(100), sex CHAR(1), age INT, balance INT);
        INSERT INTO `{my_db}`.clients VALUES
            (10, 'Katherine', 'F', 50, 5), (11, 'Linus', 'M', 30, 0);
        ANALYZE TABLE `{my_db}`.clients
        """
    )
    path = tmp_path / "billing.db"
    with sqlite3.connect(path) as connection:
        connection.executescript(
            """
            CREATE TABLE accounts (
                acct TEXT PRIMARY KEY, holder TEXT, gender TEXT, age TEXT, balance REAL);
            INSERT INTO accounts VALUES
                ('A-1', 'Margaret', 'female', '29', 99.5),
                ('A-2', 'Tim', 'male', 'unknown', 0.25),
                ('A-3', 'Barbara', 'female', '61', 12);
            """
        )
    connection.close()
    return pg_db, my_db, path


@pytest.fixture
def api(settings, metadata_url):
    with running_stack(settings.model_copy(update={"database_url": metadata_url})) as client:
        yield client


def _register_and_sync(api, body) -> dict:
    connection_id, tables = register_and_sync(api, body)
    shaped: dict = {"connection_id": connection_id}
    for name, table in tables.items():
        shaped[name] = {
            "id": table["id"],
            "schema": table["schema"],
            "row_estimate": table["row_estimate"],
            "columns": column_ids(table),
            "native": {c["name"]: c["native_type"] for c in table["columns"]},
        }
    return shaped


def _sync(api, connection_id: int) -> dict:
    return sync_through_gateway(api, connection_id)


@pytest.fixture
def catalog(api, sources):
    """The three sources synced; customer_name, gender, age and balance mapped (MariaDB's
    ``name`` left unmapped); gender codes of PostgreSQL and SQLite mapped."""
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
        ("age", "integer"),
        ("balance", "decimal"),
    ]:
        created = api.post("/api/unified-columns", json={"name": name, "logical_type": logical})
        unified[name] = created.json()["id"]
    for unified_name, members in {
        "customer_name": [(pg, "people", "Full Name"), (lite, "accounts", "holder")],
        "gender": [(pg, "people", "gender"), (my, "clients", "sex"), (lite, "accounts", "gender")],
        "age": [(pg, "people", "age"), (my, "clients", "age"), (lite, "accounts", "age")],
        "balance": [
            (pg, "people", "balance"),
            (my, "clients", "balance"),
            (lite, "accounts", "balance"),
        ],
    }.items():
        for source, table, column in members:
            _map(api, source[table]["columns"][column], unified[unified_name])
    for source, table, column, values in [
        (pg, "people", "gender", [("1", "M"), ("2", "F")]),
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
    return {"pg": pg, "my": my, "lite": lite, "unified": unified, "pg_db": pg_db, "path": path}


def _map(api, column_id: int, unified_column_id: int) -> dict:
    response = api.post(
        "/api/column-mappings",
        json={"column_id": column_id, "unified_column_id": unified_column_id},
    )
    assert response.status_code == 201, response.text
    return response.json()


def _request(catalog, **overrides) -> dict:
    return {
        "name": NAME,
        "selection_mode": "tables",
        "selected_tables": [
            catalog["pg"]["people"]["id"],
            catalog["my"]["clients"]["id"],
            catalog["lite"]["accounts"]["id"],
        ],
        "auto_include_mapped_columns": True,
        "apply_value_mappings": True,
        "storage_type": "copy_to_minio",
        **overrides,
    }


def _member(catalog, source: str, table: str, column: str, cast=None, value_map=None) -> dict:
    tables = catalog[source]
    return {
        "column_id": tables[table]["columns"][column],
        "connection": {"pg": "pg_crm", "my": "maria_shop", "lite": "billing"}[source],
        "schema": tables[table]["schema"],
        "table": table,
        "column": column,
        "native_type": tables[table]["native"][column],
        "cast": cast,
        "value_map": value_map,
    }


def _cast(from_: str, to: str, can_fail: bool) -> dict:
    return {"from": from_, "to": to, "can_fail": can_fail, "supported": True}


def _expected_plan(catalog) -> dict:
    pg, my, lite, unified = catalog["pg"], catalog["my"], catalog["lite"], catalog["unified"]
    my_schema = my["clients"]["schema"]

    def column(name, type_, members, unified_column_id=None):
        return {
            "name": name,
            "type": type_,
            "unified_column_id": unified_column_id,
            "sources": members,
        }

    return {
        "name": NAME,
        "storage_type": "copy_to_minio",
        "columns": [
            column("id", "integer", [_member(catalog, "pg", "people", "id")]),
            column(
                "customer_name",
                "string",
                [
                    _member(catalog, "pg", "people", "Full Name"),
                    _member(catalog, "lite", "accounts", "holder"),
                ],
                unified["customer_name"],
            ),
            column(
                "gender",
                "string",
                [
                    _member(catalog, "pg", "people", "gender", value_map={"entries": 2}),
                    _member(catalog, "my", "clients", "sex"),
                    _member(catalog, "lite", "accounts", "gender", value_map={"entries": 2}),
                ],
                unified["gender"],
            ),
            column(
                "age",
                "integer",
                [
                    _member(catalog, "pg", "people", "age"),
                    _member(catalog, "my", "clients", "age"),
                    _member(
                        catalog, "lite", "accounts", "age", cast=_cast("string", "integer", True)
                    ),
                ],
                unified["age"],
            ),
            column(
                "balance",
                "decimal(38,2)",
                [
                    _member(catalog, "pg", "people", "balance"),
                    _member(
                        catalog,
                        "my",
                        "clients",
                        "balance",
                        cast=_cast("integer", "decimal(38,2)", False),
                    ),
                    _member(
                        catalog,
                        "lite",
                        "accounts",
                        "balance",
                        cast=_cast("float", "decimal(38,2)", True),
                    ),
                ],
                unified["balance"],
            ),
            column("code", "string", [_member(catalog, "pg", "people", "code")]),
            column("legacy", "string", [_member(catalog, "pg", "people", "legacy")]),
            column("client_id", "integer", [_member(catalog, "my", "clients", "client_id")]),
            column("name", "string", [_member(catalog, "my", "clients", "name")]),
            column("acct", "string", [_member(catalog, "lite", "accounts", "acct")]),
            column("_source_connection", "string", []),
            column("_source_table", "string", []),
        ],
        "sources": [
            {
                "table_id": pg["people"]["id"],
                "connection": "pg_crm",
                "schema": "crm",
                "table": "people",
                "row_estimate": 3,
            },
            {
                "table_id": my["clients"]["id"],
                "connection": "maria_shop",
                "schema": my_schema,
                "table": "clients",
                "row_estimate": my["clients"]["row_estimate"],
            },
            {
                "table_id": lite["accounts"]["id"],
                "connection": "billing",
                "schema": "main",
                "table": "accounts",
                "row_estimate": 3,
            },
        ],
        "casts_that_can_fail": [
            {
                "column": "age",
                "column_id": lite["accounts"]["columns"]["age"],
                "source": "billing.main.accounts.age",
                "from": "string",
                "to": "integer",
                "supported": True,
            },
            {
                "column": "balance",
                "column_id": lite["accounts"]["columns"]["balance"],
                "source": "billing.main.accounts.balance",
                "from": "float",
                "to": "decimal(38,2)",
                "supported": True,
            },
        ],
        "value_maps": [
            {
                "column": "gender",
                "column_id": pg["people"]["columns"]["gender"],
                "source": "pg_crm.crm.people.gender",
                "entries": 2,
            },
            {
                "column": "gender",
                "column_id": lite["accounts"]["columns"]["gender"],
                "source": "billing.main.accounts.gender",
                "entries": 2,
            },
        ],
        "drift": [],
        "estimated_rows": 3 + my["clients"]["row_estimate"] + 3,
        "estimated_processing_time": "about 1 s for about 8 rows",
        "existing_dataset": None,
    }


def _job_ids(api) -> list[str]:
    return [job["id"] for job in api.get("/api/jobs").json()]


def test_plan_describes_the_build_without_a_job(api, catalog):
    assert catalog["my"]["clients"]["row_estimate"] == 2  # ANALYZE TABLE: exact on 2 rows
    jobs_before = _job_ids(api)
    response = api.post("/api/datasets/unified/plan", json=_request(catalog, retry={"attempts": 3}))
    assert response.status_code == 200, response.text
    plan = response.json()
    size = plan.pop("estimated_output_bytes")
    assert plan == _expected_plan(catalog)
    assert size > 0
    assert _job_ids(api) == jobs_before
    assert api.get("/api/datasets").json() == []

    # A viewer may plan (it reads what a viewer reads already), not build.
    token = api.post("/api/tokens", json={"name": "reader", "role": "viewer"}).json()["token"]
    viewer = {"Authorization": f"Bearer {token}"}
    assert (
        api.post("/api/datasets/unified/plan", json=_request(catalog), headers=viewer).json()[
            "columns"
        ]
        == plan["columns"]
    )
    assert api.post(
        "/api/datasets/unified", json=_request(catalog), headers=viewer
    ).status_code == (403)

    virtual = api.post("/api/datasets/unified/plan", json=_request(catalog, storage_type="virtual"))
    assert virtual.json()["estimated_output_bytes"] is None

    # Without value mappings the codes keep their types: the gender casts become visible.
    raw = api.post(
        "/api/datasets/unified/plan", json=_request(catalog, apply_value_mappings=False)
    ).json()
    assert raw["value_maps"] == []
    gender = next(c for c in raw["columns"] if c["name"] == "gender")
    assert [m["cast"] for m in gender["sources"]] == [_cast("integer", "string", False), None, None]


def test_output_size_estimate_grows_with_rows(api, catalog):
    pg_db = catalog["pg_db"]
    request = _request(catalog, selected_tables=[catalog["pg"]["people"]["id"]])
    before = api.post("/api/datasets/unified/plan", json=request).json()
    pg_execute(
        pg_db,
        "INSERT INTO crm.people SELECT g, 'x', 1, 1, 1, '1', 'x' "
        "FROM generate_series(100, 1099) g; ANALYZE crm.people",
    )
    _sync(api, catalog["pg"]["connection_id"])
    after = api.post("/api/datasets/unified/plan", json=request).json()
    assert (before["estimated_rows"], after["estimated_rows"]) == (3, 1003)
    assert before["estimated_output_bytes"] < after["estimated_output_bytes"]
    # Per row: id 8 + name 16 + gender 16 (mapped: text) + age 8 + balance 16 + code 16
    # + legacy 16 (text without a declared length); provenance and nulls count zero.
    assert after["estimated_output_bytes"] == 1003 * (8 + 16 + 16 + 8 + 16 + 16 + 16)


def _circuits(runtime) -> list[tuple]:
    with runtime.session_factory() as session:
        return [
            (c.key, c.failures, c.state, c.last_error)
            for c in session.scalars(select(CircuitState).order_by(CircuitState.key))
        ]


def test_plan_reaches_no_source(api, catalog):
    """PostgreSQL now answers on no port and the SQLite file is gone: the plan answers as
    before, and no source's circuit hears of it; the preview, which reads rows, fails and its
    circuit counts the failure."""
    runtime = api.app.state.runtime
    request = _request(catalog)
    before = api.post("/api/datasets/unified/plan", json=request).json()
    moved = api.patch(
        f"/api/data-connections/{catalog['pg']['connection_id']}",
        json={"port": free_port(), "password": "unused"},
    )
    assert moved.status_code == 200, moved.text
    catalog["path"].unlink()
    circuits_before = _circuits(runtime)
    jobs_before = _job_ids(api)

    after = api.post("/api/datasets/unified/plan", json=request)
    assert after.status_code == 200, after.text
    assert after.json() == before
    assert _circuits(runtime) == circuits_before
    assert _job_ids(api) == jobs_before

    assert api.post("/api/datasets/unified/preview", json=request).status_code >= 400
    assert _circuits(runtime) != circuits_before  # what a source call would have left


BAD_BODIES = [
    ({"name": "../etc"}, "name"),
    ({"selected_tables": []}, "selected_tables"),
    ({"selected_tables": [999999]}, "999999"),
    ({"selection_mode": "rows"}, "selection_mode"),
    ({"storage_type": "tape"}, "storage_type"),
    ({"selection_mode": "columns", "selected_columns": [999999]}, "999999"),
    ({"retry": {"attempts": 11}}, "attempts"),
    ({"unknown_field": 1}, "unknown_field"),
]


def test_bad_plan_requests_answer_as_the_build(api, catalog):
    jobs_before = _job_ids(api)
    for change, reason in BAD_BODIES:
        body = _request(catalog, **change)
        plan = api.post("/api/datasets/unified/plan", json=body)
        build = api.post("/api/datasets/unified", json=body)
        assert plan.status_code == build.status_code == 422, (change, plan.text)
        assert reason in plan.text and plan.json() == build.json(), (change, plan.text)
    assert _job_ids(api) == jobs_before
    # A removed table: the catalog still lists it, marked removed; both refuse it alike.
    pg_execute(catalog["pg_db"], "DROP TABLE crm.people")
    _sync(api, catalog["pg"]["connection_id"])
    plan = api.post("/api/datasets/unified/plan", json=_request(catalog))
    build = api.post("/api/datasets/unified", json=_request(catalog))
    assert plan.status_code == build.status_code == 422
    assert "removed" in plan.text and plan.json() == build.json()


def _build(api, body) -> dict:
    answer = api.post("/api/datasets/unified", json=body)
    assert answer.status_code == 202, answer.text
    job = wait_for_job(api, answer.json()["dag_run_id"])
    assert job["status"] == "success", job
    return job


def _value_mapping_id(api, column_id: int, source_value: str) -> int:
    mappings = api.get("/api/value-mappings", params={"column_id": column_id}).json()
    return next(m["id"] for m in mappings if m["source_value"] == source_value)


def _change_everything(api, catalog) -> None:
    """Between the two versions: PostgreSQL drops a column, adds one, retypes one and gains a
    row; MariaDB's name is mapped; one value map gains a code, another loses one and changes
    one."""
    pg, my, lite = catalog["pg"], catalog["my"], catalog["lite"]
    pg_execute(
        catalog["pg_db"],
        """
        ALTER TABLE crm.people DROP COLUMN legacy;
        ALTER TABLE crm.people ADD COLUMN email text;
        ALTER TABLE crm.people ALTER COLUMN code TYPE integer USING code::integer;
        INSERT INTO crm.people VALUES (4, 'Hedy', 2, 30, 1.00, 40, 'hedy@example.org');
        ANALYZE;
        """,
    )
    _sync(api, pg["connection_id"])
    _map(api, my["clients"]["columns"]["name"], catalog["unified"]["customer_name"])
    pg_gender = pg["people"]["columns"]["gender"]
    added = api.post(
        "/api/value-mappings",
        json={"column_id": pg_gender, "source_value": "7", "target_value": "X"},
    )
    assert added.status_code == 201, added.text
    lite_gender = lite["accounts"]["columns"]["gender"]
    for source_value in ("female", "male"):
        removed = api.delete(
            f"/api/value-mappings/{_value_mapping_id(api, lite_gender, source_value)}"
        )
        assert removed.status_code == 204, removed.text
    changed = api.post(
        "/api/value-mappings",
        json={"column_id": lite_gender, "source_value": "male", "target_value": "H"},
    )
    assert changed.status_code == 201, changed.text


def test_diff_of_two_versions_is_exact(api, catalog):
    my = catalog["my"]
    my_label = f"maria_shop.{my['clients']['schema']}.clients"
    planned = api.post("/api/datasets/unified/plan", json=_request(catalog)).json()
    job = _build(api, _request(catalog))
    # The build makes what the plan said: its columns, and failed casts only where it warned.
    built = api.get(f"/api/datasets/{NAME}").json()
    assert built["columns"] == [{"name": c["name"], "type": c["type"]} for c in planned["columns"]]
    assert job["stats"]["cast_failures"] == {"age": 1}  # 'unknown'
    assert "age" in {c["column"] for c in planned["casts_that_can_fail"]}

    only_one = api.get(f"/api/datasets/{NAME}/diff")
    assert only_one.status_code == 404 and "no complete version before 1" in only_one.text
    same = api.get(f"/api/datasets/{NAME}/diff", params={"from": 1, "to": 1})
    assert same.status_code == 200, same.text
    assert same.json()["schema"] == {"added": [], "removed": [], "retyped": []}
    assert same.json()["definition"] == {"changed": {}}
    assert same.json()["rows"] == {"from": 8, "to": 8}

    _change_everything(api, catalog)
    v2_request = _request(catalog, auto_include_mapped_columns=False)
    planned = api.post("/api/datasets/unified/plan", json=v2_request).json()
    expected_schema = {
        "added": ["email"],
        "removed": ["legacy", "name"],
        "retyped": [{"name": "code", "from": "string", "to": "integer"}],
    }
    assert planned["existing_dataset"] == {
        "status": "ready",
        "storage_type": "copy_to_minio",
        "current_version": 1,
        "row_count": 8,
        "schema_changes": expected_schema,
    }
    _build(api, v2_request)

    response = api.get(f"/api/datasets/{NAME}/diff")
    assert response.status_code == 200, response.text
    assert response.json() == {
        "name": NAME,
        "from": 1,
        "to": 2,
        "schema": expected_schema,
        "rows": {"from": 8, "to": 9},
        "rows_per_source": {
            "from": {"pg_crm.crm.people": 3, my_label: 2, "billing.main.accounts": 3},
            "to": {"pg_crm.crm.people": 4, my_label: 2, "billing.main.accounts": 3},
        },
        "sources": {"added": [], "removed": []},
        "definition": {"changed": {"auto_include_mapped_columns": {"from": True, "to": False}}},
        "mappings": {
            "column_mappings": {
                "added": [
                    {
                        "source": f"{my_label}.name",
                        "column_id": my["clients"]["columns"]["name"],
                        "unified_column": "customer_name",
                        "unified_column_id": catalog["unified"]["customer_name"],
                        "logical_type": "string",
                    }
                ],
                "removed": [],
                "changed": [],
            },
            "value_mappings": {
                "added": {},
                "removed": {},
                "changed": [
                    {
                        "source": "pg_crm.crm.people.gender",
                        "added": {"7": "X"},
                        "removed": {},
                        "changed": {},
                    },
                    {
                        "source": "billing.main.accounts.gender",
                        "added": {},
                        "removed": {"female": "F"},
                        "changed": {"male": {"from": "M", "to": "H"}},
                    },
                ],
            },
        },
    }

    backwards = api.get(f"/api/datasets/{NAME}/diff", params={"from": 2, "to": 1}).json()
    assert backwards["schema"] == {
        "added": ["legacy", "name"],
        "removed": ["email"],
        "retyped": [{"name": "code", "from": "integer", "to": "string"}],
    }
    assert backwards["mappings"]["column_mappings"]["removed"][0]["source"] == f"{my_label}.name"
    assert api.get(f"/api/datasets/{NAME}/diff", params={"to": 2}).json() == response.json()


def test_diff_refuses_unknown_and_incomplete_versions(api, catalog):
    assert api.get("/api/datasets/nope/diff").status_code == 404
    _build(api, _request(catalog))
    _build(api, _request(catalog))
    for params in ({"to": 9}, {"from": 9, "to": 1}, {"from": 9}):
        response = api.get(f"/api/datasets/{NAME}/diff", params=params)
        assert response.status_code == 404 and "no version 9" in response.text
    for params in ({"from": 0}, {"to": -1}, {"from": "one"}):
        assert api.get(f"/api/datasets/{NAME}/diff", params=params).status_code == 422

    runtime = api.app.state.runtime
    with runtime.session_factory() as session:
        dataset_id = session.scalar(select(Dataset.id).where(Dataset.name == NAME))
    building = allocate_version(runtime.session_factory, dataset_id, "a-job", "copy_to_minio")
    assert building == 3
    response = api.get(f"/api/datasets/{NAME}/diff", params={"from": 2, "to": 3})
    assert response.status_code == 409 and "building" in response.text
    # The defaults skip it: the current version is still 2.
    assert api.get(f"/api/datasets/{NAME}/diff").json()["to"] == 2
