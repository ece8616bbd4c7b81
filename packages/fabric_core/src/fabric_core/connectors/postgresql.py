"""PostgreSQL sources: harvested from ``pg_catalog`` in a few bulk queries."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

import psycopg
from sqlalchemy import Connection, text
from sqlalchemy.engine import URL

from fabric_core.catalog.harvest import (
    ForeignKeyTarget,
    HarvestedCatalog,
    HarvestedColumn,
    HarvestedTable,
    KnownTable,
    LogicalType,
    SchemaFilter,
)
from fabric_core.connectors.base import ConnectionSpec, error_detail, open_source, source_error
from fabric_core.connectors.pg_deadline import deadline_cursor_factories, deadline_seconds
from fabric_core.connectors.pg_fingerprints import table_fingerprints
from fabric_core.connectors.sql import SqlConnector
from fabric_core.errors import SourceAuthError, SourceError, SourceUnreachableError

DEFAULT_PORT = 5432
SYSTEM_SCHEMAS = ("pg_catalog", "information_schema")

# SQLSTATEs meaning the server answered but refused who we are.
_AUTH_SQLSTATES = {"28000", "28P01"}


# A pass file that cannot exist (a path under a device file): libpq then reads no
# ~/.pgpass, and says nothing (an existing non-file such as /dev/null draws a warning).
NO_PASSFILE = "/dev/null/fabric-no-passfile"


def build_url(spec) -> URL:
    # Everything is in libpq_params (given to the driver as keywords, which win over the URL).
    return URL.create("postgresql+psycopg")


def libpq_params(spec, timeout: float) -> dict[str, Any]:
    """The libpq parameters of a connection, each one set, so none comes from the service's
    environment: no PG* variable, ~/.pgpass, client certificate or Kerberos ticket counts.

    ``host`` is kept for TLS (certificate name) while ``hostaddr`` is the address the policy
    checked, so libpq does not look the name up again. The read timeout bounds each statement
    (server side) and an unanswered send (``tcp_user_timeout``); keepalives find a dead peer.
    """
    read_ms = max(1, round(spec.policy.read_timeout * 1000))
    return {
        "host": spec.host,
        "hostaddr": spec.host_address,
        "port": spec.port or DEFAULT_PORT,
        "dbname": spec.database or "postgres",
        # An empty user or password is "set": libpq then does not read PGUSER/PGPASSWORD.
        "user": spec.username or "",
        "password": spec.password or "",
        "passfile": NO_PASSFILE,
        "sslmode": spec.options.get("sslmode") or "prefer",
        "sslcertmode": "disable",
        "gssencmode": "disable",
        "require_auth": "!gss,!sspi",
        "connect_timeout": max(2, round(timeout)),
        "options": f"-c statement_timeout={read_ms}",
        "keepalives": 1,
        "keepalives_idle": 30,
        "keepalives_interval": 10,
        "keepalives_count": 3,
        "tcp_user_timeout": read_ms,
        "target_session_attrs": "any",
        "application_name": "fabric",
    }


def connect_args(spec, timeout: float) -> dict[str, Any]:
    # The cursor factory is in force from the first statement (SQLAlchemy's own start-up
    # queries run before any connect event).
    cursor, _server_cursor = _cursor_factories(spec)
    return {**libpq_params(spec, timeout), "cursor_factory": cursor}


def on_connect(dbapi_connection: Any, spec) -> None:
    _cursor, server_cursor = _cursor_factories(spec)
    dbapi_connection.server_cursor_factory = server_cursor


def _cursor_factories(spec) -> tuple[type, type]:
    return deadline_cursor_factories(deadline_seconds(spec.policy.read_timeout))


def classify_error(exc: BaseException) -> type[SourceError]:
    sqlstate = getattr(exc, "sqlstate", None)
    if sqlstate in _AUTH_SQLSTATES:
        return SourceAuthError
    text_ = str(exc)
    if "password authentication failed" in text_ or "no password supplied" in text_:
        return SourceAuthError
    if 'database "' in text_ and "does not exist" in text_:
        return SourceError
    if isinstance(exc, psycopg.OperationalError | OSError):
        return SourceUnreachableError
    if "Unable to connect to Postgres" in text_ or "Connection refused" in text_:
        return SourceUnreachableError  # DuckDB's scanner words it this way
    return SourceError


# libpq quotes the first byte a server of another kind answered: not shown.
_FOREIGN_ANSWER = re.compile(
    r"(received invalid response to SSL negotiation|"
    r"expected authentication request from server, but received)\W*\S?"
)


def describe_error(exc: BaseException, spec) -> str:
    detail = error_detail(exc, spec.secrets)
    return _FOREIGN_ANSWER.sub("the server did not answer as a PostgreSQL server", detail)


def server_version(connection: Connection) -> str:
    return connection.execute(text("SHOW server_version")).scalar_one()


_SCHEMAS_SQL = """
SELECT n.oid, n.nspname FROM pg_namespace n
WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\\_toast%%' AND n.nspname NOT LIKE 'pg\\_temp\\_%%'
ORDER BY n.nspname
"""

# pg_stat_get_live_tuples, not the pg_stat_all_tables view: the view computes a dozen
# statistics for every table, and only tables never analyzed need the one.
_TABLES_SQL = """
SELECT c.oid, n.nspname, c.relname, c.relkind,
       CASE WHEN c.relkind IN ('v', 'm') THEN NULL
            WHEN c.reltuples >= 0 THEN c.reltuples::bigint
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
# chunked rows; psycopg's binary wheels bring their own libpq).
STREAM_ROWS = 2000
_CHUNKED_ROWS_SINCE = 170000

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


# The same vocabulary for types as ``format_type`` spells them (what the catalog records).
_FORMAT_NAMES = {
    **dict.fromkeys(("smallint", "integer", "bigint", "oid"), LogicalType.INTEGER),
    **dict.fromkeys(("real", "double precision"), LogicalType.FLOAT),
    **dict.fromkeys(("numeric", "money"), LogicalType.DECIMAL),
    "boolean": LogicalType.BOOLEAN,
    "date": LogicalType.DATE,
    **dict.fromkeys(
        ("timestamp without time zone", "timestamp with time zone"), LogicalType.DATETIME
    ),
    **dict.fromkeys(("time without time zone", "time with time zone"), LogicalType.TIME),
    "bytea": LogicalType.BINARY,
    **dict.fromkeys(("json", "jsonb"), LogicalType.JSON),
    **dict.fromkeys(
        ("text", "character varying", "character", "name", "uuid", "citext"), LogicalType.STRING
    ),
}
_TYPE_MODIFIER = re.compile(r"\([^)]*\)")


def native_logical_type(native_type: str) -> LogicalType:
    """The logical type of a ``format_type`` spelling (``numeric(12,2)``, ``text[]``)."""
    if native_type.endswith("]"):
        return LogicalType.ARRAY
    base = " ".join(_TYPE_MODIFIER.sub("", native_type).split())
    return _FORMAT_NAMES.get(base, LogicalType.OTHER)


def harvest_catalog(
    connection: Connection,
    spec,
    schema_filter: SchemaFilter,
    known: Mapping[tuple[str, str], KnownTable] | None = None,
) -> HarvestedCatalog:
    """The catalog in a few bulk queries. With ``known`` (what the last sync stored), a table
    whose fingerprint has not changed is returned with ``unchanged_columns`` set, its columns
    not read again."""
    rows, streamed_rows = _driver_rows(connection)
    schemas = [(oid, name) for oid, name in rows(_SCHEMAS_SQL, {}) if schema_filter.accepts(name)]
    params: dict[str, Any] = {"schema_oids": [oid for oid, _ in schemas], "relids": None}

    tables: dict[int, HarvestedTable] = {}
    for oid, schema, name, relkind, row_estimate, comment in rows(_TABLES_SQL, params):
        kind = "view" if relkind in ("v", "m") else "table"
        tables[oid] = HarvestedTable(schema, name, kind, row_estimate, comment)

    for relid, (count, fingerprint) in table_fingerprints(rows, params["schema_oids"]).items():
        table = tables.get(relid)
        if table is None:
            continue
        table.fingerprint = fingerprint
        previous = known and known.get((table.schema, table.name))
        if previous and previous.fingerprint == fingerprint:
            table.unchanged_columns = count
    if known:
        params["relids"] = [oid for oid, t in tables.items() if t.unchanged_columns is None]
        if not params["relids"]:
            return HarvestedCatalog([name for _, name in schemas], list(tables.values()))

    primary_keys: set[tuple[int, int]] = set()
    foreign_keys: dict[tuple[int, int], ForeignKeyTarget] = {}
    for relid, contype, attnum, f_schema, f_table, f_column in rows(_KEYS_SQL, params):
        if contype == "p":
            primary_keys.add((relid, attnum))
        elif (relid, attnum) not in foreign_keys and f_column is not None:
            foreign_keys[(relid, attnum)] = ForeignKeyTarget(f_schema, f_table, f_column)

    # A catalog has few distinct types: each one's logical type is worked out once.
    logical_types: dict[tuple[str, str], LogicalType] = {}
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
    ) in streamed_rows(_columns_sql(connection), params):
        table = tables.get(relid)
        if table is None or table.unchanged_columns is not None:
            continue
        type_key = (type_name, type_category)
        logical = logical_types.get(type_key)
        if logical is None:
            logical = logical_types[type_key] = logical_type(type_name, type_category)
        key = (relid, attnum)
        table.columns.append(
            HarvestedColumn(
                name,
                attnum,
                native_type,
                logical,
                not not_null,
                default,
                key in primary_keys,
                foreign_keys.get(key),
                comment,
            )
        )
    for table in tables.values():
        if table.unchanged_columns is None:
            table.columns.sort(key=_ordinal)
    return HarvestedCatalog(schemas=[name for _, name in schemas], tables=list(tables.values()))


def _driver_rows(connection: Connection):
    """Two ways to run a query on the driver's own cursor (its deadline included), giving
    plain tuples: 40,000 column rows skip SQLAlchemy's row objects, a quarter of the
    harvest's time. ``rows`` returns them all; ``streamed_rows`` yields them as they arrive,
    so Python turns them into columns while the server still reads the catalog."""
    driver = connection.connection.driver_connection

    def rows(query: str, params: dict[str, Any]) -> list[tuple]:
        with driver.cursor() as cursor:
            cursor.execute(query, params)
            return cursor.fetchall()

    def streamed_rows(query: str, params: dict[str, Any]) -> Iterator[tuple]:
        if psycopg.pq.version() < _CHUNKED_ROWS_SINCE:  # one row at a time is slower still
            yield from rows(query, params)
            return
        with driver.cursor() as cursor:
            yield from cursor.stream(query, params, size=STREAM_ROWS)

    return rows, streamed_rows


def _columns_sql(connection: Connection) -> str:
    """A default is deparsed without its table (relation 0) unless it is a generated
    column's expression, the only kind that may name columns: the server then skips looking
    up the table for each default, a third of the query's time. PostgreSQL 11 has no
    generated columns."""
    if connection.connection.driver_connection.info.server_version >= 120000:
        default_relation = "CASE WHEN a.attgenerated = '' THEN 0 ELSE ad.adrelid END"
    else:
        default_relation = "0"
    return _COLUMNS_SQL.format(default_relation=default_relation)


def _ordinal(column: HarvestedColumn) -> int:
    return column.ordinal


def libpq_dsn(spec, timeout: float) -> str:
    """A libpq key/value connection string (values quoted, so any password works)."""

    def value(text: object) -> str:
        return "'" + str(text).replace("\\", "\\\\").replace("'", "\\'") + "'"

    params = libpq_params(spec, timeout)
    return " ".join(f"{key}={value(v)}" for key, v in params.items() if v is not None)


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
    """The table's ``columns`` as Arrow batches, read by DuckDB's PostgreSQL scanner.

    A full read uses ``postgres_scan`` (binary COPY, in parallel). A read with ``limit``, with
    ``text_columns`` (decimals DuckDB would turn into doubles), or of columns whose names differ
    only by case (DuckDB folds case: ``"name"`` would read ``"Name"``) sends its own SELECT to
    PostgreSQL through ``postgres_query``, so the LIMIT, the ``::text`` casts and the exact
    names are PostgreSQL's; its columns come back under positional aliases, renamed here.
    """
    # Imported here, not at the top: only processes that read data (the dataset service)
    # load the reader and its engine; the sync service stays small.
    import duckdb

    from fabric_core.connectors import duck

    spec = CONNECTOR.confine(spec)  # the policy, checked at every connect
    dsn = duck.quote_literal(libpq_dsn(spec, timeout))
    projection = ", ".join(duck.quote_identifier(c) for c in columns)
    try:
        connection = duck.connect("postgres_scanner")
        case_distinct = len({c.casefold() for c in columns}) == len(columns)
        if limit is None and not text_columns and case_distinct:
            sql = (
                f"SELECT {projection} FROM postgres_scan({dsn}, "
                f"{duck.quote_literal(schema)}, {duck.quote_literal(table)})"
            )
        else:
            remote_columns = ", ".join(
                f"{duck.quote_identifier(c)}{'::text' if c in text_columns else ''} AS c{i}"
                for i, c in enumerate(columns)
            )
            remote = (
                f"SELECT {remote_columns} FROM {duck.quote_identifier(schema)}."
                f"{duck.quote_identifier(table)}"
            )
            if limit is not None:
                remote += f" LIMIT {int(limit)}"
            connection.execute(f"ATTACH {dsn} AS source (TYPE postgres, READ_ONLY)")
            sql = f"SELECT * FROM postgres_query('source', {duck.quote_literal(remote)})"
            for batch in duck.stream(connection, sql, batch_rows):
                yield batch.rename_columns(columns)
            return
        yield from duck.stream(connection, sql, batch_rows)
    except duckdb.Error as exc:
        raise source_error(spec, exc) from None


class PostgreSQLConnector(SqlConnector):
    kind = "postgresql"
    default_port = DEFAULT_PORT

    build_url = staticmethod(build_url)
    connect_args = staticmethod(connect_args)

    def on_connect(self, dbapi_connection: Any, spec: ConnectionSpec) -> None:
        on_connect(dbapi_connection, spec)

    classify_error = staticmethod(classify_error)
    describe_error = staticmethod(describe_error)
    server_version = staticmethod(server_version)
    harvest_catalog = staticmethod(harvest_catalog)
    # Unchanged tables are told by their fingerprint alone (``pg_fingerprints``).
    reuses_known_columns = False

    def harvest(
        self,
        spec: ConnectionSpec,
        timeout: float,
        *,
        known: Mapping[tuple[str, str], KnownTable] | None = None,
    ) -> HarvestedCatalog:
        with open_source(spec, timeout) as connection:
            return harvest_catalog(connection, spec, spec.schema_filter, known)

    read_batches = staticmethod(read_batches)

    def logical_type(self, native_type: str) -> LogicalType:
        return native_logical_type(native_type)


CONNECTOR = PostgreSQLConnector()
