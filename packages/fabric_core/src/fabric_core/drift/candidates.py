"""Whether a new source column would be mapped: the one place drift asks the suggester.

Drift runs inside the sync's transaction, so it uses the suggestion score's evidence that
reads no source (names, comments, types, table context, foreign keys), not value samples.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from fabric_core.models import CatalogColumn, DismissedSuggestion, UnifiedColumn
from fabric_core.suggestions.inventory import ColumnInfo, columns_by_id
from fabric_core.suggestions.references import all_references
from fabric_core.suggestions.scoring import ACCEPT, Reference, cheap_score

_CHUNK = 500  # ids per IN list: well under every database's parameter limit


def would_map(session: Session, column: CatalogColumn) -> UnifiedColumn | None:
    """The unified column that suggestions would propose for ``column`` with a score of
    0.5 or more (the best one), leaving out those it was dismissed for; None when none."""
    return would_map_many(session, columns_by_id(session, [column.id])).get(column.id)


def would_map_many(session: Session, columns: Sequence[ColumnInfo]) -> dict[int, UnifiedColumn]:
    """``would_map`` for many columns at once: column id -> unified column, for those that
    would be mapped. The references are built once and the dismissals read in a few queries."""
    if not columns:
        return {}
    references = _references(session)
    if not references:
        return {}
    dismissed = _dismissed(session, [c.id for c in columns])
    mapped_to = [{c.id for c in reference.mapped} for _, reference in references]
    found: dict[int, UnifiedColumn] = {}
    for candidate in columns:
        skip = dismissed.get(candidate.id, set())
        best: tuple[float, UnifiedColumn] | None = None
        for (unified, reference), mapped in zip(references, mapped_to, strict=True):
            if unified.id in skip or candidate.id in mapped:
                continue
            scored = cheap_score(candidate, reference)
            if scored.score >= ACCEPT and (best is None or scored.logit > best[0]):
                best = (scored.logit, unified)
        if best is not None:
            found[candidate.id] = best[1]
    return found


def _dismissed(session: Session, column_ids: list[int]) -> dict[int, set[int]]:
    dismissed: dict[int, set[int]] = {}
    for start in range(0, len(column_ids), _CHUNK):
        rows = session.execute(
            select(DismissedSuggestion.column_id, DismissedSuggestion.unified_column_id).where(
                DismissedSuggestion.column_id.in_(column_ids[start : start + _CHUNK])
            )
        )
        for column_id, unified_id in rows:
            dismissed.setdefault(column_id, set()).add(unified_id)
    return dismissed


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
