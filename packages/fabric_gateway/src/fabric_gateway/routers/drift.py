"""Drift items: what catalog changes break or degrade, and which datasets they affect."""

from __future__ import annotations

from fabric_core.drift.listing import DriftItemPublic, Severity, list_drift
from fabric_core.tokens import Role
from fabric_web.common import ReadSessionDep
from fabric_web.paging import PageDep, page_answer
from fastapi import APIRouter, Query, Response

from fabric_gateway.auth import VIEWER, PrincipalDep

router = APIRouter(prefix="/api", tags=["drift"])


@router.get("/drift", response_model=list[DriftItemPublic], dependencies=[VIEWER])
def get_drift(
    session: ReadSessionDep,
    principal: PrincipalDep,
    page: PageDep,
    response: Response,
    connection_id: int | None = Query(default=None, ge=1),
    dataset: str | None = Query(default=None, min_length=1, max_length=128),
    severity: Severity | None = None,
    include_resolved: bool = False,
) -> list[DriftItemPublic]:
    """Drift items, newest first (paged): open ones, or all with ``include_resolved=true``;
    of one connection, of the columns one dataset reads, or of one severity. An unknown
    connection id or dataset name answers 404. Source values (``details.codes``) are answered
    to editors and admins only, as column values are."""
    items = page_answer(
        response,
        list_drift(
            session,
            connection_id=connection_id,
            dataset=dataset,
            severity=severity,
            include_resolved=include_resolved,
            page=page,
        ),
    )
    if principal.role.includes(Role.EDITOR):
        return items
    return [_without_source_values(item) for item in items]


def _without_source_values(item: DriftItemPublic) -> DriftItemPublic:
    if "codes" not in item.details:
        return item
    return item.model_copy(
        update={"details": {k: v for k, v in item.details.items() if k != "codes"}}
    )
