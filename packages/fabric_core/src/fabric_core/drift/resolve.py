"""Resolving drift items: each open item is checked against what the catalog and the
mappings are now, after every sync of its connection and every mapping change."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from fabric_core.drift.candidates import forget_names, would_map_many
from fabric_core.drift.kinds import (
    COLUMN_REMOVED,
    COLUMN_RETYPED,
    NEW_COLUMN,
    NULLABLE_CHANGED,
    TABLE_REMOVED,
    UNMAPPED_CODES,
    VALUE_SAMPLE_FAILED,
    castable,
)
from fabric_core.models import (
    CatalogColumn,
    CatalogTable,
    ColumnMapping,
    DriftItem,
    UnifiedColumn,
    ValueMapping,
    utcnow,
)
from fabric_core.suggestions.inventory import columns_by_id


@dataclass(slots=True)
class _ColumnState:
    live: bool
    logical_type: str
    nullable: bool
    unified_type: str | None
    value_mappings: int


def reevaluate(
    session: Session,
    *,
    connection_id: int | None = None,
    column_ids: list[int] | None = None,
    skip: set[tuple[int, int | None, str]] | None = None,
) -> int:
    """Resolve the open items (of a connection, of some columns, or all) whose cause is gone:
    the column or table is back, the type casts again, the nullable flag is as before, the
    codes are mapped, or the mapping that made it matter was deleted (``skip``: the
    (table id, column id, kind) of items found present a moment ago). Returns how many."""
    forget_names(session)
    query = select(DriftItem).where(DriftItem.resolved_at.is_(None))
    if connection_id is not None:
        query = query.where(DriftItem.connection_id == connection_id)
    if column_ids is not None:
        if not column_ids:
            return 0
        query = query.where(DriftItem.column_id.in_(column_ids))
    items = [
        item
        for item in session.scalars(query)
        if not skip or (item.table_id, item.column_id, item.kind) not in skip
    ]
    if not items:
        return 0
    states = _column_states(session, [i.column_id for i in items if i.column_id is not None])
    would_be = _would_be_mapped(session, items, states)
    now = utcnow()
    resolved = 0
    for item in items:
        state = states.get(item.column_id) if item.column_id is not None else None
        if state is None or not _still_there(session, item, state, would_be):
            item.resolved_at = now
            item.updated_at = now
            resolved += 1
    session.flush()
    return resolved


def _column_states(session: Session, column_ids: list[int]) -> dict[int, _ColumnState]:
    mapping_count = (
        select(func.count())
        .where(ValueMapping.column_id == CatalogColumn.id)
        .correlate(CatalogColumn)
        .scalar_subquery()
    )
    states: dict[int, _ColumnState] = {}
    unique = list(dict.fromkeys(column_ids))
    for start in range(0, len(unique), 500):
        rows = session.execute(
            select(
                CatalogColumn.id,
                (CatalogColumn.removed_at.is_(None)) & (CatalogTable.removed_at.is_(None)),
                CatalogColumn.logical_type,
                CatalogColumn.nullable,
                UnifiedColumn.logical_type,
                mapping_count,
            )
            .join(CatalogTable, CatalogTable.id == CatalogColumn.table_id)
            .outerjoin(ColumnMapping, ColumnMapping.column_id == CatalogColumn.id)
            .outerjoin(UnifiedColumn, UnifiedColumn.id == ColumnMapping.unified_column_id)
            .where(CatalogColumn.id.in_(unique[start : start + 500]))
        )
        for column_id, live, logical, nullable, unified_type, value_mappings in rows:
            states[column_id] = _ColumnState(
                bool(live), logical, bool(nullable), unified_type, value_mappings or 0
            )
    return states


def _would_be_mapped(
    session: Session, items: list[DriftItem], states: dict[int, _ColumnState]
) -> set[int]:
    """The live unmapped columns of ``new_column`` items that suggestions would still map,
    scored together (one set of references, dismissals read in chunks)."""
    ids = sorted(
        {
            item.column_id
            for item in items
            if item.kind == NEW_COLUMN
            and item.column_id is not None
            and (state := states.get(item.column_id)) is not None
            and state.live
            and state.unified_type is None
        }
    )
    found: set[int] = set()
    for start in range(0, len(ids), 500):
        found |= set(would_map_many(session, columns_by_id(session, ids[start : start + 500])))
    return found


def _still_there(
    session: Session, item: DriftItem, state: _ColumnState, would_be: set[int]
) -> bool:
    mapped = state.unified_type is not None
    kind = item.kind
    if kind in (COLUMN_REMOVED, TABLE_REMOVED):
        return mapped and not state.live
    if kind == COLUMN_RETYPED:
        return mapped and not castable(state.logical_type, str(state.unified_type))
    if kind == NULLABLE_CHANGED:
        return mapped and state.live and state.nullable != item.details.get("old_nullable")
    if kind == UNMAPPED_CODES:
        if not state.live or not state.value_mappings:
            return False
        codes = list(item.details.get("codes", []))
        known = set(
            session.scalars(
                select(ValueMapping.source_value).where(
                    ValueMapping.column_id == item.column_id,
                    ValueMapping.source_value.in_(codes),
                )
            )
        )
        return any(code not in known for code in codes)
    if kind == NEW_COLUMN:
        if not state.live or mapped:
            return False
        return item.column_id in would_be
    if kind == VALUE_SAMPLE_FAILED:
        # Open until a later sample of the column succeeds (fabric_core.drift.values).
        return state.live and bool(state.value_mappings)
    return True
