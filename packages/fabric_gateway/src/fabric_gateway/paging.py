"""``?limit=&offset=`` on list routes, with the total in ``X-Total-Count``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Query, Response

DEFAULT_LIMIT = 1000
MAX_LIMIT = 10_000


@dataclass(frozen=True)
class Page:
    limit: int
    offset: int

    def announce(self, response: Response, total: int) -> None:
        response.headers["X-Total-Count"] = str(total)


def page(
    limit: int = Query(default=DEFAULT_LIMIT, ge=1, le=MAX_LIMIT),
    offset: int = Query(default=0, ge=0, le=2**62),
) -> Page:
    return Page(limit=limit, offset=offset)


PageDep = Annotated[Page, Depends(page)]
