"""Suggested source columns for a unified column, dismissals and bulk accept."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from fabric_core.drift.resolve import reevaluate
from fabric_core.errors import ConflictError, InvalidInputError, NotFoundError
from fabric_core.mapping import create_column_mapping, get_unified_column
from fabric_core.models import CatalogColumn, ColumnMapping, DismissedSuggestion
from fabric_core.paging import Page, Paged
from fabric_core.schemas import ColumnMappingCreate, ColumnMappingPublic
from fabric_core.suggestions.inventory import ColumnInfo, columns_by_id, unmapped_columns
from fabric_core.suggestions.references import reference_of
from fabric_core.suggestions.samples import Sampler
from fabric_core.suggestions.scoring import (
    PLAUSIBLE,
    Reference,
    add_value_evidence,
    cheap_score,
    could_score,
)

MAX_MAPPED_SAMPLED = 10  # mapped columns whose values stand for the unified column's
MIN_SAMPLED = 20  # candidates whose values are read, at least (more when the limit is higher)
MAX_SAMPLED = 60
MIN_SCORE = 0.05  # below this a column is noise, not a suggestion


def _reference(session: Session, unified_column_id: int) -> Reference:
    unified = get_unified_column(session, unified_column_id)
    mapped_ids = list(
        session.scalars(
            select(ColumnMapping.column_id).where(
                ColumnMapping.unified_column_id == unified_column_id
            )
        )
    )
    return reference_of(unified, columns_by_id(session, mapped_ids))


def suggest_columns(
    read_session_factory: sessionmaker[Session],
    sampler: Sampler | None,
    unified_column_id: int,
    *,
    limit: int = 10,
) -> list[dict]:
    """Catalog columns that likely mean the unified column, best first: not removed, not
    mapped to anything, not dismissed for it. Names and types rank every column cheaply;
    values are read only for the most plausible ones (and the mapped columns)."""
    with read_session_factory() as session:
        reference = _reference(session, unified_column_id)
        plausible = []
        for candidate in unmapped_columns(session, unified_column_id):
            if not could_score(candidate, reference):
                continue  # no evidence for it: it would score the bias alone
            scored = cheap_score(candidate, reference)
            if scored.evidence and scored.logit >= PLAUSIBLE:
                plausible.append(scored)
    plausible.sort(key=lambda s: (-s.logit, s.column.id))
    to_sample = plausible[: min(max(MIN_SAMPLED, 2 * limit), MAX_SAMPLED)]
    rest = plausible[len(to_sample) :]
    if sampler is not None and to_sample:
        mapped = list(reference.mapped[:MAX_MAPPED_SAMPLED])
        samples = sampler.samples(mapped + [s.column for s in to_sample])
        reference_samples = [samples.values[c.id] for c in mapped if c.id in samples.values]
        for scored in to_sample:
            add_value_evidence(
                scored,
                reference,
                samples.values.get(scored.column.id),
                reference_samples,
                samples.notes.get(scored.column.id),
            )
    for scored in rest:
        scored.add("values", "not sampled: ranked below the candidates whose values were read", 0)
    ranked = sorted(to_sample + rest, key=lambda s: (-s.logit, s.column.id))
    return [s.public() for s in ranked if s.score >= MIN_SCORE][:limit]


# --- dismissals ---


def _live_column(session: Session, column_id: int) -> CatalogColumn:
    column = session.get(CatalogColumn, column_id)
    if column is None:
        raise InvalidInputError(f"No catalog column with id {column_id}.")
    return column


def dismiss(session: Session, unified_column_id: int, column_id: int) -> DismissedSuggestion:
    """Never suggest ``column_id`` for the unified column again (409 when already so); a
    ``new_column`` drift item of the column is resolved when nothing else would map it."""
    get_unified_column(session, unified_column_id)
    _live_column(session, column_id)
    row = DismissedSuggestion(unified_column_id=unified_column_id, column_id=column_id)
    session.add(row)
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        raise ConflictError(
            f"Column {column_id} is already dismissed for unified column {unified_column_id}."
        ) from None
    # A new column's drift item says it would be mapped; dismissed, it may no longer be.
    reevaluate(session, column_ids=[column_id])
    return row


def undismiss(session: Session, unified_column_id: int, column_id: int) -> None:
    get_unified_column(session, unified_column_id)
    row = session.scalar(
        select(DismissedSuggestion).where(
            DismissedSuggestion.unified_column_id == unified_column_id,
            DismissedSuggestion.column_id == column_id,
        )
    )
    if row is None:
        raise NotFoundError(
            f"Column {column_id} is not dismissed for unified column {unified_column_id}."
        )
    session.delete(row)
    session.flush()


def list_dismissed(session: Session, unified_column_id: int, page: Page = Page()) -> Paged[dict]:
    get_unified_column(session, unified_column_id)
    query = (
        select(DismissedSuggestion)
        .where(DismissedSuggestion.unified_column_id == unified_column_id)
        .order_by(DismissedSuggestion.id)
    )
    rows = page.scalars(session, query)
    infos: dict[int, ColumnInfo] = {
        c.id: c for c in columns_by_id(session, [r.column_id for r in rows])
    }
    items = [
        {**infos[r.column_id].public(), "dismissed_at": r.created_at}
        for r in rows
        if r.column_id in infos
    ]
    return Paged(items, page.total(session, query))


def dismissed_column(session: Session, unified_column_id: int, column_id: int) -> dict:
    row = session.scalar(
        select(DismissedSuggestion).where(
            DismissedSuggestion.unified_column_id == unified_column_id,
            DismissedSuggestion.column_id == column_id,
        )
    )
    if row is None:
        raise NotFoundError(
            f"Column {column_id} is not dismissed for unified column {unified_column_id}."
        )
    (info,) = columns_by_id(session, [column_id])
    return {**info.public(), "dismissed_at": row.created_at}


# --- bulk accept ---


def accept(
    session: Session, unified_column_id: int, column_ids: list[int]
) -> list[ColumnMappingPublic]:
    """Map every column to the unified column, all or none (the caller's transaction)."""
    get_unified_column(session, unified_column_id)
    if len(set(column_ids)) != len(column_ids):
        raise InvalidInputError("column_ids repeats a column.")
    return [
        create_column_mapping(
            session, ColumnMappingCreate(column_id=column_id, unified_column_id=unified_column_id)
        )
        for column_id in column_ids
    ]
