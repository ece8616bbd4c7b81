"""PostgreSQL sources: the connector (connections, errors, types, reading rows); the
catalog harvest is in ``pg_harvest``."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import psycopg
from sqlalchemy import Connection, text
from sqlalchemy.engine import URL

from fabric_core.catalog.harvest import (
    HarvestedCatalog,
    KnownTable,
    LogicalType,
)
from fabric_core.connectors.base import ConnectionSpec, error_detail, open_source, source_error
from fabric_core.connectors.pg_deadline import deadline_cursor_factories, deadline_seconds
from fabric_core.connectors.pg_harvest import harvest_catalog
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
            try:
                return harvest_catalog(connection, spec, spec.schema_filter, known, timeout=timeout)
            except psycopg.Error as exc:
                # The harvest runs on the driver's own cursors, below SQLAlchemy: its errors
                # (a statement timeout, a deadline's cut) are the source's, classified here.
                raise source_error(spec, exc) from None

    read_batches = staticmethod(read_batches)

    def logical_type(self, native_type: str) -> LogicalType:
        return native_logical_type(native_type)


CONNECTOR = PostgreSQLConnector()
