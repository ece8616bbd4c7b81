"""The catalog columns a suggestion compares: read once per request, with their names
already cut into concepts (cheap to compare by the thousand)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, exists, select
from sqlalchemy.orm import Session

from fabric_core.models import (
    CatalogColumn,
    CatalogSchema,
    CatalogTable,
    ColumnMapping,
    DismissedSuggestion,
)
from fabric_core.suggestions.names import concepts, entities


@dataclass(frozen=True, slots=True)
class ColumnInfo:
    id: int
    table_id: int
    connection_id: int
    schema: str
    table: str
    name: str
    logical_type: str
    native_type: str
    comment: str | None
    primary_key: bool
    fk_table: str | None
    fk_column: str | None
    updated_at: datetime

    @property
    def tokens(self) -> tuple[str, ...]:
        """The name's concepts; a name that says nothing alone (``id``, ``code``) borrows
        its table's (``customers.id`` is a customer id)."""
        own = concepts(self.name)
        if own and all(t in {"identifier", "code", "number", "date"} for t in own):
            return tuple(dict.fromkeys((*concepts(self.table), *own)))
        return own

    @property
    def table_tokens(self) -> tuple[str, ...]:
        return concepts(self.table)

    @property
    def table_entities(self) -> frozenset[str]:
        return entities(self.table_tokens)

    @property
    def fk_tokens(self) -> tuple[str, ...]:
        if self.fk_table is None:
            return ()
        return concepts(f"{self.fk_table} {self.fk_column or ''}")

    @property
    def fingerprint(self) -> str:
        """Changes whenever a sync changes the column (its stored fields and updated_at)."""
        key = f"{self.native_type}|{self.logical_type}|{self.updated_at.isoformat()}"
        return hashlib.sha256(key.encode()).hexdigest()

    def public(self) -> dict:
        return {
            "column_id": self.id,
            "table_id": self.table_id,
            "connection_id": self.connection_id,
            "schema": self.schema,
            "table": self.table,
            "column": self.name,
        }


_FIELDS = (
    CatalogColumn.id,
    CatalogColumn.table_id,
    CatalogTable.connection_id,
    CatalogSchema.name,
    CatalogTable.name,
    CatalogColumn.name,
    CatalogColumn.logical_type,
    CatalogColumn.native_type,
    CatalogColumn.comment,
    CatalogColumn.primary_key,
    CatalogColumn.fk_table,
    CatalogColumn.fk_column,
    CatalogColumn.updated_at,
)


def select_columns() -> Select:
    """Catalog columns as plain ``ColumnInfo`` rows (read them with ``column_info``), by id;
    callers add their own filters."""
    # Plain rows, not ORM objects: thousands of columns are read per request.
    return (
        select(*_FIELDS)
        .join(CatalogTable, CatalogTable.id == CatalogColumn.table_id)
        .join(CatalogSchema, CatalogSchema.id == CatalogTable.schema_id)
        .order_by(CatalogColumn.id)
    )


def _query() -> Select:
    return select_columns().where(
        CatalogColumn.removed_at.is_(None), CatalogTable.removed_at.is_(None)
    )


def column_info(row) -> ColumnInfo:
    return ColumnInfo(*row)


def live_columns(session: Session, *, table_ids: Iterable[int] | None = None) -> list[ColumnInfo]:
    """Columns not removed from their source (of ``table_ids`` only, when given)."""
    query = _query()
    if table_ids is not None:
        query = query.where(CatalogTable.id.in_(list(table_ids)))
    return [column_info(row) for row in session.execute(query)]


def unmapped_columns(session: Session, unified_column_id: int) -> Iterator[ColumnInfo]:
    """Live columns mapped to nothing and not dismissed for the unified column, streamed in
    batches (a catalog of 40,000 columns is never held whole)."""
    mapped = exists().where(ColumnMapping.column_id == CatalogColumn.id)
    dismissed = exists().where(
        DismissedSuggestion.column_id == CatalogColumn.id,
        DismissedSuggestion.unified_column_id == unified_column_id,
    )
    query = _query().where(~mapped, ~dismissed).execution_options(yield_per=2000)
    # On the session's connection: plain rows, without the ORM's per-row loading.
    for row in session.connection().execute(query):
        yield column_info(row)


def columns_by_id(session: Session, column_ids: Iterable[int]) -> list[ColumnInfo]:
    """These columns, removed or not (a mapped column keeps its name after a removal)."""
    ids = list(column_ids)
    if not ids:
        return []
    return [
        column_info(row)
        for row in session.execute(select_columns().where(CatalogColumn.id.in_(ids)))
    ]
