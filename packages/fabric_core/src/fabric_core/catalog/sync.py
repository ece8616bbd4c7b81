"""Incremental catalog sync: harvest a source, diff against the stored catalog, persist.

Unchanged objects keep their ids and are not written. Objects that disappeared are marked
``removed_at`` (never deleted), so mappings that point at them stay visible.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import column as sql_column
from sqlalchemy import insert, select, update
from sqlalchemy import table as sql_table
from sqlalchemy.orm import Session, sessionmaker

from fabric_core.catalog.change_events import mapped_columns, record_sync_events
from fabric_core.catalog.harvest import (
    ForeignKeyTarget,
    HarvestedCatalog,
    HarvestedColumn,
    HarvestedTable,
    KnownTable,
    LogicalType,
)
from fabric_core.circuits import CircuitBreaker, source_call
from fabric_core.collector import collector_paused
from fabric_core.connectors import get_connector
from fabric_core.connectors.base import ConnectionSpec
from fabric_core.models import CatalogColumn, CatalogSchema, CatalogTable, Connection, utcnow

# Tables diffed and written per batch of statements (all in one transaction).
CHUNK_TABLES = 500

# Raises to stop a sync (a cancelled job): everything stored so far is rolled back.
StopCheck = Callable[[], None]


@dataclass
class SyncStats:
    schemas: int = 0
    tables: int = 0
    columns: int = 0
    tables_added: int = 0
    tables_changed: int = 0
    tables_removed: int = 0
    columns_added: int = 0
    columns_changed: int = 0
    columns_removed: int = 0
    harvest_seconds: float = 0.0
    # Reading the stored catalog and comparing it with the harvest.
    diff_seconds: float = 0.0
    # Writing the changes and their events (the statements that change the metadata DB).
    persist_seconds: float = 0.0
    # Objects of the source that could not be harvested; the others were.
    errors: list[dict[str, str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def harvest(
    spec: ConnectionSpec,
    timeout: float,
    known: dict[tuple[str, str], KnownTable] | None = None,
) -> HarvestedCatalog:
    """Read a source's catalog through its kind's connector."""
    return get_connector(spec.kind).harvest(spec, timeout, known=known)


def sync_connection(
    session_factory: sessionmaker[Session],
    connection_id: int,
    spec: ConnectionSpec,
    *,
    timeout: float,
    check_stop: StopCheck | None = None,
    circuits: CircuitBreaker | None = None,
    job_id: str | None = None,
) -> SyncStats:
    """Harvest the source of ``connection_id`` and bring its stored catalog up to date.

    Args:
        session_factory: sessions on the metadata DB.
        connection_id: the registered connection.
        spec: how to reach it (password in clear, memory only).
        timeout: seconds to wait for the source to answer a connection attempt.
        check_stop: called before anything is stored and between batches; raising rolls
            back the whole sync.
        circuits: when given, the harvest goes through the connection's circuit breaker.
        job_id: the sync job, named in the events the changes record.

    Returns:
        Counts of added, changed and removed tables and columns.
    """
    with collector_paused():
        return _sync(session_factory, connection_id, spec, timeout, check_stop, circuits, job_id)


def _sync(
    session_factory: sessionmaker[Session],
    connection_id: int,
    spec: ConnectionSpec,
    timeout: float,
    check_stop: StopCheck | None,
    circuits: CircuitBreaker | None,
    job_id: str | None,
) -> SyncStats:
    started = time.perf_counter()
    with session_factory() as session:
        known = _load_known(
            session, connection_id, with_columns=get_connector(spec.kind).reuses_known_columns
        )
    with source_call(circuits, connection_id, spec.secrets):
        catalog = harvest(spec, timeout, known)
    stats = SyncStats(
        schemas=len(catalog.schemas),
        tables=len(catalog.tables),
        columns=catalog.column_count,
        errors=list(catalog.errors),
    )
    stats.harvest_seconds = round(time.perf_counter() - started, 3)
    clock = _PhaseClock()
    _persist(session_factory, connection_id, catalog, stats, check_stop, job_id, clock)
    stats.diff_seconds = round(clock.diff, 3)
    stats.persist_seconds = round(clock.persist, 3)
    return stats


class _PhaseClock:
    """Splits the time after the harvest into diffing (reads, comparisons) and persisting
    (the writes): every write statement runs inside ``writing()``."""

    def __init__(self) -> None:
        self.persist = 0.0
        self._started = time.perf_counter()

    @property
    def diff(self) -> float:
        return time.perf_counter() - self._started - self.persist

    def writing(self) -> _Writing:
        return _Writing(self)


class _Writing:
    __slots__ = ("_clock", "_started")

    def __init__(self, clock: _PhaseClock) -> None:
        self._clock = clock

    def __enter__(self) -> None:
        self._started = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        self._clock.persist += time.perf_counter() - self._started


_COLUMN_FIELDS = (
    "ordinal",
    "native_type",
    "logical_type",
    "nullable",
    "default",
    "primary_key",
    "fk_schema",
    "fk_table",
    "fk_column",
    "comment",
)
_COLUMN_FIELD_ATTRS = [getattr(CatalogColumn, name) for name in _COLUMN_FIELDS]


def _column_values(column: HarvestedColumn) -> tuple:
    fk = column.foreign_key
    return (
        column.ordinal,
        column.native_type,
        str(column.logical_type),
        column.nullable,
        column.default,
        column.primary_key,
        fk.schema if fk else None,
        fk.table if fk else None,
        fk.column if fk else None,
        column.comment,
    )


def _load_known(
    session: Session, connection_id: int, *, with_columns: bool = True
) -> dict[tuple[str, str], KnownTable]:
    """The live tables with a fingerprint and (``with_columns``) their live columns, by
    (schema, table)."""
    tables = {
        row.id: (row.schema_name, row.name, row.fingerprint, row.row_estimate)
        for row in session.execute(
            select(
                CatalogTable.id,
                CatalogSchema.name.label("schema_name"),
                CatalogTable.name,
                CatalogTable.fingerprint,
                CatalogTable.row_estimate,
            )
            .join(CatalogSchema, CatalogSchema.id == CatalogTable.schema_id)
            .where(
                CatalogTable.connection_id == connection_id,
                CatalogTable.fingerprint.is_not(None),
                CatalogTable.removed_at.is_(None),
            )
        )
    }
    columns: dict[int, list[HarvestedColumn]] = {table_id: [] for table_id in tables}
    if not tables or not with_columns:
        return {
            (schema, name): KnownTable(fingerprint, row_estimate, [])
            for schema, name, fingerprint, row_estimate in tables.values()
        }
    for column in session.scalars(
        select(CatalogColumn)
        .join(CatalogTable, CatalogTable.id == CatalogColumn.table_id)
        .where(
            CatalogTable.connection_id == connection_id,
            CatalogTable.fingerprint.is_not(None),
            CatalogColumn.removed_at.is_(None),
        )
        .order_by(CatalogColumn.table_id, CatalogColumn.ordinal)
    ):
        if column.table_id in columns:
            columns[column.table_id].append(_harvested(column))
    return {
        (schema, name): KnownTable(fingerprint, row_estimate, columns[table_id])
        for table_id, (schema, name, fingerprint, row_estimate) in tables.items()
    }


def _harvested(column: CatalogColumn) -> HarvestedColumn:
    fk = column.fk_table and ForeignKeyTarget(column.fk_schema, column.fk_table, column.fk_column)
    return HarvestedColumn(
        name=column.name,
        ordinal=column.ordinal,
        native_type=column.native_type,
        logical_type=LogicalType(column.logical_type),
        nullable=column.nullable,
        default=column.default,
        primary_key=column.primary_key,
        foreign_key=fk or None,
        comment=column.comment,
    )


@dataclass(slots=True)
class _StoredTable:
    id: int
    kind: str
    row_estimate: int | None
    comment: str | None
    removed_at: datetime | None
    fingerprint: str | None


@dataclass(slots=True)
class _StoredColumn:
    id: int
    values: tuple
    removed: bool


# The catalog tables without their column types: statements on them bind and read values as
# they are (no per-value type processing on 40,000 rows). Only values the driver takes as they
# are go through them: ints, strings, booleans, and timestamps processed once
# (_Writer.bound_now).
_PLAIN_COLUMNS = sql_table(
    CatalogColumn.__tablename__, *(sql_column(c.name) for c in CatalogColumn.__table__.c)
)


def _persist(
    session_factory: sessionmaker[Session],
    connection_id: int,
    catalog: HarvestedCatalog,
    stats: SyncStats,
    check_stop: StopCheck | None,
    job_id: str | None = None,
    clock: _PhaseClock | None = None,
) -> None:
    """Store the diff in one transaction, with the events it means (catalog.changed,
    mapping.broken): a sync that dies or is cancelled half way leaves the catalog as it was."""
    clock = clock or _PhaseClock()
    now = utcnow()
    with session_factory() as session, session.begin():
        if check_stop:
            check_stop()  # a cancelled job stops before it writes anything
        writer = _Writer(session, clock, now)
        mapped_before = mapped_columns(session, connection_id)
        schema_ids = _sync_schemas(session, connection_id, catalog.schemas, writer)
        stored_tables = _load_tables(session, connection_id)

        seen_tables: set[int] = set()
        for start in range(0, len(catalog.tables), CHUNK_TABLES):
            chunk = catalog.tables[start : start + CHUNK_TABLES]
            _sync_tables(
                session,
                connection_id,
                chunk,
                schema_ids,
                stored_tables,
                seen_tables,
                stats,
                writer,
            )
            if check_stop:
                check_stop()

        gone = [
            table.id
            for table in stored_tables.values()
            if table.removed_at is None and table.id not in seen_tables
        ]
        with clock.writing():
            stats.tables_removed += _mark_removed(session, CatalogTable.id, gone, now)
            stats.columns_removed += _mark_removed(session, CatalogColumn.table_id, gone, now)
            session.execute(
                update(Connection).where(Connection.id == connection_id).values(last_synced_at=now)
            )
            record_sync_events(session, connection_id, stats, mapped_before, job_id)


class _Writer:
    """The sync's time and the clock its writes are timed on."""

    def __init__(self, session: Session, clock: _PhaseClock, now: datetime) -> None:
        self.clock = clock
        self.now = now
        # ``now`` as the driver takes it, converted once, not per row, through the whole type
        # chain the ORM binds through: UTCDateTime, then the dialect's own DateTime (on SQLite
        # the text the ORM stores). The generic type's bind_processor skips the dialect's step
        # and would leave the driver to format the datetime its own way.
        dialect = session.get_bind().dialect
        column_type = CatalogColumn.__table__.c.created_at.type.dialect_impl(dialect)
        process = column_type.bind_processor(dialect)
        self.bound_now = process(now) if process else now


def _mark_removed(session: Session, key, ids: Sequence[int], now: datetime) -> int:
    """Set ``removed_at`` on the live rows whose ``key`` column is in ``ids``; returns how many."""
    marked = 0
    model = key.class_
    for start in range(0, len(ids), 500):  # bounded IN lists
        result = session.execute(
            update(model)
            .where(key.in_(ids[start : start + 500]), model.removed_at.is_(None))
            .values(removed_at=now, updated_at=now)
        )
        marked += result.rowcount
    return marked


def _sync_schemas(
    session: Session, connection_id: int, names: list[str], writer: _Writer
) -> dict[str, int]:
    now = writer.now
    stored = {
        row.name: row
        for row in session.execute(
            select(CatalogSchema.id, CatalogSchema.name, CatalogSchema.removed_at).where(
                CatalogSchema.connection_id == connection_id
            )
        )
    }
    ids = {name: row.id for name, row in stored.items()}
    new = [name for name in names if name not in stored]
    present = set(names)
    restored = [row.id for name, row in stored.items() if name in present and row.removed_at]
    gone = [row.id for name, row in stored.items() if name not in present and not row.removed_at]
    with writer.clock.writing():
        if new:
            rows = session.execute(
                insert(CatalogSchema).returning(CatalogSchema.id, CatalogSchema.name),
                [{"connection_id": connection_id, "name": name, "created_at": now} for name in new],
            )
            ids.update({row.name: row.id for row in rows})
        if restored:
            session.execute(
                update(CatalogSchema).where(CatalogSchema.id.in_(restored)).values(removed_at=None)
            )
        if gone:
            session.execute(
                update(CatalogSchema).where(CatalogSchema.id.in_(gone)).values(removed_at=now)
            )
    return ids


def _load_tables(session: Session, connection_id: int) -> dict[tuple[int, str], _StoredTable]:
    rows = session.execute(
        select(
            CatalogTable.id,
            CatalogTable.schema_id,
            CatalogTable.name,
            CatalogTable.kind,
            CatalogTable.row_estimate,
            CatalogTable.comment,
            CatalogTable.removed_at,
            CatalogTable.fingerprint,
        ).where(CatalogTable.connection_id == connection_id)
    )
    return {
        (r.schema_id, r.name): _StoredTable(
            r.id, r.kind, r.row_estimate, r.comment, r.removed_at, r.fingerprint
        )
        for r in rows
    }


def _load_columns(session: Session, table_ids: list[int]) -> dict[int, dict[str, _StoredColumn]]:
    """Stored columns of the tables ``table_ids``, by table id and column name.

    Read a batch of tables at a time (through the index on ``table_id``), so a large catalog
    is never in memory twice, harvested and stored.
    """
    by_table: dict[int, dict[str, _StoredColumn]] = {}
    if not table_ids:
        return by_table
    c = _PLAIN_COLUMNS.c
    rows = session.execute(
        select(
            c.id,
            c.table_id,
            c.name,
            c.removed_at.is_not(None),
            *(c[name] for name in _COLUMN_FIELDS),
        ).where(c.table_id.in_(table_ids))
    ).all()
    for row in rows:
        # Booleans come back as stored (SQLite: 0/1), equal to True/False in comparisons.
        by_table.setdefault(row[1], {})[row[2]] = _StoredColumn(
            row[0], tuple(row[4:]), bool(row[3])
        )
    return by_table


def _sync_tables(
    session: Session,
    connection_id: int,
    tables: list[HarvestedTable],
    schema_ids: dict[str, int],
    stored_tables: dict[tuple[int, str], _StoredTable],
    seen_tables: set[int],
    stats: SyncStats,
    writer: _Writer,
) -> None:
    now = writer.now
    new_tables: list[HarvestedTable] = []
    table_updates: list[dict] = []
    table_ids: list[tuple[int, HarvestedTable]] = []
    for table in tables:
        stored = stored_tables.get((schema_ids[table.schema], table.name))
        if stored is None:
            new_tables.append(table)
            continue
        seen_tables.add(stored.id)
        table_ids.append((stored.id, table))
        described_differently = (stored.kind, stored.comment) != (table.kind, table.comment)
        if stored.removed_at is not None:
            stats.tables_added += 1
        elif described_differently:
            stats.tables_changed += 1
        if (
            described_differently
            or stored.removed_at is not None
            or stored.row_estimate != table.row_estimate
            or stored.fingerprint != table.fingerprint
        ):
            # Row estimates drift all the time: stored, but not counted as a change; a new
            # fingerprint counts only through the columns it brings.
            table_updates.append(
                {
                    "id": stored.id,
                    "kind": table.kind,
                    "comment": table.comment,
                    "row_estimate": table.row_estimate,
                    "fingerprint": table.fingerprint,
                    "removed_at": None,
                    "updated_at": now,
                }
            )
    # A table the harvest found unchanged (its stored fingerprint) keeps its stored columns:
    # they are neither read nor compared.
    changed: list[tuple[int, HarvestedTable]] = []
    for table_id, table in table_ids:
        if table.unchanged_columns is None:
            changed.append((table_id, table))
            continue
        stored = stored_tables.get((schema_ids[table.schema], table.name))
        live = stored is not None and stored.removed_at is None
        if not live or stored.fingerprint != table.fingerprint:
            # Only a sync of the same connection could have changed it, and those are locked
            # out; rolled back, the job's retry harvests everything again.
            raise RuntimeError(f"stored table {table.schema}.{table.name} changed during the sync")
    table_ids = changed
    stored_columns = _load_columns(session, [table_id for table_id, _ in table_ids])
    with writer.clock.writing():
        if table_updates:
            session.execute(update(CatalogTable), table_updates)
        if new_tables:
            stats.tables_added += len(new_tables)
            inserted = _insert_tables(session, connection_id, new_tables, schema_ids, writer)
            by_key = {(t.schema, t.name): t for t in new_tables}
            schema_names = {schema_id: name for name, schema_id in schema_ids.items()}
            for table_id, schema_id, name in inserted:
                table_ids.append((table_id, by_key[(schema_names[schema_id], name)]))
    _sync_columns(session, table_ids, stored_columns, stats, writer)


# New tables on PostgreSQL: one statement whatever their number, its values as arrays. A
# multi-row VALUES list (SQLAlchemy's insertmanyvalues) is a new statement text per batch,
# which the driver splits at its placeholders in Python: 0.4 s for 2000 tables.
_INSERT_TABLES_PG = f"""
INSERT INTO {CatalogTable.__tablename__}
    (connection_id, schema_id, name, kind, row_estimate, comment, fingerprint,
     created_at, updated_at)
SELECT %(connection_id)s, t.*, %(now)s, %(now)s
FROM unnest(%(schema_ids)s::integer[], %(names)s::text[], %(kinds)s::text[],
            %(row_estimates)s::bigint[], %(comments)s::text[], %(fingerprints)s::text[]) AS t
RETURNING id, schema_id, name
"""


def _insert_tables(
    session: Session,
    connection_id: int,
    tables: list[HarvestedTable],
    schema_ids: dict[str, int],
    writer: _Writer,
) -> list[tuple[int, int, str]]:
    """Insert new tables; their ``(id, schema_id, name)``."""
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        with connection.connection.driver_connection.cursor() as cursor:
            cursor.execute(
                _INSERT_TABLES_PG,
                {
                    "connection_id": connection_id,
                    "now": writer.bound_now,
                    "schema_ids": [schema_ids[t.schema] for t in tables],
                    "names": [t.name for t in tables],
                    "kinds": [t.kind for t in tables],
                    "row_estimates": [t.row_estimate for t in tables],
                    "comments": [t.comment for t in tables],
                    "fingerprints": [t.fingerprint for t in tables],
                },
            )
            return cursor.fetchall()
    inserted = session.execute(
        insert(CatalogTable).returning(CatalogTable.id, CatalogTable.schema_id, CatalogTable.name),
        [
            {
                "connection_id": connection_id,
                "schema_id": schema_ids[t.schema],
                "name": t.name,
                "kind": t.kind,
                "row_estimate": t.row_estimate,
                "comment": t.comment,
                "fingerprint": t.fingerprint,
                "created_at": writer.now,
                "updated_at": writer.now,
            }
            for t in tables
        ],
    )
    return [tuple(row) for row in inserted]


def _sync_columns(
    session: Session,
    table_ids: list[tuple[int, HarvestedTable]],
    stored_columns: dict[int, dict[str, _StoredColumn]],
    stats: SyncStats,
    writer: _Writer,
) -> None:
    now, bound_now = writer.now, writer.bound_now
    inserts: list[tuple] = []
    updates: list[dict] = []
    removed: list[int] = []
    no_columns: dict[str, _StoredColumn] = {}
    for table_id, table in table_ids:
        stored_of_table = stored_columns.get(table_id, no_columns)
        for harvested in table.columns:
            values = _column_values(harvested)
            stored = stored_of_table.get(harvested.name)
            if stored is None:
                inserts.append((table_id, harvested.name, *values))
            elif stored.removed or stored.values != values:
                if stored.removed:
                    stats.columns_added += 1
                else:
                    stats.columns_changed += 1
                row = dict(zip(_COLUMN_FIELDS, values, strict=True))
                updates.append({**row, "id": stored.id, "removed_at": None, "updated_at": now})
        if stored_of_table:
            names = {harvested.name for harvested in table.columns}
            removed.extend(
                stored.id
                for name, stored in stored_of_table.items()
                if name not in names and not stored.removed
            )
    stats.columns_added += len(inserts)
    with writer.clock.writing():
        if inserts:
            _insert_columns(session, inserts, bound_now)
        if updates:
            session.execute(update(CatalogColumn), updates)
        stats.columns_removed += _mark_removed(session, CatalogColumn.id, removed, now)


_INSERT_KEYS = ("table_id", "name", *_COLUMN_FIELDS, "created_at", "updated_at")


def _insert_columns(session: Session, rows: list[tuple], bound_now: Any) -> None:
    """Insert new columns, ``(table_id, name, *_COLUMN_FIELDS)`` each, in the session's
    transaction: COPY on PostgreSQL, the driver's executemany on SQLite, one Core executemany
    elsewhere."""
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        driver = connection.connection.driver_connection
        names = ", ".join(f'"{key}"' for key in _INSERT_KEYS)
        with (
            driver.cursor() as cursor,
            cursor.copy(f"COPY {CatalogColumn.__tablename__} ({names}) FROM STDIN") as copy,
        ):
            for row in rows:
                copy.write_row((*row, bound_now, bound_now))
        return
    if connection.dialect.name == "sqlite":
        # The driver's own executemany on plain tuples: no per-row dicts or type processing.
        names = ", ".join(f'"{key}"' for key in _INSERT_KEYS)
        marks = ", ".join("?" * len(_INSERT_KEYS))
        cursor = connection.connection.driver_connection.cursor()
        try:
            cursor.executemany(
                f"INSERT INTO {CatalogColumn.__tablename__} ({names}) VALUES ({marks})",
                [(*row, bound_now, bound_now) for row in rows],
            )
        finally:
            cursor.close()
        return
    # Core executemany on the untyped table: no ORM, no per-value type processing.
    session.execute(
        insert(_PLAIN_COLUMNS),
        [dict(zip(_INSERT_KEYS, (*row, bound_now, bound_now), strict=True)) for row in rows],
    )
