"""Whether a new source column would be mapped: the one place drift asks the suggester.

Drift runs inside the sync's transaction, so it uses the suggestion score's evidence that
reads no source (names, comments, types, table context, foreign keys), not value samples.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from fabric_core.models import CatalogColumn, DismissedSuggestion, UnifiedColumn
from fabric_core.suggestions.inventory import columns_by_id
from fabric_core.suggestions.references import all_references
from fabric_core.suggestions.scoring import ACCEPT, Reference, cheap_score


def would_map(session: Session, column: CatalogColumn) -> UnifiedColumn | None:
    """The unified column that suggestions would propose for ``column`` with a score of
    0.5 or more (the best one), leaving out those it was dismissed for; None when none."""
    found = columns_by_id(session, [column.id])
    if not found:
        return None
    candidate = found[0]
    dismissed = set(
        session.scalars(
            select(DismissedSuggestion.unified_column_id).where(
                DismissedSuggestion.column_id == column.id
            )
        )
    )
    best: tuple[float, UnifiedColumn] | None = None
    for unified, reference in _references(session):
        if unified.id in dismissed or any(c.id == column.id for c in reference.mapped):
            continue
        scored = cheap_score(candidate, reference)
        if scored.score >= ACCEPT and (best is None or scored.logit > best[0]):
            best = (scored.logit, unified)
    return best[1] if best else None


_REFERENCES_KEY = "fabric.drift.references"


def forget_names(session: Session) -> None:
    """Drop the references cached in ``session`` (call when mappings may have changed)."""
    session.info.pop(_REFERENCES_KEY, None)


def _references(session: Session) -> list[tuple[UnifiedColumn, Reference]]:
    """Built once per session: a sync asks about each of its new columns."""
    references = session.info.get(_REFERENCES_KEY)
    if references is None:
        references = session.info[_REFERENCES_KEY] = all_references(session)
    return references
