"""Which datasets an item affects, and what stops a build.

A dataset definition is affected by an item about a column when the definition reads that
column: in ``tables`` mode every column of a selected table; in ``columns`` mode a selected
column, or (with ``auto_include_mapped_columns``) a column of a selected table mapped to a
unified column the selection includes. An item about a new column counts with the unified
column it would be mapped to. Items are matched against definitions when asked, so a dataset
defined after the item was found is affected too.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from fabric_core.models import CatalogColumn, ColumnMapping, Dataset, DriftItem

if TYPE_CHECKING:
    from fabric_core.schemas import DatasetRequest


@dataclass(frozen=True, slots=True)
class Footprint:
    """What one dataset definition reads."""

    tables: frozenset[int]
    all_columns_of: frozenset[int]  # tables read whole (tables mode)
    columns: frozenset[int]
    unified: frozenset[int]  # unified columns auto-included (columns mode)

    def reads(self, table_id: int, column_id: int | None, unified_id: int | None) -> bool:
        if table_id not in self.tables:
            return False
        if table_id in self.all_columns_of or column_id is None:
            return True
        return column_id in self.columns or (unified_id is not None and unified_id in self.unified)


def footprints(session: Session, definitions: Sequence[dict[str, Any]]) -> list[Footprint]:
    """The footprint of each definition (a dataset's stored one, or a build request's)."""
    chosen = {c for d in definitions if _mode(d) == "columns" for c in _ids(d, "selected_columns")}
    tables_of: dict[int, int] = {}
    unified_of: dict[int, int] = {}
    ids = sorted(chosen)
    for start in range(0, len(ids), 500):
        rows = session.execute(
            select(CatalogColumn.id, CatalogColumn.table_id, ColumnMapping.unified_column_id)
            .outerjoin(ColumnMapping, ColumnMapping.column_id == CatalogColumn.id)
            .where(CatalogColumn.id.in_(ids[start : start + 500]))
        )
        for column_id, table_id, unified_id in rows:
            tables_of[column_id] = table_id
            if unified_id is not None:
                unified_of[column_id] = unified_id
    result = []
    for definition in definitions:
        if _mode(definition) == "tables":
            tables = frozenset(_ids(definition, "selected_tables"))
            result.append(Footprint(tables, tables, frozenset(), frozenset()))
            continue
        columns = frozenset(c for c in _ids(definition, "selected_columns") if c in tables_of)
        auto = definition.get("auto_include_mapped_columns", True)
        result.append(
            Footprint(
                tables=frozenset(tables_of[c] for c in columns),
                all_columns_of=frozenset(),
                columns=columns,
                unified=frozenset(unified_of[c] for c in columns if c in unified_of)
                if auto
                else frozenset(),
            )
        )
    return result


def _mode(definition: dict[str, Any]) -> str:
    return str(definition.get("selection_mode", "tables"))


def _ids(definition: dict[str, Any], key: str) -> list[int]:
    return [int(i) for i in definition.get(key) or [] if isinstance(i, int)]


def item_unified_ids(session: Session, items: Iterable[DriftItem]) -> dict[int, int]:
    """Column id -> the unified column that brings it into a dataset: its mapping's, or for a
    new column the one it would be mapped to."""
    items = list(items)
    column_ids = sorted({i.column_id for i in items if i.column_id is not None})
    unified: dict[int, int] = {}
    for start in range(0, len(column_ids), 500):
        rows = session.execute(
            select(ColumnMapping.column_id, ColumnMapping.unified_column_id).where(
                ColumnMapping.column_id.in_(column_ids[start : start + 500])
            )
        )
        unified.update({column_id: unified_id for column_id, unified_id in rows})
    return _with_would_be_mapped(items, unified)


def _with_would_be_mapped(items: Iterable[DriftItem], unified: dict[int, int]) -> dict[int, int]:
    """``unified`` (column id -> its mapping's unified column) with, for an unmapped column
    whose item names the unified column it would be mapped to (a new column), that one."""
    for item in items:
        would = item.details.get("unified_column_id") if item.details else None
        if item.column_id is not None and item.column_id not in unified and would is not None:
            unified[item.column_id] = int(would)
    return unified


def all_footprints(session: Session) -> list[tuple[str, Footprint]]:
    """Every dataset's name and footprint (datasets are few; their definitions are small)."""
    rows = list(session.execute(select(Dataset.name, Dataset.definition).order_by(Dataset.name)))
    return list(
        zip(
            [name for name, _ in rows],
            footprints(session, [definition or {} for _, definition in rows]),
            strict=True,
        )
    )


def affected_datasets(session: Session, items: Sequence[DriftItem]) -> list[list[str]]:
    """For each item, the names of the datasets whose definition reads its column."""
    if not items:
        return []
    datasets = all_footprints(session)
    unified = item_unified_ids(session, items)
    return [
        [
            name
            for name, footprint in datasets
            if footprint.reads(item.table_id, item.column_id, unified.get(item.column_id or 0))
        ]
        for item in items
    ]


def attention_reasons(session: Session, definitions: Sequence[dict[str, Any]]) -> list[list[str]]:
    """For each definition (a stored dataset's or a build request's, of a new dataset too),
    the messages of the open breaking items on columns it reads; empty: none. A few queries
    whatever the number of definitions."""
    return [
        [item.message for item in items]
        for items in _open_items_read(session, definitions, severities=("breaking",))
    ]


def request_attention(session: Session, request: DatasetRequest) -> list[str]:
    """Why a build request would read columns with breaking drift (a new dataset's too)."""
    [reasons] = attention_reasons(session, [request.model_dump()])
    return reasons


def request_drift(session: Session, request: DatasetRequest) -> list[DriftItem]:
    """The open drift items, of every severity, on columns a build request would read."""
    [items] = _open_items_read(
        session, [request.model_dump()], severities=("breaking", "degrading", "info")
    )
    return items


def _open_items_read(
    session: Session, definitions: Sequence[dict[str, Any]], *, severities: Sequence[str]
) -> list[list[DriftItem]]:
    prints = footprints(session, [definition or {} for definition in definitions])
    tables = sorted({table for footprint in prints for table in footprint.tables})
    # Each item with its column's unified column, in the same query (lists stay at a fixed
    # number of statements).
    found: list[tuple[DriftItem, int | None]] = []
    for start in range(0, len(tables), 500):
        found += session.execute(
            select(DriftItem, ColumnMapping.unified_column_id)
            .outerjoin(ColumnMapping, ColumnMapping.column_id == DriftItem.column_id)
            .where(
                DriftItem.resolved_at.is_(None),
                DriftItem.severity.in_(severities),
                DriftItem.table_id.in_(tables[start : start + 500]),
            )
        ).all()
    found.sort(key=lambda row: row[0].id)
    items = [item for item, _ in found]
    unified = _with_would_be_mapped(
        items, {item.column_id: u for item, u in found if item.column_id and u is not None}
    )
    return [
        [
            item
            for item in items
            if footprint.reads(item.table_id, item.column_id, unified.get(item.column_id or 0))
        ]
        for footprint in prints
    ]
