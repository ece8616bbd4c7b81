"""What the SQL kinds share: settings of a database server, check and harvest over one
SQLAlchemy connection, value lookups as one ``SELECT DISTINCT``."""

from __future__ import annotations

import dataclasses
import time
from abc import abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar

from sqlalchemy import Connection, select
from sqlalchemy import column as sql_column
from sqlalchemy import table as sql_table
from sqlalchemy.engine import URL

from fabric_core.catalog.harvest import HarvestedCatalog, KnownTable, SchemaFilter
from fabric_core.connectors.base import (
    ConnectionSpec,
    error_detail,
    failed_check,
    open_source,
    passed_check,
)
from fabric_core.connectors.contract import Connector, sorted_values
from fabric_core.errors import InvalidInputError, SourceError
from fabric_core.schemas import ConnectionCheck, ConnectionOptions
from fabric_core.source_policy import SourcePolicy


class SqlConnector(Connector):
    """A database reached through SQLAlchemy (check, harvest, values) and a fast Arrow
    reader of the kind's own choice (``read_batches``)."""

    fields: ClassVar[frozenset[str]] = frozenset({"host", "port", "database", "username"})
    secret_field: ClassVar[str] = "password"
    destination_fields: ClassVar[tuple[str, ...]] = ("kind", "host", "port")
    transport_options: ClassVar[tuple[str, ...]] = ("sslmode",)
    options_model = ConnectionOptions

    def complete_settings(self, values: dict[str, Any]) -> dict[str, Any]:
        if not values.get("host"):
            raise InvalidInputError(f"A {self.kind} connection needs 'host'.")
        if values.get("port") is None:
            values["port"] = self.default_port
        return values

    def address(self, spec: ConnectionSpec) -> str:
        return f"{self.kind} server {spec.host}:{spec.port or self.default_port}"

    def check_place(self, values: dict[str, Any], policy: SourcePolicy) -> None:
        policy.check_host(values["host"])

    def confine(self, spec: ConnectionSpec) -> ConnectionSpec:
        address = spec.policy.resolve(spec.host or "", spec.port or self.default_port)
        return dataclasses.replace(spec, host_address=address)

    def on_connect(self, dbapi_connection: Any, spec: ConnectionSpec) -> None:
        """Limits set on each new driver connection (none unless the kind needs them)."""

    def describe_error(self, exc: BaseException, spec: ConnectionSpec) -> str:
        """The driver's message, fit to show (see ``error_detail``)."""
        return error_detail(exc, spec.secrets)

    @abstractmethod
    def build_url(self, spec: ConnectionSpec) -> URL: ...

    @abstractmethod
    def connect_args(self, spec: ConnectionSpec, timeout: float) -> dict[str, Any]: ...

    @abstractmethod
    def classify_error(self, exc: BaseException) -> type[SourceError]: ...

    @abstractmethod
    def server_version(self, connection: Connection) -> str: ...

    @abstractmethod
    def harvest_catalog(
        self, connection: Connection, spec: ConnectionSpec, schema_filter: SchemaFilter
    ) -> HarvestedCatalog: ...

    def check(self, spec: ConnectionSpec, timeout: float) -> ConnectionCheck:
        started = time.perf_counter()
        try:
            with open_source(spec, timeout) as connection:
                version = self.server_version(connection)
        except SourceError as exc:
            return failed_check(exc, started)
        return passed_check(f"Connected to {spec.address}", started, version)

    def harvest(
        self,
        spec: ConnectionSpec,
        timeout: float,
        *,
        known: Mapping[tuple[str, str], KnownTable] | None = None,
    ) -> HarvestedCatalog:
        # A database's catalog is read in a few bulk queries: nothing to gain from `known`.
        with open_source(spec, timeout) as connection:
            return self.harvest_catalog(connection, spec, spec.schema_filter)

    def distinct_values(
        self,
        spec: ConnectionSpec,
        schema: str,
        table: str,
        column: str,
        *,
        limit: int,
        timeout: float,
    ) -> list[Any]:
        source_column = sql_column(column)
        statement = (
            select(source_column)
            .distinct()
            .select_from(sql_table(table, source_column, schema=schema))
            .where(source_column.is_not(None))
            .limit(int(limit))
        )
        with open_source(spec, timeout) as connection:
            values = list(connection.execute(statement).scalars())
        return sorted_values(values)
