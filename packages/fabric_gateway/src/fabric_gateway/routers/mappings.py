"""Unified columns, column mappings and value mappings."""

from __future__ import annotations

from fabric_core import mapping
from fabric_core.schemas import (
    ColumnMappingCreate,
    ColumnMappingPublic,
    UnifiedColumnCreate,
    UnifiedColumnPublic,
    UnifiedColumnUpdate,
    ValueMappingCreate,
    ValueMappingPublic,
)
from fabric_web.common import ReadSessionDep, SessionDep
from fabric_web.paging import PageDep, page_answer
from fastapi import APIRouter, Response

from fabric_gateway.audit_log import AuditNoteDep
from fabric_gateway.auth import EDITOR, VIEWER

router = APIRouter(prefix="/api", tags=["mappings"])


@router.post(
    "/unified-columns", status_code=201, response_model=UnifiedColumnPublic, dependencies=[EDITOR]
)
def create_unified_column(
    body: UnifiedColumnCreate, session: SessionDep, note: AuditNoteDep
) -> UnifiedColumnPublic:
    """Define a unified column (a name and logical type shared across sources)."""
    unified = mapping.create_unified_column(session, body)
    note.object_id = str(unified.id)
    return mapping.unified_column_public(session, unified)


@router.get("/unified-columns", response_model=list[UnifiedColumnPublic], dependencies=[VIEWER])
def list_unified_columns(
    session: ReadSessionDep, page: PageDep, response: Response
) -> list[UnifiedColumnPublic]:
    """Unified columns, by name (paged)."""
    return page_answer(response, mapping.list_unified_columns(session, page))


@router.get(
    "/unified-columns/{unified_column_id}",
    response_model=UnifiedColumnPublic,
    dependencies=[VIEWER],
)
def get_unified_column(unified_column_id: int, session: ReadSessionDep) -> UnifiedColumnPublic:
    """One unified column."""
    unified = mapping.get_unified_column(session, unified_column_id)
    return mapping.unified_column_public(session, unified)


@router.patch(
    "/unified-columns/{unified_column_id}",
    response_model=UnifiedColumnPublic,
    dependencies=[EDITOR],
)
def update_unified_column(
    unified_column_id: int, body: UnifiedColumnUpdate, session: SessionDep
) -> UnifiedColumnPublic:
    """Rename or retype a unified column."""
    unified = mapping.update_unified_column(session, unified_column_id, body)
    return mapping.unified_column_public(session, unified)


@router.delete("/unified-columns/{unified_column_id}", status_code=204, dependencies=[EDITOR])
def delete_unified_column(unified_column_id: int, session: SessionDep) -> Response:
    """Delete a unified column and the column mappings to it."""
    mapping.delete_unified_column(session, unified_column_id)
    return Response(status_code=204)


@router.post(
    "/column-mappings", status_code=201, response_model=ColumnMappingPublic, dependencies=[EDITOR]
)
def create_column_mapping(
    body: ColumnMappingCreate, session: SessionDep, note: AuditNoteDep
) -> ColumnMappingPublic:
    """Map a source column to a unified column (a source column maps to at most one)."""
    created = mapping.create_column_mapping(session, body)
    note.object_id = str(created.id)
    return created


@router.get("/column-mappings", response_model=list[ColumnMappingPublic], dependencies=[VIEWER])
def list_column_mappings(
    session: ReadSessionDep,
    page: PageDep,
    response: Response,
    unified_column_id: int | None = None,
    connection_id: int | None = None,
    stale: bool | None = None,
) -> list[ColumnMappingPublic]:
    """Column mappings; ``stale=true`` lists those whose source column was removed (paged)."""
    paged = mapping.list_column_mappings(
        session,
        unified_column_id=unified_column_id,
        connection_id=connection_id,
        stale=stale,
        page=page,
    )
    return page_answer(response, paged)


@router.get(
    "/column-mappings/{mapping_id}", response_model=ColumnMappingPublic, dependencies=[VIEWER]
)
def get_column_mapping(mapping_id: int, session: ReadSessionDep) -> ColumnMappingPublic:
    """One column mapping."""
    return mapping.get_column_mapping(session, mapping_id)


@router.delete("/column-mappings/{mapping_id}", status_code=204, dependencies=[EDITOR])
def delete_column_mapping(mapping_id: int, session: SessionDep) -> Response:
    """Remove a column mapping."""
    mapping.delete_column_mapping(session, mapping_id)
    return Response(status_code=204)


@router.post(
    "/value-mappings",
    status_code=201,
    response_model=ValueMappingPublic | list[ValueMappingPublic],
    dependencies=[EDITOR],
)
def create_value_mappings(
    body: ValueMappingCreate, session: SessionDep, note: AuditNoteDep
) -> ValueMappingPublic | list[ValueMappingPublic]:
    """Map a code of a source column to its meaning; ``mappings`` adds many at once."""
    created = mapping.create_value_mappings(session, body)
    public = [ValueMappingPublic.model_validate(m) for m in created]
    note.object_id = ",".join(str(m.id) for m in public)
    return public if body.mappings is not None else public[0]


@router.get("/value-mappings", response_model=list[ValueMappingPublic], dependencies=[VIEWER])
def list_value_mappings(
    session: ReadSessionDep, page: PageDep, response: Response, column_id: int | None = None
) -> list[ValueMappingPublic]:
    """Value mappings, optionally of one source column (paged)."""
    paged = mapping.list_value_mappings(session, column_id=column_id, page=page)
    return page_answer(response, paged.map(ValueMappingPublic.model_validate))


@router.delete("/value-mappings/{value_mapping_id}", status_code=204, dependencies=[EDITOR])
def delete_value_mapping(value_mapping_id: int, session: SessionDep) -> Response:
    """Remove a value mapping."""
    mapping.delete_value_mapping(session, value_mapping_id)
    return Response(status_code=204)
