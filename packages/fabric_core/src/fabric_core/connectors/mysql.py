"""MySQL and MariaDB sources: harvested from ``information_schema`` in four bulk queries.

A MySQL "schema" is a database. With ``database`` set and no ``include_schemas`` option,
only that database is harvested, which is what a connection to one database means.
"""

from __future__ import annotations

import socket
from collections import defaultdict
from collections.abc import Mapping
from typing import Any

import pymysql
from sqlalchemy import Connection, bindparam, text
from sqlalchemy.engine import URL

from fabric_core.catalog.harvest import (
    ForeignKeyTarget,
    HarvestedCatalog,
    HarvestedColumn,
    HarvestedTable,
    LogicalType,
    SchemaFilter,
)
from fabric_core.connectors.base import error_detail, open_source, source_error
from fabric_core.connectors.sql import SqlConnector
from fabric_core.errors import (
    InvalidInputError,
    SourceAuthError,
    SourceError,
    SourceUnreachableError,
)

DEFAULT_PORT = 3306
SYSTEM_SCHEMAS = ("mysql", "information_schema", "performance_schema", "sys")

_AUTH_ERRORS = {1045, 1044, 1698}  # access denied for user / to database
_UNREACHABLE_ERRORS = {2002, 2003, 2005, 2006, 2013}  # cannot connect / lost connection


def build_url(spec) -> URL:
    return URL.create(
        "mysql+pymysql",
        username=spec.username,
        password=spec.password,
        # The address the policy checked (MySQL has no TLS name to keep here).
        host=spec.host_address or spec.host,
        port=spec.port or DEFAULT_PORT,
        database=spec.database or None,
        query={"charset": "utf8mb4"},
    )


def connect_args(spec, timeout: float) -> dict[str, Any]:
    read = max(1, round(spec.policy.read_timeout))
    return {
        "connect_timeout": max(1, round(timeout)),
        # Socket timeouts of the client: a server that stops answering mid-query ends the
        # call after this long, whatever the server thinks of its own timeouts.
        "read_timeout": read,
        "write_timeout": read,
        # A server may ask the client for a local file (LOAD DATA LOCAL): never.
        "local_infile": False,
        # No option file (~/.my.cnf) and no default group: nothing ambient.
        "read_default_file": None,
        "read_default_group": None,
    }


def probe(spec, timeout: float) -> None:
    """The server greets within ``timeout`` seconds, or it is unreachable.

    A MySQL server speaks first. The driver bounds the TCP connect by its connect timeout but
    then waits for that greeting with no timeout at all, so a server that accepts and never
    answers would hang every call for ever.
    """
    with socket.create_connection(
        (spec.host_address or spec.host, spec.port or DEFAULT_PORT), timeout=timeout
    ) as sock:
        sock.settimeout(timeout)
        try:
            if not sock.recv(4):
                raise ConnectionError("the server closed the connection without a greeting")
        except TimeoutError:
            raise TimeoutError(f"no greeting from the server within {timeout:g} s") from None


def classify_error(exc: BaseException) -> type[SourceError]:
    code = exc.args[0] if isinstance(exc, pymysql.MySQLError) and exc.args else None
    if code in _AUTH_ERRORS:
        return SourceAuthError
    if code in _UNREACHABLE_ERRORS or isinstance(exc, OSError):
        return SourceUnreachableError
    return SourceError


def describe_error(exc: BaseException, spec) -> str:
    """The driver's message, or a fixed one when the driver fell over bytes that were not
    MySQL's: what a server of another kind answered is never shown."""
    foreign = "Packet sequence number wrong" in str(exc)  # quotes a byte of the answer
    if isinstance(exc, pymysql.MySQLError | OSError) and not foreign:
        return error_detail(exc, spec.secrets)
    return "the server did not answer as a MySQL server"


def server_version(connection: Connection) -> str:
    return connection.execute(text("SELECT VERSION()")).scalar_one()


_SCHEMAS_SQL = "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA ORDER BY SCHEMA_NAME"

_TABLES_SQL = """
SELECT TABLE_SCHEMA, TABLE_NAME, TABLE_TYPE, TABLE_ROWS, TABLE_COMMENT
FROM information_schema.TABLES WHERE TABLE_SCHEMA IN :schemas
ORDER BY TABLE_SCHEMA, TABLE_NAME
"""

_COLUMNS_SQL = """
SELECT TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME, ORDINAL_POSITION, COLUMN_TYPE, DATA_TYPE,
       IS_NULLABLE, COLUMN_DEFAULT, COLUMN_COMMENT
FROM information_schema.COLUMNS WHERE TABLE_SCHEMA IN :schemas
ORDER BY TABLE_SCHEMA, TABLE_NAME, ORDINAL_POSITION
"""

_KEYS_SQL = """
SELECT TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME, CONSTRAINT_NAME,
       REFERENCED_TABLE_SCHEMA, REFERENCED_TABLE_NAME, REFERENCED_COLUMN_NAME
FROM information_schema.KEY_COLUMN_USAGE
WHERE TABLE_SCHEMA IN :schemas
  AND (CONSTRAINT_NAME = 'PRIMARY' OR REFERENCED_TABLE_NAME IS NOT NULL)
ORDER BY TABLE_SCHEMA, TABLE_NAME, CONSTRAINT_NAME, ORDINAL_POSITION
"""

_DATA_TYPES = {
    **dict.fromkeys(
        ("tinyint", "smallint", "mediumint", "int", "integer", "bigint", "year"),
        LogicalType.INTEGER,
    ),
    **dict.fromkeys(("float", "double", "real"), LogicalType.FLOAT),
    **dict.fromkeys(("decimal", "numeric"), LogicalType.DECIMAL),
    **dict.fromkeys(("bool", "boolean"), LogicalType.BOOLEAN),
    **dict.fromkeys(
        ("char", "varchar", "tinytext", "text", "mediumtext", "longtext", "enum", "set", "uuid"),
        LogicalType.STRING,
    ),
    "date": LogicalType.DATE,
    "datetime": LogicalType.DATETIME,
    "timestamp": LogicalType.DATETIME,
    "time": LogicalType.TIME,
    **dict.fromkeys(
        ("binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob", "bit"),
        LogicalType.BINARY,
    ),
    "json": LogicalType.JSON,
}


def logical_type(data_type: str, column_type: str) -> LogicalType:
    column_type = column_type.lower()
    # MySQL spells BOOLEAN as TINYINT(1); BIT(1) is the other common flag.
    if column_type.startswith(("tinyint(1)", "bit(1)")):
        return LogicalType.BOOLEAN
    return _DATA_TYPES.get(data_type.lower(), LogicalType.OTHER)


def harvest_catalog(connection: Connection, spec, schema_filter: SchemaFilter) -> HarvestedCatalog:
    if not schema_filter.include and spec.database:
        schema_filter = SchemaFilter(include=(spec.database,), exclude=schema_filter.exclude)
    schemas = [
        name
        for (name,) in connection.execute(text(_SCHEMAS_SQL))
        if name.lower() not in SYSTEM_SCHEMAS and schema_filter.accepts(name)
    ]
    if not schemas:
        return HarvestedCatalog(schemas=[], tables=[])
    is_mariadb = "mariadb" in server_version(connection).lower()
    params = {"schemas": schemas}

    def query(sql: str):
        statement = text(sql).bindparams(bindparam("schemas", expanding=True))
        return connection.execute(statement, params)

    tables: dict[tuple[str, str], HarvestedTable] = {}
    for schema, name, table_type, rows, comment in query(_TABLES_SQL):
        is_view = table_type == "VIEW"
        tables[(schema, name)] = HarvestedTable(
            schema=schema,
            name=name,
            kind="view" if is_view else "table",
            row_estimate=None if is_view else rows,
            comment=(comment or None) if not is_view else None,
        )

    primary_keys: set[tuple[str, str, str]] = set()
    foreign_keys: dict[tuple[str, str, str], ForeignKeyTarget] = {}
    key_rows = defaultdict(list)
    for schema, table, column, constraint, f_schema, f_table, f_column in query(_KEYS_SQL):
        key_rows[constraint == "PRIMARY"].append(
            (schema, table, column, f_schema, f_table, f_column)
        )
    for schema, table, column, *_ in key_rows[True]:
        primary_keys.add((schema, table, column))
    for schema, table, column, f_schema, f_table, f_column in key_rows[False]:
        foreign_keys.setdefault(
            (schema, table, column), ForeignKeyTarget(f_schema, f_table, f_column)
        )

    for row in query(_COLUMNS_SQL):
        schema, table_name, name = row[0], row[1], row[2]
        table = tables.get((schema, table_name))
        if table is None:
            continue
        default = row.COLUMN_DEFAULT
        if is_mariadb and default == "NULL":
            # MariaDB reports "no default" as the literal NULL and quotes real string defaults.
            default = None
        key = (schema, table_name, name)
        table.columns.append(
            HarvestedColumn(
                name=name,
                ordinal=row.ORDINAL_POSITION,
                native_type=row.COLUMN_TYPE,
                logical_type=logical_type(row.DATA_TYPE, row.COLUMN_TYPE),
                nullable=row.IS_NULLABLE == "YES",
                default=default,
                primary_key=key in primary_keys,
                foreign_key=foreign_keys.get(key),
                comment=row.COLUMN_COMMENT or None,
            )
        )
    return HarvestedCatalog(schemas=schemas, tables=list(tables.values()))


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
    """The table's ``columns`` as Arrow batches, streamed by connectorx (binary protocol).

    ``text_columns`` (decimals wider than Arrow's 38 digits) are sent as text.
    """
    # Imported here, not at the top: only processes that read data (the dataset service)
    # load the reader and its engine; the sync service stays small.
    import connectorx

    # connectorx's pool waits 30 s on a refused login; a plain connect answers in milliseconds.
    with open_source(spec, timeout):
        pass
    spec = CONNECTOR.confine(spec)  # connectorx connects to the checked address too

    # The mysql crate under connectorx has no read timeout: TCP-level limits (a dead peer or
    # unacknowledged sends end the read); a server that stalls mid-answer is the residual risk
    # named in docs/security.md (the plain connect above proved it answers queries).
    limits = {
        "tcp_connect_timeout_ms": str(max(1, round(timeout * 1000))),
        "tcp_user_timeout_ms": str(max(1, round(spec.policy.read_timeout * 1000))),
        "tcp_keepalive_time_ms": "30000",
    }
    url = build_url(spec).set(drivername="mysql", query=limits)
    url = url.render_as_string(hide_password=False)
    projection = ", ".join(
        f"CAST({_quote(c)} AS CHAR) AS {_quote(c)}" if c in text_columns else _quote(c)
        for c in columns
    )
    sql = f"SELECT {projection} FROM {_quote(schema)}.{_quote(table)}"
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    try:
        reader = connectorx.read_sql(url, sql, return_type="arrow_stream", batch_size=batch_rows)
        for batch in reader:
            if batch.num_rows:
                yield batch
    except (KeyboardInterrupt, SystemExit, GeneratorExit):
        raise
    except BaseException as exc:  # connectorx's Rust panics derive from BaseException
        raise source_error(spec, exc) from None


def _quote(identifier: str) -> str:
    return "`" + identifier.replace("`", "``") + "`"


class MySQLConnector(SqlConnector):
    kind = "mysql"
    default_port = DEFAULT_PORT
    transport_options = ()

    def validate_settings(
        self, values: dict[str, Any], options: Mapping[str, Any]
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        # sslmode is libpq's: accepted here it would be stored and silently not applied,
        # leaving the user to believe the connection is encrypted.
        if (options or {}).get("sslmode") is not None:
            raise InvalidInputError(
                "MySQL connections do not take sslmode (a PostgreSQL option); "
                "remove options.sslmode."
            )
        return super().validate_settings(values, options)

    build_url = staticmethod(build_url)
    connect_args = staticmethod(connect_args)
    probe = staticmethod(probe)
    describe_error = staticmethod(describe_error)
    classify_error = staticmethod(classify_error)
    server_version = staticmethod(server_version)
    harvest_catalog = staticmethod(harvest_catalog)
    read_batches = staticmethod(read_batches)

    def logical_type(self, native_type: str) -> LogicalType:
        base = native_type.split("(")[0].split()[0] if native_type.strip() else ""
        return logical_type(base, native_type)


CONNECTOR = MySQLConnector()
