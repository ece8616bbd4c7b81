"""What every connector shares: the connection spec; and for SQL kinds opening a source."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool

from fabric_core.catalog.harvest import SchemaFilter
from fabric_core.connectors import get_connector
from fabric_core.crypto import redact
from fabric_core.errors import FabricError, SourceAuthError, SourceError, SourceUnreachableError
from fabric_core.schemas import ConnectionCheck
from fabric_core.source_policy import SourcePolicy

# Longest driver message shown to users: enough for any database's own words, too short to
# carry what a server of another kind might answer.
MAX_ERROR_DETAIL = 300


@dataclass(frozen=True)
class ConnectionSpec:
    """Everything needed to reach one source, with the password in clear (memory only)."""

    kind: str
    host: str | None = None
    port: int | None = None
    database: str | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    options: dict[str, Any] = field(default_factory=dict)
    bucket: str | None = None
    prefix: str | None = None
    endpoint_url: str | None = None
    region: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = field(default=None, repr=False)
    # Where and how long this source may be reached; the default refuses every sqlite file.
    policy: SourcePolicy = field(default_factory=SourcePolicy, repr=False, compare=False)
    # The address ``host`` resolved to when it was checked: drivers connect to it.
    host_address: str | None = None

    @property
    def secrets(self) -> list[str]:
        """Every secret value the spec carries, in clear: what error texts must never show."""
        return [s for s in (self.password, self.secret_access_key) if s]

    @property
    def schema_filter(self) -> SchemaFilter:
        return SchemaFilter(
            include=tuple(self.options.get("include_schemas") or ()),
            exclude=tuple(self.options.get("exclude_schemas") or ()),
        )

    @property
    def address(self) -> str:
        """Where the source is, for messages (never with credentials)."""
        return get_connector(self.kind).address(self)


def create_source_engine(spec: ConnectionSpec, timeout: float) -> Engine:
    connector = get_connector(spec.kind)
    # Checked now, at every connect: the policy or the DNS may have changed since it was saved.
    spec = connector.confine(spec)
    engine = create_engine(
        connector.build_url(spec),
        connect_args=connector.connect_args(spec, timeout),
        # One short-lived connection per use: nothing to pool, nothing left open.
        poolclass=NullPool,
    )
    probe = getattr(connector, "probe", None)
    if probe is not None:  # checked before each connection the driver opens

        @event.listens_for(engine, "do_connect")
        def _probe_first(*_args: object) -> None:
            probe(spec, timeout)

    @event.listens_for(engine, "connect")
    def _limit(dbapi_connection: Any, _record: object) -> None:
        connector.on_connect(dbapi_connection, spec)

    return engine


def error_detail(exc: BaseException, secrets: list[str]) -> str:
    """A driver's message fit to show: one line of printable text, short, secrets removed."""
    text = " ".join(str(exc).split())
    text = "".join(ch if ch.isprintable() else "?" for ch in text)
    text = redact(text, secrets)
    if len(text) > MAX_ERROR_DETAIL:
        text = text[:MAX_ERROR_DETAIL] + "…"
    return text


def source_error(spec: ConnectionSpec, exc: BaseException) -> SourceError:
    """A Fabric error for a driver exception, with any secret removed from its text."""
    connector = get_connector(spec.kind)
    original = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    error_class = connector.classify_error(original)
    detail = connector.describe_error(original, spec)
    message = redact(f"{spec.address}: {detail}", spec.secrets)
    if error_class is SourceAuthError:
        message = redact(
            f"{spec.address} refused the credentials of user {spec.username!r}: {detail}",
            spec.secrets,
        )
    return error_class(message)


@contextmanager
def open_source(spec: ConnectionSpec, timeout: float) -> Iterator[Connection]:
    """A live connection to the source; driver errors come out as :class:`SourceError`."""
    engine = create_source_engine(spec, timeout)
    try:
        try:
            connection = engine.connect()
        except FabricError:
            raise
        except Exception as exc:
            raise source_error(spec, exc) from None
        with connection:
            try:
                yield connection
            except (DBAPIError, OSError) as exc:
                raise source_error(spec, exc) from None
    finally:
        engine.dispose()


def check_connection(spec: ConnectionSpec, timeout: float) -> ConnectionCheck:
    """Reach the source once and say whether it answered and accepted the credentials."""
    return get_connector(spec.kind).check(spec, timeout)


def failed_check(exc: SourceError, started: float) -> ConnectionCheck:
    return ConnectionCheck(
        ok=False,
        reachable=not isinstance(exc, SourceUnreachableError),
        authenticated=False,
        message=exc.message,
        latency_ms=round((time.perf_counter() - started) * 1000, 1),
    )


def passed_check(message: str, started: float, version: str | None = None) -> ConnectionCheck:
    return ConnectionCheck(
        ok=True,
        reachable=True,
        authenticated=True,
        message=message,
        latency_ms=round((time.perf_counter() - started) * 1000, 1),
        server_version=version,
    )
