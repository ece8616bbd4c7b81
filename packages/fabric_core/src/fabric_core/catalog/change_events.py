"""The events a sync records with the catalog changes it stores: ``catalog.changed`` (counts)
and ``mapping.broken`` for each column mapping whose source column it removed or retyped."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from fabric_core.drift.impact import item_summary, record_sync_drift
from fabric_core.drift.kinds import INFO
from fabric_core.events import record_event
from fabric_core.models import (
    CatalogColumn,
    CatalogSchema,
    CatalogTable,
    ColumnMapping,
    Connection,
    Job,
    UnifiedColumn,
)

if TYPE_CHECKING:
    from fabric_core.catalog.sync import SyncStats

MAX_ITEMS_IN_EVENT = 50
CHANGE_COUNTS = (
    "tables_added",
    "tables_changed",
    "tables_removed",
    "columns_added",
    "columns_changed",
    "columns_removed",
)


@dataclass(frozen=True, slots=True)
class MappedColumn:
    mapping_id: int
    unified_column_id: int
    unified_column: str
    unified_type: str
    schema: str
    table: str
    column: str
    logical_type: str
    removed: bool
    # What fabric_core.drift compares too (defaults keep older callers working).
    column_id: int = 0
    table_id: int = 0
    nullable: bool = True


def mapped_columns(session: Session, connection_id: int) -> dict[int, MappedColumn]:
    """The connection's mapped source columns as stored now, by mapping id."""
    rows = session.execute(
        select(
            ColumnMapping.id,
            UnifiedColumn.id,
            UnifiedColumn.name,
            UnifiedColumn.logical_type,
            CatalogSchema.name,
            CatalogTable.name,
            CatalogColumn.name,
            CatalogColumn.logical_type,
            (CatalogColumn.removed_at.is_not(None)) | (CatalogTable.removed_at.is_not(None)),
            CatalogColumn.id,
            CatalogTable.id,
            CatalogColumn.nullable,
        )
        .join(CatalogColumn, CatalogColumn.id == ColumnMapping.column_id)
        .join(CatalogTable, CatalogTable.id == CatalogColumn.table_id)
        .join(CatalogSchema, CatalogSchema.id == CatalogTable.schema_id)
        .join(UnifiedColumn, UnifiedColumn.id == ColumnMapping.unified_column_id)
        .where(CatalogTable.connection_id == connection_id)
    )
    return {
        row[0]: MappedColumn(
            *row[:8], removed=bool(row[8]), column_id=row[9], table_id=row[10], nullable=row[11]
        )
        for row in rows
    }


def record_sync_events(
    session: Session,
    connection_id: int,
    stats: SyncStats,
    mapped_before: dict[int, MappedColumn],
    job_id: str | None,
) -> None:
    """Record, in the sync's own transaction, what its stored changes mean to operators."""
    about: dict[str, Any] = {
        "connection_id": connection_id,
        "connection_name": session.scalar(
            select(Connection.name).where(Connection.id == connection_id)
        ),
    }
    if job_id is not None:
        about |= {
            "job_id": job_id,
            "kind": "sync",
            "orchestrator": session.scalar(select(Job.orchestrator).where(Job.id == job_id)),
        }
    counts: dict[str, Any] = {name: getattr(stats, name) for name in CHANGE_COUNTS}
    mapped_after = mapped_columns(session, connection_id)
    drift = record_sync_drift(session, connection_id, mapped_before, mapped_after, job_id)
    if any(counts.values()):
        if impact := [item_summary(item) for item in drift if item.severity != INFO]:
            # What the change breaks or degrades (see fabric_core.drift), first items only.
            counts["drift"] = impact[:MAX_ITEMS_IN_EVENT]
        record_event(session, "catalog.changed", {**about, **counts})
    for mapping_id, before in mapped_before.items():
        after = mapped_after.get(mapping_id)
        if before.removed or after is None:
            continue  # already broken before this sync, or the mapping itself is gone
        if after.removed:
            reason = "removed"
        elif after.logical_type != before.logical_type:
            reason = "retyped"
        else:
            continue
        record_event(
            session,
            "mapping.broken",
            {
                **about,
                "reason": reason,
                "mapping_id": mapping_id,
                "unified_column": before.unified_column,
                "unified_column_id": before.unified_column_id,
                "unified_type": before.unified_type,
                "source_column": f"{before.schema}.{before.table}.{before.column}",
                "old_type": before.logical_type,
                "new_type": after.logical_type if reason == "retyped" else None,
            },
        )
