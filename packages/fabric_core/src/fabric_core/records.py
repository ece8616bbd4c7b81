"""What every named record's functions share: a clash of unique names is a 409, a missing id
a 404, both with a message that names the kind of record."""

from __future__ import annotations

from typing import TypeVar

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from fabric_core.errors import ConflictError, NotFoundError

Record = TypeVar("Record")


def flush_unique_name(session: Session, what: str, name: str) -> None:
    """Flush, turning a unique-name clash into ``ConflictError`` ("An alert channel named ...
    already exists."; ``what`` is e.g. "An alert channel")."""
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        raise ConflictError(f"{what} named {name!r} already exists.") from None


def get_by_id(session: Session, model: type[Record], record_id: int, what: str) -> Record:
    """The ``model`` record with ``record_id``, else ``NotFoundError`` ("No {what} with id ...")."""
    record = session.get(model, record_id)
    if record is None:
        raise NotFoundError(f"No {what} with id {record_id}.")
    return record
