"""Harvesting a PostgreSQL catalog from ``pg_catalog`` in a few bulk queries.

A first harvest reads every column of every table: the fingerprints and the keys are then read
beside the columns, on a second connection that shares the first one's snapshot (an exported
snapshot), so the server works on both at once and both see the same catalog. Later harvests
read the fingerprints first and only the columns of the tables whose fingerprint changed.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from typing import Any

import psycopg
from psycopg import sql
from sqlalchemy import Connection

from fabric_core.catalog.harvest import (
    ForeignKeyTarget,
    HarvestedCatalog,
    HarvestedColumn,
    HarvestedTable,
    KnownTable,
    LogicalType,
    SchemaFilter,
)
from fabric_core.connectors.base import ConnectionSpec, open_source
from fabric_core.connectors.pg_fingerprints import table_fingerprints
from fabric_core.errors import SourceError

logger = logging.getLogger(__name__)

_SCHEMAS_SQL = """
SELECT n.oid, n.nspname FROM pg_namespace n
WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\\_toast%%' AND n.nspname NOT LIKE 'pg\\_temp\\_%%'
ORDER BY n.nspname
"""

# pg_stat_get_live_tuples, not the pg_stat_all_tables view: the view computes a dozen
# statistics for every table, and only tables never analyzed need the one. A foreign table
# never analyzed has no estimate (the server counts no rows of it).
_TABLES_SQL = """
SELECT c.oid, n.nspname, c.relname, c.relkind,
       CASE WHEN c.relkind IN ('v', 'm') THEN NULL
            WHEN c.reltuples >= 0 THEN c.reltuples::bigint
            WHEN c.relkind = 'f' THEN NULL
            ELSE pg_stat_get_live_tuples(c.oid) END AS row_estimate,
       d.description
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_description d
  ON d.objoid = c.oid AND d.classoid = 'pg_class'::regclass AND d.objsubid = 0
WHERE c.relnamespace = ANY(%(schema_oids)s)
  AND c.relkind IN ('r', 'p', 'v', 'm', 'f') AND NOT c.relispartition
"""

_COLUMNS_SQL = """
SELECT a.attrelid, a.attnum, a.attname, format_type(a.atttypid, a.atttypmod) AS native_type,
       COALESCE(bt.typname, t.typname) AS type_name,
       COALESCE(bt.typcategory, t.typcategory) AS type_category,
       a.attnotnull, pg_get_expr(ad.adbin, {default_relation}) AS default_expr, d.description
FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid
JOIN pg_type t ON t.oid = a.atttypid
LEFT JOIN pg_type bt ON t.typtype = 'd' AND bt.oid = t.typbasetype
LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
LEFT JOIN pg_description d
  ON d.objoid = a.attrelid AND d.classoid = 'pg_class'::regclass AND d.objsubid = a.attnum
WHERE c.relnamespace = ANY(%(schema_oids)s)
  AND c.relkind IN ('r', 'p', 'v', 'm', 'f') AND NOT c.relispartition
  AND a.attnum > 0 AND NOT a.attisdropped
  AND (CAST(%(relids)s AS oid[]) IS NULL OR c.oid = ANY(CAST(%(relids)s AS oid[])))
"""  # no ORDER BY: sorting 40k rows spills to disk at the default work_mem; Python sorts

# Column rows Python receives at a time while the server goes on reading (libpq 17's
# chunked rows; psycopg's binary wheels bring their own libpq). The statement's deadline
# covers the whole stream, Python's work on the rows included (about 2 s at 400,000 columns).
STREAM_ROWS = 2000

# One row per key column; for foreign keys also the referenced column, wherever it lives
# (looked up by its key: a join hashed all of pg_attribute, most of the query's time).
_KEYS_SQL = """
SELECT con.conrelid, con.contype, k.attnum, fn.nspname, fc.relname,
       (SELECT fa.attname FROM pg_attribute fa
        WHERE fa.attrelid = con.confrelid AND fa.attnum = k.fattnum)
FROM pg_constraint con
JOIN pg_class c ON c.oid = con.conrelid
CROSS JOIN LATERAL unnest(con.conkey, con.confkey) AS k(attnum, fattnum)
LEFT JOIN pg_class fc ON fc.oid = con.confrelid
LEFT JOIN pg_namespace fn ON fn.oid = fc.relnamespace
WHERE con.contype IN ('p', 'f') AND c.relnamespace = ANY(%(schema_oids)s)
  AND (CAST(%(relids)s AS oid[]) IS NULL OR c.oid = ANY(CAST(%(relids)s AS oid[])))
ORDER BY con.contype DESC, con.conname
"""


_TYPE_NAMES = {
    "int2": LogicalType.INTEGER,
    "int4": LogicalType.INTEGER,
    "int8": LogicalType.INTEGER,
    "oid": LogicalType.INTEGER,
    "float4": LogicalType.FLOAT,
    "float8": LogicalType.FLOAT,
    "numeric": LogicalType.DECIMAL,
    "money": LogicalType.DECIMAL,
    "bool": LogicalType.BOOLEAN,
    "date": LogicalType.DATE,
    "timestamp": LogicalType.DATETIME,
    "timestamptz": LogicalType.DATETIME,
    "time": LogicalType.TIME,
    "timetz": LogicalType.TIME,
    "bytea": LogicalType.BINARY,
    "json": LogicalType.JSON,
    "jsonb": LogicalType.JSON,
    "uuid": LogicalType.STRING,
}


def logical_type(type_name: str, type_category: str) -> LogicalType:
    if type_category == "A":
        return LogicalType.ARRAY
    if type_name in _TYPE_NAMES:
        return _TYPE_NAMES[type_name]
    if type_category in ("S", "E"):  # strings and enums
        return LogicalType.STRING
    return LogicalType.OTHER


Fingerprints = dict[int, tuple[int, str]]
KeyRow = tuple[int, str, int, str | None, str | None, str | None]


def harvest_catalog(
    connection: Connection,
    spec: ConnectionSpec,
    schema_filter: SchemaFilter,
    known: Mapping[tuple[str, str], KnownTable] | None = None,
    *,
    timeout: float | None = None,
) -> HarvestedCatalog:
    """The catalog in a few bulk queries. With ``known`` (what the last sync stored), a table
    whose fingerprint has not changed is returned with ``unchanged_columns`` set, its columns
    not read again. With ``timeout`` (to open a second connection), a first harvest reads
    the fingerprints and keys beside the columns."""
    reader = _Reader(connection)
    snapshot = None if known or timeout is None else _export_snapshot(reader)
    schemas = [
        (oid, name) for oid, name in reader.rows(_SCHEMAS_SQL, {}) if schema_filter.accepts(name)
    ]
    schema_names = [name for _, name in schemas]
    schema_oids = [oid for oid, _ in schemas]
    tables = _read_tables(reader, schema_oids)

    if snapshot is not None:
        with ThreadPoolExecutor(1, thread_name_prefix="pg-harvest") as beside:
            other_half = beside.submit(_on_snapshot, spec, timeout, snapshot, schema_oids)
            _read_columns(reader, schema_oids, None, tables)
            read_beside = other_half.result()
        fingerprints, keys = read_beside or _fingerprints_and_keys(reader, schema_oids, None)
        _set_fingerprints(tables, fingerprints, known)
    else:
        _set_fingerprints(tables, table_fingerprints(reader.rows, schema_oids), known)
        relids = [oid for oid, table in tables.items() if table.unchanged_columns is None]
        if not relids:
            return HarvestedCatalog(schema_names, list(tables.values()))
        keys = reader.rows(_KEYS_SQL, {"schema_oids": schema_oids, "relids": relids})
        _read_columns(reader, schema_oids, relids, tables)

    _set_keys(tables, keys)
    for table in tables.values():
        if table.unchanged_columns is None:
            table.columns.sort(key=_ordinal)
    return HarvestedCatalog(schemas=schema_names, tables=list(tables.values()))


def _read_tables(reader: _Reader, schema_oids: list[int]) -> dict[int, HarvestedTable]:
    tables: dict[int, HarvestedTable] = {}
    for oid, schema, name, relkind, row_estimate, comment in reader.rows(
        _TABLES_SQL, {"schema_oids": schema_oids}
    ):
        kind = "view" if relkind in ("v", "m") else "table"
        tables[oid] = HarvestedTable(schema, name, kind, row_estimate, comment)
    return tables


def _set_fingerprints(
    tables: dict[int, HarvestedTable],
    fingerprints: Fingerprints,
    known: Mapping[tuple[str, str], KnownTable] | None,
) -> None:
    for relid, (count, fingerprint) in fingerprints.items():
        table = tables.get(relid)
        if table is None:
            continue
        table.fingerprint = fingerprint
        previous = known and known.get((table.schema, table.name))
        if previous and previous.fingerprint == fingerprint:
            table.unchanged_columns = count


def _read_columns(
    reader: _Reader,
    schema_oids: list[int],
    relids: list[int] | None,
    tables: dict[int, HarvestedTable],
) -> None:
    """Reads the columns of ``relids`` (all when None) into their tables, keys not yet
    marked."""
    # A catalog has few distinct types: each one's logical type is worked out once.
    logical_types: dict[tuple[str, str], LogicalType] = {}
    params = {"schema_oids": schema_oids, "relids": relids}
    for (
        relid,
        attnum,
        name,
        native_type,
        type_name,
        type_category,
        not_null,
        default,
        comment,
    ) in reader.streamed_rows(_columns_sql(reader.driver), params):
        table = tables.get(relid)
        if table is None or table.unchanged_columns is not None:
            continue
        type_key = (type_name, type_category)
        logical = logical_types.get(type_key)
        if logical is None:
            logical = logical_types[type_key] = logical_type(type_name, type_category)
        column = HarvestedColumn(
            name, attnum, native_type, logical, not not_null, default, comment=comment
        )
        table.columns.append(column)


def _set_keys(tables: dict[int, HarvestedTable], keys: list[KeyRow]) -> None:
    """Marks the key columns. Columns are looked up table by table: one index of all
    400,000 columns of a large catalog held 60 MB more at the harvest's peak."""
    keys_by_table: dict[int, list[KeyRow]] = defaultdict(list)
    for row in keys:
        keys_by_table[row[0]].append(row)
    for relid, rows in keys_by_table.items():
        table = tables.get(relid)
        if table is None or table.unchanged_columns is not None:
            continue
        columns = {column.ordinal: column for column in table.columns}
        # Primary keys come first; a column in several foreign keys shows the first by name.
        for _relid, contype, attnum, f_schema, f_table, f_column in rows:
            column = columns.get(attnum)
            if column is None:
                continue
            if contype == "p":
                column.primary_key = True
            elif column.foreign_key is None and f_column is not None:
                column.foreign_key = ForeignKeyTarget(f_schema, f_table, f_column)


def _fingerprints_and_keys(
    reader: _Reader, schema_oids: list[int], relids: list[int] | None
) -> tuple[Fingerprints, list[KeyRow]]:
    fingerprints = table_fingerprints(reader.rows, schema_oids)
    return fingerprints, reader.rows(_KEYS_SQL, {"schema_oids": schema_oids, "relids": relids})


_REPEATABLE_READ = "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"


def _export_snapshot(reader: _Reader) -> str | None:
    """This connection's snapshot, for a second one to share; None when the server will not
    export it (the harvest then reads everything on this connection)."""
    try:
        with reader.driver.cursor() as cursor:
            cursor.execute(_REPEATABLE_READ)
            cursor.execute("SELECT pg_export_snapshot()")
            (snapshot,) = cursor.fetchone()
            return snapshot
    except psycopg.OperationalError:
        raise
    except psycopg.DatabaseError:
        reader.driver.rollback()
        return None


def _on_snapshot(
    spec: ConnectionSpec, timeout: float, snapshot: str, schema_oids: list[int]
) -> tuple[Fingerprints, list[KeyRow]] | None:
    """The fingerprints and keys, read on a second connection on ``snapshot``; None when that
    connection is refused or cannot take the snapshot (a role's connection limit, a pooler
    that sends it to another server): the first connection, on the same snapshot, then reads
    them itself. Errors of the reads themselves are the harvest's."""
    with ExitStack() as opened:
        try:
            connection = opened.enter_context(open_source(spec, timeout))
            reader = _Reader(connection)
            with reader.driver.cursor() as cursor:
                cursor.execute(_REPEATABLE_READ)
                cursor.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(snapshot))
        except (SourceError, psycopg.Error) as exc:
            logger.info("harvest on one connection: a second one was refused (%s)", exc)
            return None
        return _fingerprints_and_keys(reader, schema_oids, None)


class _Reader:
    """Queries on the driver's own cursor (its deadline included), giving plain tuples:
    40,000 column rows skip SQLAlchemy's row objects, a quarter of the harvest's time."""

    def __init__(self, connection: Connection) -> None:
        self.driver: psycopg.Connection = connection.connection.driver_connection

    def rows(self, query: str, params: dict[str, Any]) -> list[tuple]:
        with self.driver.cursor() as cursor:
            cursor.execute(query, params)
            return cursor.fetchall()

    def streamed_rows(self, query: str, params: dict[str, Any]) -> Iterator[tuple]:
        """The rows as they arrive, so Python turns them into columns while the server
        still reads the catalog."""
        if not psycopg.capabilities.has_stream_chunked():  # one row at a time is slower still
            yield from self.rows(query, params)
            return
        with self.driver.cursor() as cursor:
            yield from cursor.stream(query, params, size=STREAM_ROWS)


def _columns_sql(driver: psycopg.Connection) -> str:
    """A default is deparsed without its table (relation 0) unless it is a generated
    column's expression, the only kind that may name columns: the server then skips looking
    up the table for each default, a third of the query's time. PostgreSQL 11 has no
    generated columns."""
    if driver.info.server_version >= 120000:
        default_relation = "CASE WHEN a.attgenerated = '' THEN 0 ELSE ad.adrelid END"
    else:
        default_relation = "0"
    return _COLUMNS_SQL.format(default_relation=default_relation)


def _ordinal(column: HarvestedColumn) -> int:
    return column.ordinal
