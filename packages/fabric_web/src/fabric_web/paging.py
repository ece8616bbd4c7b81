"""``?limit=&offset=`` on every list route; the total goes into ``X-Total-Count``."""

from __future__ import annotations

from typing import Annotated, TypeVar

from fabric_core.paging import DEFAULT_LIMIT, MAX_LIMIT, MAX_OFFSET, Page, Paged
from fastapi import Depends, Query, Response

T = TypeVar("T")

TOTAL_HEADER = "X-Total-Count"


def get_page(
    limit: int = Query(
        default=DEFAULT_LIMIT, ge=1, le=MAX_LIMIT, description="Items to return at most."
    ),
    offset: int = Query(default=0, ge=0, le=MAX_OFFSET, description="Items to skip first."),
) -> Page:
    return Page(limit=limit, offset=offset)


PageDep = Annotated[Page, Depends(get_page)]


def page_answer(response: Response, paged: Paged[T]) -> list[T]:
    """The page's items as the answer (a JSON list, as without paging), the total in a header."""
    response.headers[TOTAL_HEADER] = str(paged.total)
    return paged.items
