"""Suggested column matches through the gateway, on PostgreSQL, MariaDB and SQLite sources
with decoys that look alike but mean something else."""

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
    wait_for_job,
)

pytestmark = [pytest.mark.postgres, pytest.mark.mysql]

PEOPLE = [
    ("Ana Silva", "ana.silva@mail.pt", "BR", "BRA", "Brasil", "55", "1984-03-02"),
    ("João Costa", "joao.costa@gmail.com", "PT", "PRT", "Portugal", "351", "1979-11-23"),
    ("Lucía García", "lucia.garcia@outlook.com", "ES", "ESP", "Espanha", "34", "1991-07-14"),
    ("Emily Brown", "emily.brown@gmail.com", "US", "USA", "Estados Unidos", "1", "1968-01-30"),
    ("Diego López", "diego.lopez@mail.pt", "MX", "MEX", "México", "52", "2001-05-09"),
    ("Marta Pereira", "marta.pereira@gmail.com", "PT", "PRT", "Portugal", "351", "1957-09-18"),
]
PRODUCTS = ["Wireless Mouse", "Desk Lamp", "Office Chair", "Coffee Mug", "Backpack"]


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


@pytest.fixture
def sources(pg_database, mysql_database, tmp_path):
    pg_db = pg_database()
    customers = ", ".join(
        f"({i}, {_quote(n)}, {_quote(e)}, '{a2}', '{born}', '2023-0{1 + i % 8}-01 10:00')"
        for i, (n, e, a2, _, _, _, born) in enumerate(PEOPLE, 1)
    )
    products = ", ".join(f"({i}, {_quote(p)})" for i, p in enumerate(PRODUCTS, 1))
    pg_execute(
        pg_db,
        f"""
        CREATE TABLE customers (id integer PRIMARY KEY, full_name text, email text,
            country char(2), birth_date date, created_at timestamp);
        INSERT INTO customers VALUES {customers};
        CREATE TABLE products (id integer PRIMARY KEY, name text);
        INSERT INTO products VALUES {products};
        """,
    )
    my_db = mysql_database()
    clients = ", ".join(
        f"({i}, {_quote(n)}, {_quote(e)}, '+{dial}', '{a3}', '{born}', {i * 3}, "
        f"'2022-0{i}-15 09:00:00')"
        for i, (n, e, _, a3, _, dial, born) in enumerate(PEOPLE, 1)
    )
    mysql_execute(
        f"""
        CREATE TABLE `{my_db}`.clients (clientId INT PRIMARY KEY, clientName VARCHAR(100),
            eMail VARCHAR(200), countryCode VARCHAR(5), isoCountry CHAR(3), dob DATE,
            mailCount INT, createdOn DATETIME);
        INSERT INTO `{my_db}`.clients VALUES {clients}
        """
    )
    path = tmp_path / "loja.db"
    with sqlite3.connect(path) as connection:
        connection.execute(
            "CREATE TABLE clientes (id INTEGER PRIMARY KEY, nome TEXT, e_mail TEXT, pais TEXT, "
            "data_nascimento DATE, data_cadastro TIMESTAMP)"
        )
        connection.executemany(
            "INSERT INTO clientes VALUES (?, ?, ?, ?, ?, ?)",
            [
                (i, n, e, pt, born, f"2021-1{i % 3}-0{i} 08:00:00")
                for i, (n, e, _, _, pt, _, born) in enumerate(PEOPLE, 1)
            ],
        )
        connection.execute("CREATE TABLE produtos (id INTEGER PRIMARY KEY, nome TEXT)")
        connection.executemany("INSERT INTO produtos VALUES (?, ?)", list(enumerate(PRODUCTS, 1)))
    connection.close()
    return pg_db, my_db, path


@pytest.fixture
def api(settings):
    with running_stack(settings, with_dataset=False) as client:
        yield client


def _register_and_sync(api, body) -> dict[str, dict[str, int]]:
    _, tables = register_and_sync(api, body)
    return {name: {"_id": table["id"]} | column_ids(table) for name, table in tables.items()}


@pytest.fixture
def catalog(api, sources):
    """The three sources synced; unified columns each seeded with the PostgreSQL column."""
    pg_db, my_db, path = sources
    pg = _register_and_sync(
        api,
        pg_source("crm", pg_db),
    )
    my = _register_and_sync(
        api,
        mysql_source("shop", my_db),
    )
    lite = _register_and_sync(api, {"name": "loja", "kind": "sqlite", "database": str(path)})
    unified = {}
    for name, logical, seed in [
        ("customer_name", "string", "full_name"),
        ("customer_email", "string", "email"),
        ("customer_country", "string", "country"),
        ("birth_date", "date", "birth_date"),
    ]:
        created = api.post("/api/unified-columns", json={"name": name, "logical_type": logical})
        unified[name] = created.json()["id"]
        mapped = api.post(
            "/api/column-mappings",
            json={"column_id": pg["customers"][seed], "unified_column_id": unified[name]},
        )
        assert mapped.status_code == 201, mapped.text
    return {"pg": pg, "my": my, "lite": lite, "unified": unified}


def _suggested(api, unified_id, **params) -> list[dict]:
    answer = api.get(f"/api/unified-columns/{unified_id}/suggestions", params=params)
    assert answer.status_code == 200, answer.text
    return answer.json()


def _scores(suggestions) -> dict[tuple[str, str], float]:
    return {(s["table"], s["column"]): s["score"] for s in suggestions}


def test_suggestions_rank_matches_above_decoys(api, catalog):
    unified = catalog["unified"]

    email = _suggested(api, unified["customer_email"])
    scores = _scores(email)
    assert {(s["table"], s["column"]) for s in email[:2]} == {
        ("clients", "eMail"),
        ("clientes", "e_mail"),
    }
    assert min(scores[("clients", "eMail")], scores[("clientes", "e_mail")]) >= 0.5
    assert scores.get(("clients", "mailCount"), 0.0) < 0.5  # an integer count of mails
    top = email[0]
    assert set(top) == {
        "column_id",
        "table_id",
        "connection_id",
        "schema",
        "table",
        "column",
        "score",
        "evidence",
    }
    assert {e["kind"] for e in top["evidence"]} >= {"name", "type", "pattern"}
    assert all(set(e) == {"kind", "detail", "weight"} for e in top["evidence"])
    assert [s["score"] for s in email] == sorted((s["score"] for s in email), reverse=True)

    country = _scores(_suggested(api, unified["customer_country"]))
    assert min(country[("clients", "isoCountry")], country[("clientes", "pais")]) >= 0.5
    assert country.get(("clients", "countryCode"), 0.0) < 0.5  # telephone dialling codes

    name = _suggested(api, unified["customer_name"])
    scores = _scores(name)
    assert {(s["table"], s["column"]) for s in name[:2]} == {
        ("clients", "clientName"),
        ("clientes", "nome"),
    }
    assert min(scores[("clients", "clientName")], scores[("clientes", "nome")]) >= 0.5
    assert scores.get(("products", "name"), 0.0) < 0.5
    assert scores.get(("produtos", "nome"), 0.0) < 0.5

    birth = _scores(_suggested(api, unified["birth_date"]))
    assert min(birth[("clients", "dob")], birth[("clientes", "data_nascimento")]) >= 0.5
    assert birth.get(("clientes", "data_cadastro"), 0.0) < 0.5
    assert birth.get(("clients", "createdOn"), 0.0) < 0.5

    # Mapped columns are never suggested, for their own unified column or another.
    mapped = {catalog["pg"]["customers"][c] for c in ("full_name", "email", "country")}
    everything = _suggested(api, unified["customer_name"], limit=100)
    assert not mapped & {s["column_id"] for s in everything}
    assert len(_suggested(api, unified["customer_name"], limit=1)) == 1


def test_dismissal_sticks_until_undone(api, catalog):
    unified_id = catalog["unified"]["customer_email"]
    e_mail = catalog["lite"]["clientes"]["e_mail"]
    path = f"/api/unified-columns/{unified_id}/suggestions/dismissed"

    dismissed = api.post(path, json={"column_id": e_mail})
    assert dismissed.status_code == 201, dismissed.text
    assert (dismissed.json()["column_id"], dismissed.json()["column"]) == (e_mail, "e_mail")
    assert api.post(path, json={"column_id": e_mail}).status_code == 409
    assert e_mail not in {s["column_id"] for s in _suggested(api, unified_id, limit=100)}
    assert [d["column_id"] for d in api.get(path).json()] == [e_mail]
    # Only for that unified column; and a sync of the source does not bring it back.
    connection_id = next(
        c["id"] for c in api.get("/api/data-connections").json() if c["name"] == "loja"
    )
    answer = api.post(f"/api/data-connections/{connection_id}/sync").json()
    assert wait_for_job(api, answer["dag_run_id"])["status"] == "success"
    assert e_mail not in {s["column_id"] for s in _suggested(api, unified_id, limit=100)}

    assert api.delete(f"{path}/{e_mail}").status_code == 204
    assert api.delete(f"{path}/{e_mail}").status_code == 404
    assert e_mail in {s["column_id"] for s in _suggested(api, unified_id)}
    assert api.get(path).json() == []


def test_bulk_accept_creates_mappings_all_or_none(api, catalog):
    unified_id = catalog["unified"]["customer_email"]
    e_mail = catalog["lite"]["clientes"]["e_mail"]
    email = catalog["my"]["clients"]["eMail"]
    path = f"/api/unified-columns/{unified_id}/suggestions/accept"

    # All or none: a column that does not exist refuses the whole request.
    refused = api.post(path, json={"column_ids": [e_mail, 999999]})
    assert refused.status_code == 422
    mappings = api.get("/api/column-mappings", params={"unified_column_id": unified_id}).json()
    assert len(mappings) == 1

    accepted = api.post(path, json={"column_ids": [e_mail, email]})
    assert accepted.status_code == 201, accepted.text
    assert {m["column_id"] for m in accepted.json()} == {e_mail, email}
    assert all(m["unified_column"] == "customer_email" for m in accepted.json())
    mappings = api.get("/api/column-mappings", params={"unified_column_id": unified_id}).json()
    assert len(mappings) == 3
    assert not {e_mail, email} & {s["column_id"] for s in _suggested(api, unified_id, limit=100)}

    assert api.post(path, json={"column_ids": [email]}).status_code == 409
    assert api.post(path, json={"column_ids": [e_mail, e_mail]}).status_code == 422
    assert api.post(path, json={"column_ids": []}).status_code == 422


def test_groups_across_tables(api, catalog):
    tables = [catalog["my"]["clients"]["_id"], catalog["lite"]["clientes"]["_id"]]
    tables.append(catalog["lite"]["produtos"]["_id"])
    answer = api.get("/api/column-suggestions", params={"table_ids": ",".join(map(str, tables))})
    assert answer.status_code == 200, answer.text
    groups = {frozenset((m["table"], m["column"]) for m in g["columns"]): g for g in answer.json()}
    email = groups[frozenset({("clients", "eMail"), ("clientes", "e_mail")})]
    assert (email["name"], email["logical_type"]) == ("email", "string")
    assert email["score"] >= 0.5 and email["evidence"]
    assert frozenset({("clients", "clientName"), ("clientes", "nome")}) in groups
    assert frozenset({("clients", "dob"), ("clientes", "data_nascimento")}) in groups
    assert not any(("produtos", "nome") in members for members in groups)
    # Repeated table_ids work the same as a list.
    repeated = api.get("/api/column-suggestions", params=[("table_ids", t) for t in tables])
    assert repeated.json() == answer.json()


def test_unreachable_source_still_answers_from_names(api, catalog, sources):
    _, _, path = sources
    path.unlink()  # the SQLite source is gone: its values cannot be read
    suggestions = _suggested(api, catalog["unified"]["customer_email"])
    lite = next(s for s in suggestions if s["column"] == "e_mail")
    notes = [e for e in lite["evidence"] if e["kind"] == "values"]
    assert len(notes) == 1 and notes[0]["weight"] == 0
    assert "unreachable" in notes[0]["detail"] or "not usable" in notes[0]["detail"]
    assert lite["score"] > 0


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/api/unified-columns/999999/suggestions", {}),
        ("/api/column-suggestions", {"table_ids": "999998,999999"}),
    ],
)
def test_unknown_ids_are_404(api, catalog, path, params):
    assert api.get(path, params=params).status_code == 404


def test_bad_input_is_4xx(api, catalog):
    unified_id = catalog["unified"]["customer_email"]
    table = catalog["my"]["clients"]["_id"]
    suggestions = f"/api/unified-columns/{unified_id}/suggestions"
    for limit in (0, 101, -1):
        assert api.get(suggestions, params={"limit": limit}).status_code == 422
    assert api.get("/api/column-suggestions", params={"table_ids": str(table)}).status_code == 422
    assert api.get("/api/column-suggestions", params={"table_ids": f"{table},x"}).status_code == 422
    assert api.get("/api/column-suggestions").status_code == 422
    too_many = ",".join(str(table + i) for i in range(51))
    assert api.get("/api/column-suggestions", params={"table_ids": too_many}).status_code == 422
    dismissed = f"{suggestions}/dismissed"
    assert api.post(dismissed, json={"column_id": 999999}).status_code == 422
    assert api.post(dismissed, json={"column": 1}).status_code == 422
    assert (
        api.post(
            "/api/unified-columns/999999/suggestions/dismissed", json={"column_id": 1}
        ).status_code
        == 404
    )
    assert (
        api.post(
            "/api/unified-columns/999999/suggestions/accept", json={"column_ids": [1]}
        ).status_code
        == 404
    )
