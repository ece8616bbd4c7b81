"""Whether a new source column would be mapped: the one place drift asks a suggester.

A single replaceable function on purpose: a full suggestion scorer can take its place without
anything else in fabric_core.drift changing.
"""

from __future__ import annotations

import re
import unicodedata

from sqlalchemy import select
from sqlalchemy.orm import Session

from fabric_core.models import CatalogColumn, ColumnMapping, UnifiedColumn

_SEPARATORS = re.compile(r"[^0-9a-z]+")


def normalized_name(name: str) -> str:
    """``Customer-Name``, ``customer_name`` and ``CustomerName`` all as ``customername``
    (accents dropped too)."""
    plain = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return _SEPARATORS.sub("", plain.casefold())


def would_map(session: Session, column: CatalogColumn) -> UnifiedColumn | None:
    """The unified column ``column`` would be mapped to: the one whose name, or the name of a
    column already mapped to it, equals the column's name once normalized; None when no
    unified column (or more than one) fits."""
    wanted = normalized_name(column.name)
    if not wanted:
        return None
    found = {
        unified_id
        for unified_id, mapped_column_id in _name_index(session).get(wanted, ())
        if mapped_column_id != column.id
    }
    return session.get(UnifiedColumn, found.pop()) if len(found) == 1 else None


_INDEX_KEY = "fabric.drift.name_index"


def forget_names(session: Session) -> None:
    """Drop the names cached in ``session`` (call when mappings may have changed)."""
    session.info.pop(_INDEX_KEY, None)


def _name_index(session: Session) -> dict[str, set[tuple[int, int | None]]]:
    """Normalized name -> (unified column id, mapped column id or None), built once per
    session: a sync asks about each of its new columns."""
    index = session.info.get(_INDEX_KEY)
    if index is not None:
        return index
    index = {}
    # Whole rows: they stay in the session's identity map, so would_map's session.get of the
    # one it found costs no query.
    for unified in session.scalars(select(UnifiedColumn)):
        index.setdefault(normalized_name(unified.name), set()).add((unified.id, None))
    mapped = session.execute(
        select(ColumnMapping.unified_column_id, CatalogColumn.id, CatalogColumn.name).join(
            CatalogColumn, CatalogColumn.id == ColumnMapping.column_id
        )
    )
    for unified_id, column_id, name in mapped:
        index.setdefault(normalized_name(name), set()).add((unified_id, column_id))
    session.info[_INDEX_KEY] = index
    return index
