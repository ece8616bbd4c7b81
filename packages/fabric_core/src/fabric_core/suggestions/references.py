"""What candidate columns are compared with: a unified column and the columns mapped to it."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from fabric_core.models import CatalogColumn, ColumnMapping, UnifiedColumn
from fabric_core.suggestions.inventory import ColumnInfo, column_info, select_columns
from fabric_core.suggestions.names import concepts
from fabric_core.suggestions.scoring import Reference


def reference_of(unified: UnifiedColumn, mapped: list[ColumnInfo]) -> Reference:
    return Reference(
        label=unified.name,
        tokens=concepts(unified.name),
        logical_type=unified.logical_type,
        description_tokens=concepts(unified.description or ""),
        mapped=tuple(mapped),
    )


def all_references(session: Session) -> list[tuple[UnifiedColumn, Reference]]:
    """Every unified column with what candidates are compared with, in two queries."""
    unified_columns = list(session.scalars(select(UnifiedColumn).order_by(UnifiedColumn.id)))
    # A join, not an IN list of every mapped column: that would pass the database's
    # parameter limit (65,535 on PostgreSQL) in a large catalog.
    rows = session.execute(
        select_columns()
        .join(ColumnMapping, ColumnMapping.column_id == CatalogColumn.id)
        .add_columns(ColumnMapping.unified_column_id)
    )
    mapped: dict[int, list[ColumnInfo]] = {}
    for *fields, unified_id in rows:
        mapped.setdefault(unified_id, []).append(column_info(fields))
    return [(u, reference_of(u, mapped.get(u.id, []))) for u in unified_columns]
