"""Drift that knows its impact, through the gateway, on PostgreSQL, MariaDB and SQLite sources:
what a source's change breaks or degrades, which datasets it hits, and when it is over."""

from __future__ import annotations

import sqlite3

import pytest
from conftest import mysql_execute, pg_execute
from service_helpers import (
    column_ids,
    mysql_source,
    pg_source,
    register_and_sync,
    running_stack,
    sync_through_gateway,
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
            id integer PRIMARY KEY, email text, gender smallint, score integer);
        INSERT INTO crm.customers VALUES (1, 'ada@x.org', 1, 10), (2, 'grace@x.org', 2, 20);
        """,
    )
    my_db = mysql_database()
    mysql_execute(
        f"""
        CREATE TABLE `{my_db}`.clients (
            client_id INT PRIMARY KEY, mail VARCHAR(100), sex CHAR(1) NOT NULL, points INT);
        INSERT INTO `{my_db}`.clients VALUES (10, 'kat@y.org', 'F', 5), (11, 'lin@y.org', 'M', 7)
        """
    )
    path = tmp_path / "billing.db"
    with sqlite3.connect(path) as connection:
        connection.executescript(
            """
            CREATE TABLE accounts (acct TEXT PRIMARY KEY, holder TEXT, gender TEXT);
            INSERT INTO accounts VALUES ('A-1', 'Margaret', 'female'), ('A-2', 'Tim', 'male');
            """
        )
    connection.close()
    return pg_db, my_db, path


@pytest.fixture
def s3_settings(settings, s3_server, metadata_url, request):
    """Datasets on S3, the catalog in each metadata DB (SQLite and PostgreSQL)."""
    settings = settings.model_copy(update={"database_url": metadata_url})
    prefix = request.node.name.replace("[", "_").replace("]", "")
    return settings.model_copy(update=s3_server.settings_update(prefix))


@pytest.fixture
def api(s3_settings):
    with running_stack(s3_settings) as client:
        yield client


def _sync(api, connection_id: int) -> dict:
    return sync_through_gateway(api, connection_id)


def _register(api, body) -> tuple[int, dict[str, dict]]:
    connection_id, tables = register_and_sync(api, body)
    return connection_id, {
        name: {"id": table["id"], "columns": column_ids(table)} for name, table in tables.items()
    }


@pytest.fixture
def catalog(api, sources):
    """The three sources synced, mapped (email, gender with value mappings, score) and built
    into the dataset ``people``; returns {source: (connection id, tables)}."""
    pg_db, my_db, path = sources
    pg = _register(
        api,
        pg_source("pg_crm", pg_db, "crm"),
    )
    my = _register(
        api,
        mysql_source("maria_shop", my_db),
    )
    lite = _register(api, {"name": "billing", "kind": "sqlite", "database": str(path)})
    unified = {
        name: api.post("/api/unified-columns", json={"name": name, "logical_type": logical}).json()[
            "id"
        ]
        for name, logical in [("email", "string"), ("gender", "string"), ("score", "integer")]
    }
    for source, table, column, name in [
        (pg, "customers", "email", "email"),
        (pg, "customers", "gender", "gender"),
        (pg, "customers", "score", "score"),
        (my, "clients", "mail", "email"),
        (my, "clients", "sex", "gender"),
        (my, "clients", "points", "score"),
        (lite, "accounts", "gender", "gender"),
    ]:
        mapped = api.post(
            "/api/column-mappings",
            json={
                "column_id": source[1][table]["columns"][column],
                "unified_column_id": unified[name],
            },
        )
        assert mapped.status_code == 201, mapped.text
    for source, table, column, pairs in [
        (pg, "customers", "gender", {"1": "F", "2": "M"}),
        (my, "clients", "sex", {"F": "F", "M": "M"}),
        (lite, "accounts", "gender", {"female": "F", "male": "M"}),
    ]:
        added = api.post(
            "/api/value-mappings",
            json={
                "column_id": source[1][table]["columns"][column],
                "mappings": [{"source_value": k, "target_value": v} for k, v in pairs.items()],
            },
        )
        assert added.status_code == 201, added.text
    body = _people(pg, my, lite)
    built = api.post("/api/datasets/unified", json=body)
    assert built.status_code == 202, built.text
    assert wait_for_job(api, built.json()["dag_run_id"])["status"] == "success"
    return {"pg": pg, "my": my, "lite": lite}


def _people(pg, my, lite, name: str = "people") -> dict:
    return {
        "name": name,
        "selection_mode": "tables",
        "selected_tables": [
            pg[1]["customers"]["id"],
            my[1]["clients"]["id"],
            lite[1]["accounts"]["id"],
        ],
        "storage_type": "virtual",
    }


def _token(api, role: str) -> dict[str, str]:
    """Headers of a new token of ``role``."""
    answer = api.post("/api/tokens", json={"name": f"{role}-token", "role": role})
    assert answer.status_code == 201, answer.text
    return {"Authorization": f"Bearer {answer.json()['token']}"}


def _drift(api, **params) -> list[dict]:
    answer = api.get("/api/drift", params=params)
    assert answer.status_code == 200, answer.text
    assert answer.headers["x-total-count"] == str(len(answer.json()))
    return answer.json()


def test_nothing_drifts_on_a_fresh_catalog(api, catalog):
    assert _drift(api) == []
    dataset = api.get("/api/datasets/people").json()
    assert (dataset["needs_attention"], dataset["attention_reasons"]) == (False, [])


def test_a_dropped_mapped_column_breaks_the_dataset_until_it_is_back(api, catalog, sources):
    pg_db = sources[0]
    pg_id, pg_tables = catalog["pg"]
    pg_execute(pg_db, "ALTER TABLE crm.customers DROP COLUMN email")
    _sync(api, pg_id)

    [item] = _drift(api, connection_id=pg_id)
    email_id = pg_tables["customers"]["columns"]["email"]
    assert {k: item[k] for k in ("severity", "kind", "column", "column_id", "table_id")} == {
        "severity": "breaking",
        "kind": "column_removed",
        "column": "crm.customers.email",
        "column_id": email_id,
        "table_id": pg_tables["customers"]["id"],
    }
    assert item["connection_id"] == pg_id and item["resolved_at"] is None
    assert item["datasets"] == ["people"]
    assert "email" in item["message"]
    assert _drift(api, dataset="people") == [item]
    assert _drift(api, severity="breaking") == [item]
    assert _drift(api, severity="info") == []

    dataset = api.get("/api/datasets/people").json()
    assert dataset["needs_attention"] is True
    assert dataset["attention_reasons"] == [item["message"]]
    listed = {d["name"]: d for d in api.get("/api/datasets").json()}
    assert listed["people"]["needs_attention"] is True

    body = _people(catalog["pg"], catalog["my"], catalog["lite"])
    # The dry run warns of what the build would refuse; one not reading the table does not.
    planned = api.post("/api/datasets/unified/plan", json=body)
    assert planned.status_code == 200, planned.text
    assert planned.json()["drift"] == [
        {
            "severity": "breaking",
            "kind": "column_removed",
            "column_id": email_id,
            "column": "crm.customers.email",
            "message": item["message"],
            "datasets": ["people"],
        }
    ]
    billing_plan = {**body, "name": "billing_plan", "selected_tables": body["selected_tables"][2:]}
    assert api.post("/api/datasets/unified/plan", json=billing_plan).json()["drift"] == []
    refused = api.post("/api/datasets/unified", json=body)
    assert refused.status_code == 409, refused.text
    assert refused.json()["attention_reasons"] == [item["message"]]
    # A new dataset reading the broken table is refused too; one that does not read it is not.
    fresh = api.post("/api/datasets/unified", json={**body, "name": "people_too"})
    assert fresh.status_code == 409
    unaffected = {**body, "name": "billing_only", "selected_tables": body["selected_tables"][2:]}
    queued = api.post("/api/datasets/unified", json=unaffected)
    assert queued.status_code == 202, queued.text
    assert wait_for_job(api, queued.json()["dag_run_id"])["status"] == "success"

    allowed = api.post("/api/datasets/unified", json={**body, "allow_drift": True})
    assert allowed.status_code == 202, allowed.text
    assert wait_for_job(api, allowed.json()["dag_run_id"])["status"] == "success"
    dataset = api.get("/api/datasets/people").json()
    assert dataset["current_version"] == 2
    assert "allow_drift" not in dataset["definition"]

    pg_execute(pg_db, "ALTER TABLE crm.customers ADD COLUMN email text")
    _sync(api, pg_id)
    assert _drift(api) == []
    [resolved] = _drift(api, include_resolved=True)
    assert resolved["id"] == item["id"] and resolved["resolved_at"] is not None
    assert api.get("/api/datasets/people").json()["needs_attention"] is False
    rebuilt = api.post("/api/datasets/unified", json=body)
    assert rebuilt.status_code == 202, rebuilt.text


def test_a_retype_that_does_not_cast_breaks_and_a_nullable_change_degrades(api, catalog, sources):
    my_db = sources[1]
    my_id, my_tables = catalog["my"]
    mysql_execute(
        f"ALTER TABLE `{my_db}`.clients MODIFY points VARCHAR(20), MODIFY sex CHAR(1) NULL"
    )
    _sync(api, my_id)
    items = {item["kind"]: item for item in _drift(api, connection_id=my_id)}
    assert set(items) == {"column_retyped", "nullable_changed"}
    retyped = items["column_retyped"]
    assert (retyped["severity"], retyped["column"]) == ("breaking", f"{my_db}.clients.points")
    assert retyped["column_id"] == my_tables["clients"]["columns"]["points"]
    assert {k: retyped["details"][k] for k in ("old_type", "new_type", "unified_type")} == {
        "old_type": "integer",
        "new_type": "string",
        "unified_type": "integer",
    }
    nullable = items["nullable_changed"]
    assert (nullable["severity"], nullable["column"]) == ("degrading", f"{my_db}.clients.sex")
    assert (nullable["details"]["old_nullable"], nullable["details"]["new_nullable"]) == (
        False,
        True,
    )
    assert retyped["datasets"] == nullable["datasets"] == ["people"]
    dataset = api.get("/api/datasets/people").json()
    # Only breaking items need attention: the nullable change degrades, it does not stop builds.
    assert dataset["attention_reasons"] == [retyped["message"]]

    # A wider integer casts again: the retype is over; the nullable change stays.
    mysql_execute(f"ALTER TABLE `{my_db}`.clients MODIFY points BIGINT")
    _sync(api, my_id)
    assert [item["kind"] for item in _drift(api)] == ["nullable_changed"]
    assert api.get("/api/datasets/people").json()["needs_attention"] is False
    # Deleting the mapping that made the column matter ends its nullable item too.
    sex_mapping = next(
        m
        for m in api.get("/api/column-mappings", params={"connection_id": my_id}).json()
        if m["source"]["column"] == "sex"
    )
    assert api.delete(f"/api/column-mappings/{sex_mapping['id']}").status_code == 204
    assert _drift(api) == []


def test_a_new_unmapped_code_degrades_until_it_is_mapped(api, catalog, sources):
    path = sources[2]
    lite_id, lite_tables = catalog["lite"]
    with sqlite3.connect(path) as connection:
        connection.execute("INSERT INTO accounts VALUES ('A-3', 'Sam', 'diverse')")
    connection.close()
    job = _sync(api, lite_id)
    assert job["stats"]["value_drift"]["columns_sampled"] == 1

    [item] = _drift(api, connection_id=lite_id)
    gender_id = lite_tables["accounts"]["columns"]["gender"]
    assert (item["severity"], item["kind"], item["column_id"]) == (
        "degrading",
        "unmapped_codes",
        gender_id,
    )
    assert item["column"] == "main.accounts.gender"
    assert item["details"]["codes"] == ["diverse"]
    assert item["datasets"] == ["people"]
    # Source values are for editors: a viewer sees the item, its count, not the codes.
    assert "diverse" not in item["message"]
    viewer = _token(api, "viewer")
    [seen] = api.get("/api/drift", params={"connection_id": lite_id}, headers=viewer).json()
    assert "codes" not in seen["details"] and seen["details"]["unmapped"] == 1
    assert "diverse" not in str(seen)
    editor = _token(api, "editor")
    [edited] = api.get("/api/drift", params={"connection_id": lite_id}, headers=editor).json()
    assert edited["details"]["codes"] == ["diverse"]
    body = _people(catalog["pg"], catalog["my"], catalog["lite"])
    plan = api.post("/api/datasets/unified/plan", json=body, headers=viewer)
    assert plan.status_code == 200, plan.text
    assert "diverse" not in plan.text
    assert api.get("/api/datasets/people").json()["needs_attention"] is False
    _sync(api, lite_id)  # still unmapped: the same item, not a second one
    assert [i["id"] for i in _drift(api, include_resolved=True)] == [item["id"]]

    # Mapping the code resolves the item at once, without waiting for a sync.
    added = api.post(
        "/api/value-mappings",
        json={"column_id": gender_id, "source_value": "diverse", "target_value": "D"},
    )
    assert added.status_code == 201, added.text
    assert _drift(api) == []
    assert _drift(api, include_resolved=True)[0]["resolved_at"] is not None


def test_a_new_column_named_like_a_unified_column_is_info(api, catalog, sources):
    pg_db = sources[0]
    lite_id, lite_tables = catalog["lite"]
    path = sources[2]
    with sqlite3.connect(path) as connection:
        connection.execute('ALTER TABLE accounts ADD COLUMN "E-Mail" TEXT')
        connection.execute("ALTER TABLE accounts ADD COLUMN note TEXT")
    connection.close()
    _sync(api, lite_id)
    [item] = _drift(api)
    assert (item["severity"], item["kind"], item["column"]) == (
        "info",
        "new_column",
        "main.accounts.E-Mail",
    )
    assert item["details"]["unified_column"] == "email"
    assert item["datasets"] == ["people"]
    assert api.get("/api/datasets/people").json()["needs_attention"] is False

    # A column named like one already mapped (score <- points) counts too.
    pg_id = catalog["pg"][0]
    pg_execute(pg_db, "ALTER TABLE crm.customers ADD COLUMN points integer")
    _sync(api, pg_id)
    [points] = _drift(api, connection_id=pg_id)
    assert (points["kind"], points["details"]["unified_column"]) == ("new_column", "score")

    # Mapping the column resolves its item.
    email_unified = next(
        u["id"] for u in api.get("/api/unified-columns").json() if u["name"] == "email"
    )
    mail_column = api.get(f"/api/tables/{lite_tables['accounts']['id']}").json()["columns"]
    mail_id = next(c["id"] for c in mail_column if c["name"] == "E-Mail")
    mapped = api.post(
        "/api/column-mappings", json={"column_id": mail_id, "unified_column_id": email_unified}
    )
    assert mapped.status_code == 201, mapped.text
    assert [i["kind"] for i in _drift(api)] == ["new_column"]  # the PG one stays
    assert _drift(api, connection_id=lite_id) == []

    # Suggestions' evidence, not only equal names: "correo" is Spanish for e-mail.
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE leads (id INTEGER PRIMARY KEY, correo TEXT)")
    connection.close()
    _sync(api, lite_id)
    [lead] = _drift(api, connection_id=lite_id)
    assert (lead["kind"], lead["column"], lead["details"]["unified_column"]) == (
        "new_column",
        "main.leads.correo",
        "email",
    )
    # Dismissed for that unified column, it is no longer a column suggestions would map.
    dismissed = api.post(
        f"/api/unified-columns/{email_unified}/suggestions/dismissed",
        json={"column_id": lead["column_id"]},
    )
    assert dismissed.status_code == 201, dismissed.text
    assert _drift(api, connection_id=lite_id) == []  # at once, not at the next sync
    _sync(api, lite_id)
    assert _drift(api, connection_id=lite_id) == []


@pytest.mark.parametrize(
    ("params", "status"),
    [
        ({"connection_id": 999999}, 404),
        ({"dataset": "no_such_dataset"}, 404),
        ({"severity": "fatal"}, 422),
        ({"connection_id": "abc"}, 422),
        ({"connection_id": 0}, 422),
        ({"limit": 0}, 422),
        ({"include_resolved": "maybe"}, 422),
    ],
)
def test_bad_drift_queries_are_4xx(api, params, status):
    answer = api.get("/api/drift", params=params)
    assert answer.status_code == status, answer.text
    assert answer.json()["detail"]
