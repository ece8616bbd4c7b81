"""Output names stay distinct ignoring case: a PostgreSQL table with "Name" and "name", and a
source column named like a provenance column, preview and build with predictable names."""

from __future__ import annotations

import polars as pl
import pytest
from conftest import PG_HOST, PG_USER, pg_execute
from service_helpers import running_stack, wait_for_job

pytestmark = pytest.mark.postgres


@pytest.fixture
def api(settings):
    with running_stack(settings) as client:
        yield client


@pytest.fixture
def tables(api, pg_database):
    database = pg_database()
    pg_execute(
        database,
        """
        CREATE TABLE people (id integer PRIMARY KEY, "Name" text, name text, "NAME_2" text,
                             _source_table text);
        INSERT INTO people VALUES (1, 'Upper', 'lower', 'shout', 'mine'),
                                  (2, 'U2', 'l2', 's2', 'm2');
        CREATE TABLE others (id integer PRIMARY KEY, name text);
        INSERT INTO others VALUES (10, 'other lower');
        """,
    )
    body = {
        "name": "pg",
        "kind": "postgresql",
        "host": PG_HOST,
        "database": database,
        "username": PG_USER,
    }
    connection = api.post("/api/data-connections", json=body).json()
    job = api.post(f"/api/data-connections/{connection['id']}/sync").json()
    assert wait_for_job(api, job["dag_run_id"])["status"] == "success"
    listed = api.get(f"/api/data-connections/{connection['id']}/tables").json()
    return {t["name"]: t["id"] for t in listed}


EXPECTED = [
    "id",
    "Name",
    "name_2",
    "NAME_2_2",
    "_source_table_2",
    "_source_connection",
    "_source_table",
]


def test_preview_and_build_keep_every_column_under_a_distinct_name(api, tables):
    request = {"selection_mode": "tables", "selected_tables": [tables["people"], tables["others"]]}
    preview = api.post("/api/datasets/unified/preview", json=request)
    assert preview.status_code == 200, preview.text
    assert [c["name"] for c in preview.json()["columns"]] == EXPECTED
    first = preview.json()["rows"][0]
    assert (first["Name"], first["name_2"], first["NAME_2_2"], first["_source_table_2"]) == (
        "Upper",
        "lower",
        "shout",
        "mine",
    )
    assert first["_source_table"] == "public.people"
    # "name" of the second table lines up with the first table's "name", renamed the same way.
    other = next(r for r in preview.json()["rows"] if r["id"] == 10)
    assert other["name_2"] == "other lower" and other["Name"] is None

    answer = api.post("/api/datasets/unified", json={**request, "name": "people"})
    assert wait_for_job(api, answer.json()["dag_run_id"])["status"] == "success"
    dataset = api.get("/api/datasets/people").json()
    frame = pl.read_parquet(dataset["location"].removeprefix("file://") + "/part-00000.parquet")
    assert frame.columns == EXPECTED
    assert sorted(frame["name_2"].to_list()) == ["l2", "lower", "other lower"]
    assert len({c.casefold() for c in frame.columns}) == len(frame.columns)


def test_a_new_colliding_column_does_not_rename_the_columns_a_version_had(api, pg_database):
    database = pg_database()
    pg_execute(
        database,
        "CREATE TABLE people (id integer PRIMARY KEY, name text);"
        "INSERT INTO people VALUES (1, 'lower');",
    )
    body = {"name": "pg", "kind": "postgresql", "host": PG_HOST, "database": database}
    connection = api.post("/api/data-connections", json={**body, "username": PG_USER}).json()

    def build() -> list[str]:
        synced = api.post(f"/api/data-connections/{connection['id']}/sync").json()
        assert wait_for_job(api, synced["dag_run_id"])["status"] == "success"
        table_id = api.get(f"/api/data-connections/{connection['id']}/tables").json()[0]["id"]
        request = {"name": "people", "selection_mode": "tables", "selected_tables": [table_id]}
        answer = api.post("/api/datasets/unified", json=request)
        assert wait_for_job(api, answer.json()["dag_run_id"])["status"] == "success"
        return [c["name"] for c in api.get("/api/datasets/people").json()["columns"]]

    assert build()[:2] == ["id", "name"]
    # The table comes back with "Name" placed before "name": "name" keeps its output name.
    pg_execute(
        database,
        'DROP TABLE people; CREATE TABLE people (id integer PRIMARY KEY, "Name" text, name text);'
        "INSERT INTO people VALUES (1, 'Upper', 'lower');",
    )
    assert build()[:3] == ["id", "Name_2", "name"]
    dataset = api.get("/api/datasets/people").json()
    frame = pl.read_parquet(dataset["location"].removeprefix("file://") + "/part-00000.parquet")
    assert frame.row(0, named=True)["name"] == "lower"
