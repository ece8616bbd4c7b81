"""Suggested column matches: for a unified column, and as groups across tables."""

from __future__ import annotations

from fabric_core.errors import InvalidInputError
from fabric_core.runtime import Runtime
from fabric_core.schemas import ColumnMappingPublic
from fabric_core.suggestions import columns as suggestions
from fabric_core.suggestions.groups import suggest_groups
from fabric_core.suggestions.samples import Sampler
from fabric_core.suggestions.schemas import (
    AcceptRequest,
    ColumnGroup,
    ColumnSuggestion,
    DismissedColumn,
    DismissRequest,
)
from fabric_web.common import ReadSessionDep, RuntimeDep, SessionDep
from fabric_web.paging import PageDep, page_answer
from fastapi import APIRouter, Query, Response

from fabric_gateway.audit_log import AuditNoteDep
from fabric_gateway.auth import EDITOR, VIEWER

router = APIRouter(prefix="/api", tags=["suggestions"])


def _sampler(runtime: Runtime) -> Sampler:
    return Sampler(
        runtime.session_factory,
        runtime.read_session_factory,
        runtime.box,
        runtime.source_policy,
        runtime.circuits,
    )


@router.get(
    "/unified-columns/{unified_column_id}/suggestions",
    response_model=list[ColumnSuggestion],
    dependencies=[EDITOR],
)
def column_suggestions(
    unified_column_id: int,
    runtime: RuntimeDep,
    limit: int = Query(default=10, ge=1, le=100),
) -> list[dict]:
    """Catalog columns that likely mean this unified column, best first (a score of 0.5 or
    more means "accept this"); not those mapped already or dismissed for it. For editors:
    it reads value samples from the sources with the stored credentials."""
    return suggestions.suggest_columns(
        runtime.read_session_factory, _sampler(runtime), unified_column_id, limit=limit
    )


def _table_ids(raw: list[str]) -> list[int]:
    ids = []
    for item in raw:
        for part in item.split(","):
            if not part.strip():
                continue
            try:
                ids.append(int(part))
            except ValueError:
                raise InvalidInputError(f"table_ids: {part!r} is not a table id.") from None
    return ids


@router.get("/column-suggestions", response_model=list[ColumnGroup], dependencies=[EDITOR])
def column_groups(
    runtime: RuntimeDep,
    table_ids: list[str] = Query(description="2 to 50 table ids: 1,2,3 or repeated."),
) -> list[dict]:
    """Groups of columns across the tables that likely mean the same, each with a proposed
    unified column name and logical type, best first."""
    return suggest_groups(runtime.read_session_factory, _sampler(runtime), _table_ids(table_ids))


@router.get(
    "/unified-columns/{unified_column_id}/suggestions/dismissed",
    response_model=list[DismissedColumn],
    dependencies=[VIEWER],
)
def dismissed(
    unified_column_id: int, session: ReadSessionDep, page: PageDep, response: Response
) -> list[dict]:
    """Columns never suggested again for this unified column (paged)."""
    return page_answer(response, suggestions.list_dismissed(session, unified_column_id, page))


@router.post(
    "/unified-columns/{unified_column_id}/suggestions/dismissed",
    status_code=201,
    response_model=DismissedColumn,
    dependencies=[EDITOR],
)
def dismiss(
    unified_column_id: int, body: DismissRequest, session: SessionDep, note: AuditNoteDep
) -> dict:
    """Dismiss a suggested column: it is not suggested for this unified column again."""
    suggestions.dismiss(session, unified_column_id, body.column_id)
    note.object_id = f"{unified_column_id}:{body.column_id}"
    return suggestions.dismissed_column(session, unified_column_id, body.column_id)


@router.delete(
    "/unified-columns/{unified_column_id}/suggestions/dismissed/{column_id}",
    status_code=204,
    dependencies=[EDITOR],
)
def undismiss(unified_column_id: int, column_id: int, session: SessionDep) -> Response:
    """Undo a dismissal: the column may be suggested again."""
    suggestions.undismiss(session, unified_column_id, column_id)
    return Response(status_code=204)


@router.post(
    "/unified-columns/{unified_column_id}/suggestions/accept",
    status_code=201,
    response_model=list[ColumnMappingPublic],
    dependencies=[EDITOR],
)
def accept(
    unified_column_id: int, body: AcceptRequest, session: SessionDep, note: AuditNoteDep
) -> list[ColumnMappingPublic]:
    """Map the suggested columns to this unified column, all or none (409 when one is
    mapped already, 422 when one does not exist or was removed)."""
    created = suggestions.accept(session, unified_column_id, body.column_ids)
    note.object_id = ",".join(str(m.id) for m in created)
    return created
