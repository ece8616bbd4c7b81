"""Suggested code mappings (GET /api/unified-columns/{id}/value-suggestions) through the
gateway, on real PostgreSQL, MariaDB and SQLite sources."""

from __future__ import annotations

import sqlite3

import pycountry
import pytest
from conftest import mysql_execute, pg_execute
from fabric_web.serving import free_port
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
def api(settings, metadata_url):
    """The gateway over each metadata DB (SQLite and PostgreSQL)."""
    settings = settings.model_copy(update={"database_url": metadata_url})
    with running_stack(settings, with_dataset=False) as client:
        yield client


@pytest.fixture
def sources(pg_database, mysql_database, tmp_path):
    """Countries in four spellings and booleans in three, across the three kinds of source."""
    pg_db = pg_database()
    pg_execute(
        pg_db,
        "CREATE TABLE clients (id int PRIMARY KEY, country_code text, active text);"
        "INSERT INTO clients VALUES (1, 'BRA', 'S'), (2, 'DEU', 'N'), (3, 'USA', 'S'),"
        " (4, 'XYZ', NULL), (5, 'BRA', 'N');",
    )
    my_db = mysql_database()
    mysql_execute(
        f"CREATE TABLE `{my_db}`.customers (id INT PRIMARY KEY, pais VARCHAR(64), ativo INT);"
        f"INSERT INTO `{my_db}`.customers VALUES (1, 'Brasil', 1), (2, 'alemanha ', 0),"
        " (3, 'Estados Unidos', 1), (4, 'Japão', 0)"
    )
    path = tmp_path / "shop.db"
    with sqlite3.connect(path) as connection:
        connection.executescript(
            "CREATE TABLE people (id INTEGER PRIMARY KEY, country TEXT, subscribed TEXT);"
            "INSERT INTO people VALUES (1, 'Brazil', 'Yes'), (2, 'Germany', 'No'),"
            " (3, 'United States', 'Yes'), (4, 'Germny', 'No'), (5, 'DE', 'No'), (6, ' br', 'Yes');"
            "CREATE TABLE orders (id INTEGER PRIMARY KEY, country_num INTEGER);"
            "INSERT INTO orders VALUES (1, 76), (2, 276), (3, 840);"
        )
    connection.close()
    return pg_db, my_db, path


def _register_and_sync(api, body) -> dict[str, dict[str, int]]:
    """{table: {column: column id}} of a registered and synced source."""
    _, tables = register_and_sync(api, body)
    return {name: column_ids(table) for name, table in tables.items()}


@pytest.fixture
def columns(api, sources) -> dict[str, int]:
    pg_db, my_db, path = sources
    pg = _register_and_sync(
        api,
        pg_source("pg", pg_db),
    )
    my = _register_and_sync(
        api,
        mysql_source("maria", my_db),
    )
    lite = _register_and_sync(api, {"name": "lite", "kind": "sqlite", "database": str(path)})
    return {
        "pg.country_code": pg["clients"]["country_code"],
        "pg.active": pg["clients"]["active"],
        "my.pais": my["customers"]["pais"],
        "my.ativo": my["customers"]["ativo"],
        "lite.country": lite["people"]["country"],
        "lite.subscribed": lite["people"]["subscribed"],
        "lite.country_num": lite["orders"]["country_num"],
    }


def _unified(api, name: str, mapped: list[int], **fields) -> int:
    created = api.post(
        "/api/unified-columns", json={"name": name, "logical_type": "string", **fields}
    )
    assert created.status_code == 201, created.text
    for column_id in mapped:
        answer = api.post(
            "/api/column-mappings",
            json={"column_id": column_id, "unified_column_id": created.json()["id"]},
        )
        assert answer.status_code == 201, answer.text
    return created.json()["id"]


def _suggest(api, unified_id: int, **params) -> dict:
    answer = api.get(f"/api/unified-columns/{unified_id}/value-suggestions", params=params)
    assert answer.status_code == 200, answer.text
    return answer.json()


def _pairs(answer: dict) -> set[tuple[int, str, str]]:
    return {(s["column_id"], s["source_value"], s["target_value"]) for s in answer["suggestions"]}


def _refs(items: list[dict]) -> set[tuple[int, str]]:
    return {(i["column_id"], i["source_value"]) for i in items}


def test_countries_in_four_spellings_map_onto_alpha_2(api, columns):
    code, pais, name, num = (
        columns["pg.country_code"],
        columns["my.pais"],
        columns["lite.country"],
        columns["lite.country_num"],
    )
    unified_id = _unified(api, "country", [code, pais, name, num])
    answer = _suggest(api, unified_id)

    assert answer["unified_column_id"] == unified_id
    assert answer["target_set"] == {
        "source": "vocabulary",
        "vocabulary": "iso3166",
        "values_count": len(pycountry.countries),
    }
    assert _pairs(answer) == {
        (code, "BRA", "BR"),
        (code, "DEU", "DE"),
        (code, "USA", "US"),
        (pais, "Brasil", "BR"),
        (pais, "alemanha ", "DE"),
        (pais, "Estados Unidos", "US"),
        (pais, "Japão", "JP"),
        (name, "Brazil", "BR"),
        (name, "Germany", "DE"),
        (name, "United States", "US"),
        (name, "Germny", "DE"),
        (name, " br", "BR"),
        (num, "76", "BR"),
        (num, "276", "DE"),
        (num, "840", "US"),
    }
    assert _refs(answer["unmatched"]) == {(code, "XYZ")}
    assert _refs(answer["already_canonical"]) == {(name, "DE")}
    assert answer["truncated"] is False and answer["skipped_columns"] == []
    scores = {(s["column_id"], s["source_value"]): s for s in answer["suggestions"]}
    # A near spelling scores below an exact spelling of the vocabulary, and says so.
    assert scores[(name, "Germny")]["score"] < scores[(name, "Germany")]["score"]
    assert "near spelling" in scores[(name, "Germny")]["reason"]
    assert "Portuguese name" in scores[(pais, "Brasil")]["reason"]
    assert all(0 <= s["score"] <= 1 for s in answer["suggestions"])

    # Accepting is the bulk value-mapping API, fed with the answer as it is.
    for body in answer["value_mapping_requests"]:
        accepted = api.post("/api/value-mappings", json=body)
        assert accepted.status_code == 201, accepted.text
    mapped = api.get("/api/value-mappings", params={"column_id": code}).json()
    assert {(m["source_value"], m["target_value"]) for m in mapped} == {
        ("BRA", "BR"),
        ("DEU", "DE"),
        ("USA", "US"),
    }
    # Mapped values are not suggested again; the mappings' targets are now the canonical set.
    again = _suggest(api, unified_id)
    assert again["suggestions"] == [] and again["value_mapping_requests"] == []
    assert again["target_set"]["source"] == "value_mappings"
    assert _refs(again["unmatched"]) == {(code, "XYZ")}


def test_booleans_in_three_spellings_map_onto_true_false(api, columns):
    active, ativo, subscribed = (
        columns["pg.active"],
        columns["my.ativo"],
        columns["lite.subscribed"],
    )
    unified_id = _unified(api, "is_active", [active, ativo, subscribed])
    answer = _suggest(api, unified_id)
    assert answer["target_set"] == {
        "source": "vocabulary",
        "vocabulary": "boolean",
        "values_count": 2,
    }
    assert _pairs(answer) == {
        (active, "S", "true"),
        (active, "N", "false"),
        (ativo, "1", "true"),
        (ativo, "0", "false"),
        (subscribed, "Yes", "true"),
        (subscribed, "No", "false"),
    }
    assert answer["unmatched"] == [] and answer["already_canonical"] == []


def test_value_mappings_targets_come_before_codes_and_vocabularies(api, columns):
    """The targets already used by the column's value mappings are the canonical set, even
    when codes are declared and the values are a vocabulary's."""
    code, pais = columns["pg.country_code"], columns["my.pais"]
    unified_id = _unified(api, "country", [code, pais], codes=["BR", "DE", "US", "JP"])
    existing = api.post(
        "/api/value-mappings",
        json={
            "column_id": code,
            "mappings": [
                {"source_value": "BRA", "target_value": "Brazil"},
                {"source_value": "DEU", "target_value": "Germany"},
            ],
        },
    )
    assert existing.status_code == 201, existing.text
    answer = _suggest(api, unified_id)
    assert answer["target_set"] == {
        "source": "value_mappings",
        "vocabulary": "iso3166",
        "values_count": 2,
    }
    # USA has no target in the set (United States was never used): unmatched, not "US".
    assert _pairs(answer) == {(pais, "Brasil", "Brazil"), (pais, "alemanha ", "Germany")}
    assert _refs(answer["unmatched"]) == {
        (code, "USA"),
        (code, "XYZ"),
        (pais, "Estados Unidos"),
        (pais, "Japão"),
    }


def test_declared_codes_are_the_canonical_set(api, columns):
    pais, num = columns["my.pais"], columns["lite.country_num"]
    unified_id = _unified(api, "country3", [pais, num], codes=["BRA", "DEU", "USA"])
    answer = _suggest(api, unified_id)
    assert answer["target_set"] == {"source": "codes", "vocabulary": "iso3166", "values_count": 3}
    assert _pairs(answer) == {
        (pais, "Brasil", "BRA"),
        (pais, "alemanha ", "DEU"),
        (pais, "Estados Unidos", "USA"),
        (num, "76", "BRA"),
        (num, "276", "DEU"),
        (num, "840", "USA"),
    }
    assert _refs(answer["unmatched"]) == {(pais, "Japão")}  # JPN is not a declared code


def test_limit_bounds_the_values_read_and_says_truncated(api, columns):
    unified_id = _unified(api, "country", [columns["lite.country"]])
    answer = _suggest(api, unified_id, limit=2)
    listed = answer["suggestions"] + answer["unmatched"] + answer["already_canonical"]
    assert len(listed) == 2 and answer["truncated"] is True


def test_codes_on_unified_columns(api):
    created = api.post(
        "/api/unified-columns",
        json={"name": "currency", "logical_type": "string", "codes": ["BRL", "EUR"]},
    )
    assert created.status_code == 201, created.text
    unified_id = created.json()["id"]
    assert api.get(f"/api/unified-columns/{unified_id}").json()["codes"] == ["BRL", "EUR"]
    patched = api.patch(f"/api/unified-columns/{unified_id}", json={"codes": ["USD"]})
    assert patched.json()["codes"] == ["USD"]
    assert api.get("/api/unified-columns").json()[0]["codes"] == ["USD"]
    cleared = api.patch(f"/api/unified-columns/{unified_id}", json={"codes": None})
    assert cleared.json()["codes"] is None


@pytest.mark.parametrize(
    "codes",
    [["BRL", "BRL"], [""], ["x" * 1025], [1, 2], "BRL", ["c"] * 10_001],
)
def test_bad_codes_are_422(api, codes):
    body = {"name": "currency", "logical_type": "string", "codes": codes}
    assert api.post("/api/unified-columns", json=body).status_code == 422
    created = api.post("/api/unified-columns", json={"name": "ok", "logical_type": "string"})
    patched = api.patch(f"/api/unified-columns/{created.json()['id']}", json={"codes": codes})
    assert patched.status_code == 422


def test_bad_requests_answer_4xx(api, columns):
    assert api.get("/api/unified-columns/987654/value-suggestions").status_code == 404
    lonely = api.post("/api/unified-columns", json={"name": "lonely", "logical_type": "string"})
    unmapped = api.get(f"/api/unified-columns/{lonely.json()['id']}/value-suggestions")
    assert unmapped.status_code == 422
    assert "no column mappings" in unmapped.json()["detail"]
    unified_id = _unified(api, "country", [columns["lite.country"]])
    for limit in (0, -1, 10_001, "many"):
        answer = api.get(
            f"/api/unified-columns/{unified_id}/value-suggestions", params={"limit": limit}
        )
        assert answer.status_code == 422, limit


LONG_YES = "S" + " " * 1024  # a boolean once normalized, but too long to map


def test_unreadable_columns_are_skipped_and_the_others_answered(api, tmp_path):
    """A mapped column removed by a sync is listed under skipped_columns; a value too long
    to be a value mapping's source value is unmatched, not suggested."""
    path = tmp_path / "flags.db"
    with sqlite3.connect(path) as connection:
        connection.executescript(
            "CREATE TABLE flags (id INTEGER PRIMARY KEY, old_flag TEXT, flag TEXT);"
            f"INSERT INTO flags VALUES (1, 'Y', 'Sim'), (2, 'N', 'não'), (3, 'Y', '{LONG_YES}');"
        )
    connection.close()
    body = {"name": "flags", "kind": "sqlite", "database": str(path)}
    tables = _register_and_sync(api, body)
    old_flag, flag = tables["flags"]["old_flag"], tables["flags"]["flag"]
    unified_id = _unified(api, "flag", [old_flag, flag])
    with sqlite3.connect(path) as connection:
        connection.execute("ALTER TABLE flags DROP COLUMN old_flag")
    connection.close()
    connection_id = api.get("/api/data-connections").json()[0]["id"]
    answer = api.post(f"/api/data-connections/{connection_id}/sync").json()
    assert wait_for_job(api, answer["dag_run_id"])["status"] == "success"

    answer = _suggest(api, unified_id)
    assert [s["column_id"] for s in answer["skipped_columns"]] == [old_flag]
    assert "removed" in answer["skipped_columns"][0]["reason"]
    assert _pairs(answer) == {(flag, "Sim", "true"), (flag, "não", "false")}
    assert _refs(answer["unmatched"]) == {(flag, LONG_YES)}


def test_a_source_that_does_not_answer_is_skipped(api, columns):
    """The columns of an unreachable source are skipped, with the reason; the others answer."""
    code, name = columns["pg.country_code"], columns["lite.country"]
    unified_id = _unified(api, "country", [code, name])
    pg = next(c for c in api.get("/api/data-connections").json() if c["name"] == "pg")
    moved = api.patch(
        f"/api/data-connections/{pg['id']}", json={"port": free_port(), "password": "unused"}
    )
    assert moved.status_code == 200, moved.text
    answer = _suggest(api, unified_id)
    assert [s["column_id"] for s in answer["skipped_columns"]] == [code]
    assert {s["column_id"] for s in answer["suggestions"]} == {name}
    assert (name, "Germany", "DE") in _pairs(answer)
