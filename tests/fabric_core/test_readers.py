"""The fast Arrow readers of each source kind: quoting, LIMIT, exact decimals, bad values."""

from __future__ import annotations

import sqlite3
from decimal import Decimal

import polars as pl
import pyarrow as pa
import pytest
from catalog_helpers import register, sync, tables_by_name
from conftest import MYSQL_HOST, MYSQL_USER, PG_HOST, PG_USER, mysql_execute, pg_execute
from fabric_core.connectors import get_connector
from fabric_core.connectors.base import ConnectionSpec
from fabric_core.datasets.plan import plan_dataset
from fabric_core.datasets.service import preview_plan
from fabric_core.errors import SourceError
from fabric_core.schemas import DatasetRequest


def _read(spec, schema, table, columns, **options) -> pa.Table:
    batches = list(
        get_connector(spec.kind).read_batches(
            spec,
            schema,
            table,
            columns,
            **{"limit": None, "batch_rows": 2, "timeout": 5, **options},
        )
    )
    return pa.Table.from_batches(batches)


@pytest.mark.postgres
def test_postgresql_quoting_limit_and_exact_decimals(pg_database):
    database = pg_database()
    pg_execute(
        database,
        """
        CREATE SCHEMA "Odd Schema";
        CREATE TABLE "Odd Schema"."Odd Table" (
            "select" integer, "Größe" numeric, wide numeric(50, 10), price numeric(12, 2));
        INSERT INTO "Odd Schema"."Odd Table" VALUES
            (1, 12345678901234567890.123456789, 1234567890123456789012345.0123456789, 1.10),
            (2, NULL, NULL, 2.25), (3, 0.1, 0.1, 3.00), (4, 5, 5, 4.00), (5, 6, 6, 5.50);
        """,
    )
    spec = ConnectionSpec(kind="postgresql", host=PG_HOST, database=database, username=PG_USER)
    columns = ["select", "Größe", "wide", "price"]
    full = _read(spec, "Odd Schema", "Odd Table", columns, text_columns=["Größe", "wide"])
    assert full.num_rows == 5 and full.column_names == columns
    values = full.to_pydict()
    assert values["Größe"][0] == "12345678901234567890.123456789"  # exact, not a double
    assert values["wide"][0] == "1234567890123456789012345.0123456789"
    assert values["price"][:2] == [Decimal("1.10"), Decimal("2.25")]

    scanned = _read(spec, "Odd Schema", "Odd Table", ["select", "price"])
    assert sorted(scanned.column("select").to_pylist()) == [1, 2, 3, 4, 5]
    limited = _read(spec, "Odd Schema", "Odd Table", ["select"], limit=3)
    assert limited.num_rows == 3


@pytest.mark.postgres
def test_postgresql_errors_name_the_problem_without_the_password(pg_database):
    spec = ConnectionSpec(
        kind="postgresql",
        host=PG_HOST,
        database=pg_database(),
        username=PG_USER,
        password="Hunter-2-secret",
    )
    with pytest.raises(SourceError) as caught:
        _read(spec, "public", "missing_table", ["x"])
    assert "missing_table" in caught.value.message
    assert "Hunter-2-secret" not in caught.value.message


@pytest.mark.mysql
def test_mysql_wide_decimals_come_as_text_and_limit_applies(mysql_database):
    database = mysql_database()
    mysql_execute(
        f"""
        CREATE TABLE `{database}`.`Odd Table` (
            `select` INT, wide DECIMAL(50, 5), price DECIMAL(8, 2));
        INSERT INTO `{database}`.`Odd Table` VALUES
            (1, 123456789012345678901234567890123456789012.12345, 1.10), (2, NULL, 2.25),
            (3, 1, 3.00)
        """
    )
    spec = ConnectionSpec(kind="mysql", host=MYSQL_HOST, database=database, username=MYSQL_USER)
    table = _read(spec, database, "Odd Table", ["select", "wide", "price"], text_columns=["wide"])
    values = table.to_pydict()
    assert values["wide"][0] == "123456789012345678901234567890123456789012.12345"
    assert Decimal(str(values["price"][0])) == Decimal("1.10")
    assert _read(spec, database, "Odd Table", ["select"], limit=2).num_rows == 2

    denied = ConnectionSpec(
        kind="mysql",
        host=MYSQL_HOST,
        database=database,
        username="fabric_nobody",
        password="My-Secret-9",
    )
    with pytest.raises(SourceError) as caught:
        _read(denied, database, "Odd Table", ["select"])
    assert "My-Secret-9" not in caught.value.message


def test_sqlite_values_that_do_not_fit_are_counted_not_fatal(runtime, tmp_path):
    path = tmp_path / "messy.db"
    with sqlite3.connect(path) as connection:
        connection.executescript(
            """
            CREATE TABLE items (id INTEGER PRIMARY KEY, qty INTEGER, seen DATE, label TEXT);
            INSERT INTO items VALUES (1, 5, '2024-01-01', 'a'), (2, 'lots', 'yesterday', NULL),
                                     (3, NULL, NULL, 'c');
            """
        )
    connection.close()
    connection_id = register(runtime, name="messy", kind="sqlite", database=str(path))
    sync(runtime, connection_id)
    table_id = tables_by_name(runtime, connection_id)[("main", "items")].id
    with runtime.session_factory() as session:
        plan = plan_dataset(
            session,
            DatasetRequest(name="messy", selection_mode="tables", selected_tables=[table_id]),
            runtime.box,
            runtime.source_policy,
        )
    preview = preview_plan(plan, 10, timeout=5)
    assert preview.row_count == 3
    assert preview.cast_failures == {"qty": 1, "seen": 1}
    frame = pl.DataFrame(preview.rows)
    assert frame["qty"].to_list() == [5, None, None]
    assert frame["label"].to_list() == ["a", None, "c"]
