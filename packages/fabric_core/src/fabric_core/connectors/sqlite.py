"""SQLite sources: a file opened read-only, harvested through the pragma table functions."""

from __future__ import annotations

import dataclasses
import os
import sqlite3
import time
from typing import Any
from urllib.parse import quote

from sqlalchemy import Connection, text
from sqlalchemy.engine import URL

from fabric_core.catalog.harvest import (
    ForeignKeyTarget,
    HarvestedCatalog,
    HarvestedColumn,
    HarvestedTable,
    LogicalType,
    SchemaFilter,
)
from fabric_core.connectors.base import source_error
from fabric_core.connectors.sql import SqlConnector
from fabric_core.errors import InvalidInputError, SourceError, SourceUnreachableError

DEFAULT_PORT = None
MAIN_SCHEMA = "main"


# SQLite calls the progress handler every this many virtual-machine steps.
_PROGRESS_STEPS = 10_000


def build_url(spec) -> URL:
    """A read-only URI of the (confined, resolved) file: a typo must not create an empty
    database, and the path is percent-encoded so nothing in it reads as a URI parameter."""
    return URL.create(
        "sqlite", database=f"file:{quote(spec.database)}?mode=ro", query={"uri": "true"}
    )


def connect_args(spec, timeout: float) -> dict[str, Any]:
    return {"timeout": timeout, "check_same_thread": False}


def confine(spec):
    if not spec.database:
        raise InvalidInputError("A sqlite connection needs 'database': the path of the file.")
    return dataclasses.replace(spec, database=str(spec.policy.sqlite_path(spec.database)))


def on_connect(dbapi_connection: sqlite3.Connection, spec) -> None:
    # A local file never stalls on a network, but one query may still run for ever (a huge
    # table, a recursive view): interrupted after the read timeout.
    deadline = time.monotonic() + spec.policy.read_timeout
    dbapi_connection.set_progress_handler(lambda: time.monotonic() > deadline, _PROGRESS_STEPS)


def classify_error(exc: BaseException) -> type[SourceError]:
    if isinstance(exc, sqlite3.OperationalError) and "unable to open" in str(exc):
        return SourceUnreachableError
    return SourceError


def server_version(connection: Connection) -> str:
    return connection.execute(text("SELECT sqlite_version()")).scalar_one()


_COLUMNS_SQL = """
SELECT m.type, m.name AS table_name, p.cid, p.name, p.type AS native_type, p."notnull",
       p.dflt_value, p.pk
FROM sqlite_master m JOIN pragma_table_info(m.name) p
WHERE m.type IN ('table', 'view') AND m.name NOT LIKE 'sqlite\\_%' ESCAPE '\\'
ORDER BY m.name, p.cid
"""

_FOREIGN_KEYS_SQL = """
SELECT m.name, f.id, f.seq, f."table", f."from", f."to"
FROM sqlite_master m JOIN pragma_foreign_key_list(m.name) f
WHERE m.type = 'table'
ORDER BY m.name, f.id, f.seq
"""

# Checked in order, following SQLite's own type-affinity rules where they apply.
_TYPE_WORDS = (
    ("BOOL", LogicalType.BOOLEAN),
    ("DATETIME", LogicalType.DATETIME),
    ("TIMESTAMP", LogicalType.DATETIME),
    ("DATE", LogicalType.DATE),
    ("TIME", LogicalType.TIME),
    ("JSON", LogicalType.JSON),
    ("INT", LogicalType.INTEGER),
    ("CHAR", LogicalType.STRING),
    ("CLOB", LogicalType.STRING),
    ("TEXT", LogicalType.STRING),
    ("BLOB", LogicalType.BINARY),
    ("REAL", LogicalType.FLOAT),
    ("FLOA", LogicalType.FLOAT),
    ("DOUB", LogicalType.FLOAT),
    ("DEC", LogicalType.DECIMAL),
    ("NUMERIC", LogicalType.DECIMAL),
)


def logical_type(native_type: str) -> LogicalType:
    upper = native_type.upper()
    for word, logical in _TYPE_WORDS:
        if word in upper:
            return logical
    return LogicalType.OTHER


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def harvest_catalog(connection: Connection, spec, schema_filter: SchemaFilter) -> HarvestedCatalog:
    if not schema_filter.accepts(MAIN_SCHEMA):
        return HarvestedCatalog(schemas=[], tables=[])
    rows = connection.execute(text(_COLUMNS_SQL)).all()
    pk_columns: dict[str, list[str]] = {}
    for row in rows:
        if row.pk:
            pk_columns.setdefault(row.table_name, []).append(row.name)

    foreign_keys: dict[tuple[str, str], ForeignKeyTarget] = {}
    for table, _fk_id, seq, target, from_column, to_column in connection.execute(
        text(_FOREIGN_KEYS_SQL)
    ):
        if to_column is None:  # REFERENCES t without columns means t's primary key
            target_pk = pk_columns.get(target, [])
            to_column = target_pk[seq] if seq < len(target_pk) else None
        if to_column is not None:
            foreign_keys.setdefault(
                (table, from_column), ForeignKeyTarget(MAIN_SCHEMA, target, to_column)
            )

    tables: dict[str, HarvestedTable] = {}
    for row in rows:
        table = tables.get(row.table_name)
        if table is None:
            kind = "view" if row.type == "view" else "table"
            table = tables[row.table_name] = HarvestedTable(MAIN_SCHEMA, row.table_name, kind)
        native_type = row.native_type or ""
        table.columns.append(
            HarvestedColumn(
                name=row.name,
                ordinal=row.cid + 1,
                native_type=native_type,
                logical_type=logical_type(native_type),
                nullable=not row.notnull and not row.pk,
                default=row.dflt_value,
                primary_key=bool(row.pk),
                foreign_key=foreign_keys.get((row.table_name, row.name)),
            )
        )
    # SQLite keeps no statistics, so the estimate is an exact count (cheap for local files).
    for table in tables.values():
        if table.kind == "table":
            count_sql = f"SELECT COUNT(*) FROM {_quote(table.name)}"
            table.row_estimate = connection.execute(text(count_sql)).scalar_one()
    return HarvestedCatalog(schemas=[MAIN_SCHEMA], tables=list(tables.values()))


def read_batches(
    spec,
    schema: str,
    table: str,
    columns: list[str],
    *,
    text_columns: list[str] = (),
    limit: int | None,
    batch_rows: int,
    timeout: float,
):
    """The table's ``columns`` as Arrow batches, read by DuckDB's SQLite scanner.

    Every value comes as text: SQLite lets any value into any column, so the declared type
    says little; the dataset build casts and counts what does not fit.
    """
    # Imported here, not at the top: only processes that read data (the dataset service)
    # load the reader and its engine; the sync service stays small.
    import duckdb

    from fabric_core.connectors import duck

    path = confine(spec).database
    if not os.path.isfile(path):
        raise SourceUnreachableError(f"SQLite file {spec.database}: no such file")
    projection = ", ".join(duck.quote_identifier(c) for c in columns)
    sql = (
        f"SELECT {projection} FROM sqlite_scan({duck.quote_literal(path)}, "
        f"{duck.quote_literal(table)})"
    )
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    try:
        connection = duck.connect("sqlite_scanner")
        connection.execute("SET sqlite_all_varchar = true")
        yield from duck.stream(connection, sql, batch_rows)
    except duckdb.Error as exc:
        raise source_error(spec, exc) from None


class SQLiteConnector(SqlConnector):
    kind = "sqlite"
    default_port = DEFAULT_PORT

    def complete_settings(self, values: dict[str, Any]) -> dict[str, Any]:
        if not values.get("database"):
            raise InvalidInputError("A sqlite connection needs 'database': the path of the file.")
        return values

    def address(self, spec) -> str:
        return f"SQLite file {spec.database}"

    def check_place(self, values: dict[str, Any], policy) -> None:
        policy.sqlite_path(values["database"])

    confine = staticmethod(confine)
    on_connect = staticmethod(on_connect)

    build_url = staticmethod(build_url)
    connect_args = staticmethod(connect_args)
    classify_error = staticmethod(classify_error)
    server_version = staticmethod(server_version)
    harvest_catalog = staticmethod(harvest_catalog)
    read_batches = staticmethod(read_batches)

    def logical_type(self, native_type: str) -> LogicalType:
        return logical_type(native_type)


CONNECTOR = SQLiteConnector()
