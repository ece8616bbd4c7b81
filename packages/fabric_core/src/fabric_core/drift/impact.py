"""Drift items: found from what a sync changed, resolved from what the catalog is now.

An item is opened when a change happens (a mapped column removed or retyped, a nullable change,
a new column that would be mapped, a new unmapped code) and stays open until its cause is gone,
which fabric_core.drift.resolve checks after every sync of the connection and after every mapping
change. At most one item is open per column and kind: a repeated finding updates it.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import exists, func, select, update
from sqlalchemy.orm import Session

from fabric_core.drift.candidates import forget_names, would_map_many
from fabric_core.drift.datasets import affected_datasets
from fabric_core.drift.kinds import (
    BREAKING,
    COLUMN_REMOVED,
    COLUMN_RETYPED,
    DEGRADING,
    INFO,
    NEW_COLUMN,
    NULLABLE_CHANGED,
    TABLE_REMOVED,
    UNMAPPED_CODES,
    castable,
)
from fabric_core.drift.resolve import reevaluate
from fabric_core.models import (
    CatalogColumn,
    CatalogTable,
    ColumnMapping,
    Connection,
    DriftItem,
    UnifiedColumn,
    utcnow,
)
from fabric_core.suggestions.inventory import column_info, select_columns

if TYPE_CHECKING:
    from fabric_core.catalog.change_events import MappedColumn

log = logging.getLogger(__name__)

# New columns scored per sync at most, and the time that scoring may take: it runs inside the
# sync's write transaction (on SQLite the whole database's write lock), and each new column is
# scored against every unified column. The lowest ids first; the rest are logged.
NEW_COLUMNS_EVALUATED = 2000
NEW_COLUMNS_SECONDS = 5.0
_SCORED_AT_ONCE = 100  # new columns scored between looks at the clock


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
    """Columns added since the last ones new-column drift checked (the connection's
    ``drift_checked_column_id``) that would be mapped; none on a connection's first harvest,
    where every column is new. At most ``NEW_COLUMNS_EVALUATED`` are scored per sync, for at
    most ``NEW_COLUMNS_SECONDS`` (lowest ids first), as this runs while the sync holds its
    write transaction; the next syncs check the rest."""
    checked_through = session.scalar(
        select(Connection.drift_checked_column_id).where(Connection.id == connection_id)
    )
    if checked_through is None:  # the first harvest: every column is new, none is checked
        _checked_through(session, connection_id, _highest_column_id(session, connection_id))
        return []
    if session.scalar(select(exists().where(UnifiedColumn.id.is_not(None)))) is not True:
        # Nothing to be mapped to: what is new now is not new when a unified column comes.
        highest = _highest_column_id(session, connection_id, above=checked_through)
        _checked_through(session, connection_id, highest)
        return []
    new_columns = select_columns().where(
        CatalogTable.connection_id == connection_id,
        CatalogColumn.id > checked_through,
        CatalogColumn.removed_at.is_(None),
        CatalogTable.removed_at.is_(None),
        ~exists().where(ColumnMapping.column_id == CatalogColumn.id),
    )
    columns = [
        column_info(row) for row in session.execute(new_columns.limit(NEW_COLUMNS_EVALUATED + 1))
    ]
    total = len(columns)
    if total > NEW_COLUMNS_EVALUATED:
        columns = columns[:NEW_COLUMNS_EVALUATED]
        total = session.scalar(
            select(func.count()).select_from(new_columns.order_by(None).subquery())
        )
    deadline = time.monotonic() + NEW_COLUMNS_SECONDS
    would_be: dict[int, UnifiedColumn] = {}
    evaluated = 0
    while evaluated < len(columns) and (evaluated == 0 or time.monotonic() < deadline):
        would_be |= would_map_many(session, columns[evaluated : evaluated + _SCORED_AT_ONCE])
        evaluated = min(len(columns), evaluated + _SCORED_AT_ONCE)
    columns = columns[:evaluated]
    if columns:
        _checked_through(session, connection_id, columns[-1].id)
    if total and total > evaluated:
        log.warning(
            "Connection %s: %s of %s new columns left for the next syncs' new-column drift "
            "check (at most %s columns and %s s per sync).",
            connection_id,
            total - evaluated,
            total,
            NEW_COLUMNS_EVALUATED,
            NEW_COLUMNS_SECONDS,
        )
    findings: list[Finding] = []
    for column in columns:
        unified = would_be.get(column.id)
        if unified is None:
            continue
        name = f"{column.schema}.{column.table}.{column.name}"
        findings.append(
            Finding(
                INFO,
                NEW_COLUMN,
                column.table_id,
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


def _highest_column_id(session: Session, connection_id: int, above: int = 0) -> int | None:
    return session.scalar(
        select(func.max(CatalogColumn.id))
        .join(CatalogTable, CatalogTable.id == CatalogColumn.table_id)
        .where(CatalogTable.connection_id == connection_id, CatalogColumn.id > above)
    )


def _checked_through(session: Session, connection_id: int, column_id: int | None) -> None:
    if column_id is not None:
        session.execute(
            update(Connection)
            .where(Connection.id == connection_id)
            .values(drift_checked_column_id=column_id)
        )


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
