"""``GET /api/drift``: drift items, newest first, with the datasets each one affects."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from fabric_core.connections import get_connection
from fabric_core.datasets.service import get_dataset
from fabric_core.drift.datasets import affected_datasets, footprints, item_unified_ids
from fabric_core.models import DriftItem
from fabric_core.paging import Page, Paged

Severity = Literal["breaking", "degrading", "info"]


class DriftItemPublic(BaseModel):
    id: int
    severity: Severity
    kind: str
    column_id: int | None
    table_id: int
    connection_id: int
    column: str
    message: str
    details: dict[str, Any]
    # Open items: the datasets whose definitions read the column now; resolved ones: those
    # it affected when last found.
    datasets: list[str]
    job_id: str | None
    detected_at: datetime
    updated_at: datetime
    resolved_at: datetime | None


def list_drift(
    session: Session,
    *,
    connection_id: int | None = None,
    dataset: str | None = None,
    severity: Severity | None = None,
    include_resolved: bool = False,
    page: Page = Page(),
) -> Paged[DriftItemPublic]:
    """Drift items (open ones unless ``include_resolved``), newest first.

    Raises:
        NotFoundError: an unknown connection id or dataset name.
    """
    query = select(DriftItem).order_by(DriftItem.id.desc())
    if connection_id is not None:
        get_connection(session, connection_id)
        query = query.where(DriftItem.connection_id == connection_id)
    if severity is not None:
        query = query.where(DriftItem.severity == severity)
    if not include_resolved:
        query = query.where(DriftItem.resolved_at.is_(None))
    if dataset is None:
        items = page.scalars(session, query)
        return Paged(_public(session, items), page.total(session, query))
    # Whether a dataset reads an item's column depends on its definition and the mappings:
    # decided here, on the items of the tables it reads (not a page of all items).
    [footprint] = footprints(session, [get_dataset(session, dataset).definition or {}])
    candidates = list(
        session.scalars(query.where(DriftItem.table_id.in_(sorted(footprint.tables))))
    )
    unified = item_unified_ids(session, candidates)
    matching = [
        item
        for item in candidates
        if footprint.reads(item.table_id, item.column_id, unified.get(item.column_id or 0))
    ]
    chosen = matching[page.offset : page.offset + page.limit]
    return Paged(_public(session, chosen), len(matching))


def _public(session: Session, items: list[DriftItem]) -> list[DriftItemPublic]:
    open_items = [item for item in items if item.resolved_at is None]
    now_affected = dict(
        zip((i.id for i in open_items), affected_datasets(session, open_items), strict=True)
    )
    return [
        DriftItemPublic(
            id=item.id,
            severity=item.severity,  # type: ignore[arg-type]
            kind=item.kind,
            column_id=item.column_id,
            table_id=item.table_id,
            connection_id=item.connection_id,
            column=item.column_name,
            message=item.message,
            details=item.details or {},
            datasets=now_affected.get(item.id, list(item.datasets or [])),
            job_id=item.job_id,
            detected_at=item.created_at,
            updated_at=item.updated_at,
            resolved_at=item.resolved_at,
        )
        for item in items
    ]
