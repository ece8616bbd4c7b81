"""Unified columns, column mappings and value mappings: what means the same across sources."""

from __future__ import annotations

from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from fabric_core.drift.resolve import reevaluate
from fabric_core.errors import ConflictError, InvalidInputError, NotFoundError
from fabric_core.models import (
    CatalogColumn,
    CatalogSchema,
    CatalogTable,
    ColumnMapping,
    UnifiedColumn,
    ValueMapping,
)
from fabric_core.paging import Page, Paged
from fabric_core.schemas import (
    ColumnMappingCreate,
    ColumnMappingPublic,
    SourceColumnRef,
    UnifiedColumnCreate,
    UnifiedColumnPublic,
    UnifiedColumnUpdate,
    ValueMappingCreate,
)


def _flush_or_conflict(session: Session, message: str) -> None:
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        raise ConflictError(message) from None


# --- unified columns ---


def get_unified_column(session: Session, unified_column_id: int) -> UnifiedColumn:
    unified = session.get(UnifiedColumn, unified_column_id)
    if unified is None:
        raise NotFoundError(f"No unified column with id {unified_column_id}.")
    return unified


def unified_column_public(session: Session, unified: UnifiedColumn) -> UnifiedColumnPublic:
    count = session.scalar(
        select(func.count()).where(ColumnMapping.unified_column_id == unified.id)
    )
    return UnifiedColumnPublic.model_validate(unified).model_copy(update={"mapped_columns": count})


def create_unified_column(session: Session, data: UnifiedColumnCreate) -> UnifiedColumn:
    unified = UnifiedColumn(**data.model_dump())
    session.add(unified)
    _flush_or_conflict(session, f"A unified column named {data.name!r} already exists.")
    return unified


def list_unified_columns(session: Session, page: Page = Page()) -> Paged[UnifiedColumnPublic]:
    """Unified columns by name, each with its mapping count (one query, not one per column)."""
    counts = (
        select(ColumnMapping.unified_column_id, func.count().label("mapped"))
        .group_by(ColumnMapping.unified_column_id)
        .subquery()
    )
    query = (
        select(UnifiedColumn, func.coalesce(counts.c.mapped, 0))
        .outerjoin(counts, counts.c.unified_column_id == UnifiedColumn.id)
        .order_by(UnifiedColumn.name)
    )
    items = [
        UnifiedColumnPublic.model_validate(unified).model_copy(update={"mapped_columns": mapped})
        for unified, mapped in page.rows(session, query)
    ]
    return Paged(items, page.total(session, select(UnifiedColumn)))


def update_unified_column(
    session: Session, unified_column_id: int, data: UnifiedColumnUpdate
) -> UnifiedColumn:
    unified = get_unified_column(session, unified_column_id)
    changes = data.model_dump(exclude_unset=True)
    for field in ("name", "logical_type"):
        if field in changes and changes[field] is None:
            raise InvalidInputError(f"{field} cannot be cleared.")
    for field, value in changes.items():
        setattr(unified, field, value)
    _flush_or_conflict(session, f"A unified column named {unified.name!r} already exists.")
    reevaluate(session)  # a new type may cast again; a new name may match new columns
    return unified


def delete_unified_column(session: Session, unified_column_id: int) -> None:
    """Delete a unified column; its column mappings go with it (they mean nothing alone)."""
    session.delete(get_unified_column(session, unified_column_id))
    session.flush()
    reevaluate(session)


# --- column mappings ---


def _catalog_column(session: Session, column_id: int) -> CatalogColumn:
    column = session.get(CatalogColumn, column_id)
    if column is None:
        raise InvalidInputError(f"No catalog column with id {column_id}.")
    return column


_MAPPING_QUERY = (
    select(ColumnMapping, UnifiedColumn.name, CatalogColumn, CatalogTable, CatalogSchema.name)
    .join(UnifiedColumn, UnifiedColumn.id == ColumnMapping.unified_column_id)
    .join(CatalogColumn, CatalogColumn.id == ColumnMapping.column_id)
    .join(CatalogTable, CatalogTable.id == CatalogColumn.table_id)
    .join(CatalogSchema, CatalogSchema.id == CatalogTable.schema_id)
)


def _mapping_public(row) -> ColumnMappingPublic:
    mapping, unified_name, column, table, schema_name = row
    return ColumnMappingPublic(
        id=mapping.id,
        column_id=mapping.column_id,
        unified_column_id=mapping.unified_column_id,
        unified_column=unified_name,
        source=SourceColumnRef(
            connection_id=table.connection_id,
            table_id=table.id,
            schema=schema_name,
            table=table.name,
            column=column.name,
        ),
        stale=column.removed_at is not None or table.removed_at is not None,
        created_at=mapping.created_at,
    )


def create_column_mapping(session: Session, data: ColumnMappingCreate) -> ColumnMappingPublic:
    column = _catalog_column(session, data.column_id)
    if session.get(UnifiedColumn, data.unified_column_id) is None:
        raise InvalidInputError(f"No unified column with id {data.unified_column_id}.")
    if column.removed_at is not None:
        raise InvalidInputError(f"Column {column.id} ({column.name}) was removed from its source.")
    mapping = ColumnMapping(column_id=data.column_id, unified_column_id=data.unified_column_id)
    session.add(mapping)
    _flush_or_conflict(session, f"Column {data.column_id} is already mapped to a unified column.")
    reevaluate(session, column_ids=[data.column_id])
    return get_column_mapping(session, mapping.id)


def get_column_mapping(session: Session, mapping_id: int) -> ColumnMappingPublic:
    row = session.execute(_MAPPING_QUERY.where(ColumnMapping.id == mapping_id)).first()
    if row is None:
        raise NotFoundError(f"No column mapping with id {mapping_id}.")
    return _mapping_public(row)


def list_column_mappings(
    session: Session,
    *,
    unified_column_id: int | None = None,
    connection_id: int | None = None,
    stale: bool | None = None,
    page: Page = Page(),
) -> Paged[ColumnMappingPublic]:
    query = _MAPPING_QUERY.order_by(ColumnMapping.id)
    if unified_column_id is not None:
        query = query.where(ColumnMapping.unified_column_id == unified_column_id)
    if connection_id is not None:
        query = query.where(CatalogTable.connection_id == connection_id)
    if stale is not None:
        # In SQL, not after the fact, so that pages and the total count the same rows.
        removed = or_(CatalogColumn.removed_at.is_not(None), CatalogTable.removed_at.is_not(None))
        query = query.where(removed if stale else ~removed)
    mappings = [_mapping_public(row) for row in page.rows(session, query)]
    return Paged(mappings, page.total(session, query))


def delete_column_mapping(session: Session, mapping_id: int) -> None:
    mapping = session.get(ColumnMapping, mapping_id)
    if mapping is None:
        raise NotFoundError(f"No column mapping with id {mapping_id}.")
    session.delete(mapping)
    session.flush()
    reevaluate(session, column_ids=[mapping.column_id])


# --- value mappings ---


def create_value_mappings(session: Session, data: ValueMappingCreate) -> list[ValueMapping]:
    """Add one or many value mappings of a column, all or none."""
    _catalog_column(session, data.column_id)
    try:
        pairs = data.pairs()
    except ValueError as exc:
        raise InvalidInputError(str(exc)) from None
    sources = [source for source, _ in pairs]
    duplicates = repeated(sources)
    if duplicates:
        raise InvalidInputError(f"source values repeated in the request: {duplicates[:5]}")
    existing = _existing_sources(session, data.column_id, sources)
    if existing:
        raise ConflictError(
            f"Column {data.column_id} already maps source values {sorted(existing)[:5]}."
        )
    mappings = [
        ValueMapping(column_id=data.column_id, source_value=source, target_value=target)
        for source, target in pairs
    ]
    session.add_all(mappings)
    _flush_or_conflict(session, f"Column {data.column_id} already maps one of these values.")
    reevaluate(session, column_ids=[data.column_id])
    return mappings


def repeated(values: list[str]) -> list[str]:
    """The values that occur more than once, sorted; one pass over a hash set (linear)."""
    seen: set[str] = set()
    twice: set[str] = set()
    for value in values:
        if value in seen:
            twice.add(value)
        seen.add(value)
    return sorted(twice)


def _existing_sources(session: Session, column_id: int, sources: list[str]) -> set[str]:
    existing: set[str] = set()
    for start in range(0, len(sources), 500):  # bounded IN lists
        existing.update(
            session.scalars(
                select(ValueMapping.source_value).where(
                    ValueMapping.column_id == column_id,
                    ValueMapping.source_value.in_(sources[start : start + 500]),
                )
            )
        )
    return existing


def list_value_mappings(
    session: Session, *, column_id: int | None = None, page: Page = Page()
) -> Paged[ValueMapping]:
    query = select(ValueMapping).order_by(ValueMapping.column_id, ValueMapping.id)
    if column_id is not None:
        query = query.where(ValueMapping.column_id == column_id)
    return Paged(page.scalars(session, query), page.total(session, query))


def delete_value_mapping(session: Session, value_mapping_id: int) -> None:
    mapping = session.get(ValueMapping, value_mapping_id)
    if mapping is None:
        raise NotFoundError(f"No value mapping with id {value_mapping_id}.")
    session.delete(mapping)
    session.flush()
    reevaluate(session, column_ids=[mapping.column_id])
