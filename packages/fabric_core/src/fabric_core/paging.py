"""One page of a list: ``limit`` rows from ``offset``, and how many there are in all."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

DEFAULT_LIMIT = 1000
MAX_LIMIT = 10_000
# Beyond any table Fabric keeps, and within every database's 64-bit OFFSET.
MAX_OFFSET = 10**12


@dataclass(frozen=True, slots=True)
class Page:
    limit: int = DEFAULT_LIMIT
    offset: int = 0

    def total(self, session: Session, query: Select[Any]) -> int:
        """How many rows ``query`` has without paging (one COUNT over it)."""
        counted = select(func.count()).select_from(query.order_by(None).subquery())
        return session.scalar(counted) or 0

    def rows(self, session: Session, query: Select[Any]) -> list[Any]:
        """This page of ``query``'s rows (``query`` must be ordered for pages to be stable)."""
        return list(session.execute(query.limit(self.limit).offset(self.offset)))

    def scalars(self, session: Session, query: Select[Any]) -> list[Any]:
        return list(session.scalars(query.limit(self.limit).offset(self.offset)))


T = TypeVar("T")
U = TypeVar("U")


@dataclass(frozen=True, slots=True)
class Paged(Generic[T]):
    """A page of items and the total they are a page of."""

    items: list[T]
    total: int

    def map(self, convert: Callable[[T], U]) -> Paged[U]:
        return Paged([convert(item) for item in self.items], self.total)
