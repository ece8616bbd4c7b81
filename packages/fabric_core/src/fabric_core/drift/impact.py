"""Drift items: found from what a sync changed, resolved from what the catalog is now.

An item is opened when a change happens (a mapped column removed or retyped, a nullable change,
a new column that would be mapped, a new unmapped code) and stays open until its cause is gone,
which :func:`reevaluate` checks after every sync of the connection and after every mapping
change. At most one item is open per column and kind: a repeated finding updates it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import exists, func, select
from sqlalchemy.orm import Session

from fabric_core.catalog.harvest import LogicalType
from fabric_core.datasets.types import supertype
from fabric_core.drift.candidates import forget_names, would_map
from fabric_core.drift.datasets import affected_datasets
from fabric_core.models import (
    CatalogColumn,
    CatalogSchema,
    CatalogTable,
    ColumnMapping,
    Connection,
    DriftItem,
    UnifiedColumn,
    ValueMapping,
    utcnow,
)

if TYPE_CHECKING:
    from fabric_core.catalog.change_events import MappedColumn

BREAKING, DEGRADING, INFO = "breaking", "degrading", "info"
SEVERITIES = (BREAKING, DEGRADING, INFO)

COLUMN_REMOVED = "column_removed"
TABLE_REMOVED = "table_removed"
COLUMN_RETYPED = "column_retyped"
NULLABLE_CHANGED = "nullable_changed"
UNMAPPED_CODES = "unmapped_codes"
NEW_COLUMN = "new_column"
VALUE_SAMPLE_FAILED = "value_sample_failed"

# Codes kept in an item's details: enough to act on, bounded whatever the source holds.
MAX_CODES_SHOWN = 100


def castable(source_type: str, target_type: str) -> bool:
    """Whether every value of ``source_type`` becomes a value of ``target_type`` under the
    dataset casts (fabric_core.datasets.transform.cast_expr), none of them null.

    That is the case when the target is text, when the target already holds the source (the
    supertype of both is the target: integer into decimal or float, date into datetime), and
    for datetime into date (the day is kept). Text into anything else, or a float into an
    integer, can fail value by value: not castable.
    """
    if target_type == source_type or target_type == LogicalType.STRING:
        return True
    if (source_type, target_type) == (LogicalType.DATETIME, LogicalType.DATE):
        return True
    try:
        return supertype([source_type, target_type]) == LogicalType(target_type)
    except ValueError:  # a type this version does not know
        return False


@dataclass(slots=True)
class Finding:
    severity: str
    kind: str
    table_id: int
    column_id: int | None
    column_name: str
    message: str
    details: dict[str, Any] = field(default_factory=dict)


def record_sync_drift(
    session: Session,
    connection_id: int,
    mapped_before: dict[int, MappedColumn],
    mapped_after: dict[int, MappedColumn],
    job_id: str | None,
) -> list[DriftItem]:
    """Open (or update) the items a sync's stored changes call for and resolve the ones whose
    cause it removed, in the sync's transaction. Returns the items opened or worsened now."""
    forget_names(session)
    findings = _mapped_column_findings(session, mapped_before, mapped_after)
    findings += _new_column_findings(session, connection_id)
    reported = record_findings(session, connection_id, findings, job_id)
    found_now = {(f.table_id, f.column_id, f.kind) for f in findings}
    reevaluate(session, connection_id=connection_id, skip=found_now)
    return reported


def record_findings(
    session: Session, connection_id: int, findings: list[Finding], job_id: str | None
) -> list[DriftItem]:
    """Store ``findings`` as items; returns those that are new or say more than before (for
    alerts: an unchanged open item is not reported again)."""
    if not findings:
        return []
    now = utcnow()
    # The open items of the findings' tables, loaded once: a sync that breaks every table
    # finds thousands of items, and a query (with its autoflush) per finding costs seconds.
    open_items: dict[tuple[int, int | None, str], DriftItem] = {}
    table_ids = sorted({finding.table_id for finding in findings})
    for start in range(0, len(table_ids), 500):
        for item in session.scalars(
            select(DriftItem).where(
                DriftItem.connection_id == connection_id,
                DriftItem.table_id.in_(table_ids[start : start + 500]),
                DriftItem.resolved_at.is_(None),
            )
        ):
            open_items[(item.table_id, item.column_id, item.kind)] = item
    reported: list[DriftItem] = []
    touched: list[DriftItem] = []
    with session.no_autoflush:
        for finding in findings:
            key = (finding.table_id, finding.column_id, finding.kind)
            item = open_items.get(key)
            if item is None:
                item = DriftItem(
                    connection_id=connection_id,
                    table_id=finding.table_id,
                    column_id=finding.column_id,
                    kind=finding.kind,
                    created_at=now,
                    datasets=[],
                )
                session.add(item)
                open_items[key] = item
                reported.append(item)
            elif _says_more(item, finding):
                reported.append(item)
            item.severity = finding.severity
            item.column_name = finding.column_name
            item.message = finding.message
            item.details = finding.details
            item.job_id = job_id
            item.updated_at = now
            touched.append(item)
        for item, names in zip(touched, affected_datasets(session, touched), strict=True):
            item.datasets = names
    session.flush()
    return reported


def _says_more(item: DriftItem, finding: Finding) -> bool:
    if item.severity != finding.severity:
        return True
    if finding.kind == UNMAPPED_CODES:
        before = set(item.details.get("codes", []))
        return not set(finding.details.get("codes", [])) <= before
    return item.details != finding.details


def _mapped_column_findings(
    session: Session, before: dict[int, MappedColumn], after: dict[int, MappedColumn]
) -> list[Finding]:
    changed = [
        (old, new)
        for mapping_id, old in before.items()
        if (new := after.get(mapping_id)) is not None and not old.removed
    ]
    removed_tables = set(
        session.scalars(
            select(CatalogTable.id).where(
                CatalogTable.id.in_({new.table_id for _, new in changed if new.removed}),
                CatalogTable.removed_at.is_not(None),
            )
        )
    )
    findings: list[Finding] = []
    for old, new in changed:
        name = f"{new.schema}.{new.table}.{new.column}"
        about = {"unified_column": new.unified_column, "unified_column_id": new.unified_column_id}
        if new.removed:
            table_gone = new.table_id in removed_tables
            findings.append(
                Finding(
                    BREAKING,
                    TABLE_REMOVED if table_gone else COLUMN_REMOVED,
                    new.table_id,
                    new.column_id,
                    name,
                    (
                        f"Table {new.schema}.{new.table} was removed from its source; its column "
                        f"{new.column} is mapped to {new.unified_column}."
                        if table_gone
                        else f"Column {name}, mapped to {new.unified_column}, was removed from "
                        "its source."
                    ),
                    about,
                )
            )
            continue
        if new.logical_type != old.logical_type and not castable(
            new.logical_type, new.unified_type
        ):
            findings.append(
                Finding(
                    BREAKING,
                    COLUMN_RETYPED,
                    new.table_id,
                    new.column_id,
                    name,
                    f"Column {name} changed from {old.logical_type} to {new.logical_type}, which "
                    f"does not cast to {new.unified_column} ({new.unified_type}).",
                    about
                    | {
                        "old_type": old.logical_type,
                        "new_type": new.logical_type,
                        "unified_type": new.unified_type,
                    },
                )
            )
        if new.nullable != old.nullable:
            findings.append(
                Finding(
                    DEGRADING,
                    NULLABLE_CHANGED,
                    new.table_id,
                    new.column_id,
                    name,
                    f"Column {name}, mapped to {new.unified_column}, is now "
                    f"{'nullable' if new.nullable else 'not nullable'}.",
                    about | {"old_nullable": old.nullable, "new_nullable": new.nullable},
                )
            )
    return findings


def _new_column_findings(session: Session, connection_id: int) -> list[Finding]:
    """Columns this sync added (created at the sync's time, which it also stored as
    ``last_synced_at``) that would be mapped; none on a connection's first harvest, where
    every column is new."""
    synced_at = session.scalar(
        select(Connection.last_synced_at).where(Connection.id == connection_id)
    )
    if synced_at is None:
        return []
    of_connection = (
        select(CatalogColumn, CatalogTable, CatalogSchema.name)
        .join(CatalogTable, CatalogTable.id == CatalogColumn.table_id)
        .join(CatalogSchema, CatalogSchema.id == CatalogTable.schema_id)
        .where(CatalogTable.connection_id == connection_id)
    )
    harvested_before = session.scalar(
        select(
            exists().where(
                CatalogColumn.table_id == CatalogTable.id,
                CatalogTable.connection_id == connection_id,
                CatalogColumn.created_at < synced_at,
            )
        )
    )
    if not harvested_before:
        return []
    new_columns = session.execute(
        of_connection.where(
            CatalogColumn.created_at >= synced_at,
            CatalogColumn.removed_at.is_(None),
            CatalogTable.removed_at.is_(None),
            ~exists().where(ColumnMapping.column_id == CatalogColumn.id),
        ).order_by(CatalogColumn.id)
    )
    findings: list[Finding] = []
    for column, table, schema in new_columns:
        unified = would_map(session, column)
        if unified is None:
            continue
        name = f"{schema}.{table.name}.{column.name}"
        findings.append(
            Finding(
                INFO,
                NEW_COLUMN,
                table.id,
                column.id,
                name,
                f"New column {name} looks like {unified.name}; map it to include it.",
                {
                    "unified_column": unified.name,
                    "unified_column_id": unified.id,
                    "logical_type": column.logical_type,
                },
            )
        )
    return findings


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
    now = utcnow()
    resolved = 0
    for item in items:
        state = states.get(item.column_id) if item.column_id is not None else None
        if state is None or not _still_there(session, item, state):
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


def _still_there(session: Session, item: DriftItem, state: _ColumnState) -> bool:
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
        column = session.get(CatalogColumn, item.column_id)
        return column is not None and would_map(session, column) is not None
    if kind == VALUE_SAMPLE_FAILED:
        # Open until a later sample of the column succeeds (fabric_core.drift.values).
        return state.live and bool(state.value_mappings)
    return True


def item_summary(item: DriftItem) -> dict[str, Any]:
    """What an alert says of an item."""
    return {
        "id": item.id,
        "severity": item.severity,
        "kind": item.kind,
        "column": item.column_name,
        "message": item.message,
        "datasets": list(item.datasets),
    }
