"""What candidate columns are compared with: a unified column and the columns mapped to it."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from fabric_core.models import ColumnMapping, UnifiedColumn
from fabric_core.suggestions.inventory import ColumnInfo, columns_by_id
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
    pairs = session.execute(select(ColumnMapping.unified_column_id, ColumnMapping.column_id)).all()
    infos = {info.id: info for info in columns_by_id(session, [c for _, c in pairs])}
    mapped: dict[int, list[ColumnInfo]] = {}
    for unified_id, column_id in pairs:
        if column_id in infos:
            mapped.setdefault(unified_id, []).append(infos[column_id])
    return [(u, reference_of(u, mapped.get(u.id, []))) for u in unified_columns]
