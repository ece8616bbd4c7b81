"""Events operators can subscribe to, recorded in an outbox.

An event is inserted in the same transaction as the change it reports, so it exists exactly
when the change was stored: a job that failed has its ``job.failed`` row, a change that was
rolled back has none. Delivering events (webhooks, Slack, e-mail) is the dispatcher's work,
at least once, from this table.
"""

from __future__ import annotations

from typing import Any, Literal, get_args

from sqlalchemy import insert
from sqlalchemy.orm import Session

from fabric_core.models import OutboxEvent, utcnow

EventName = Literal[
    "job.failed",
    "job.retrying",
    "job.stuck",
    "circuit.opened",
    "circuit.closed",
    "catalog.changed",
    "mapping.broken",
    "drift.detected",
]
EVENT_NAMES: tuple[str, ...] = get_args(EventName)


def record_event(session: Session, name: EventName, payload: dict[str, Any]) -> None:
    """Add ``name`` with ``payload`` (JSON-able, no secrets) to the outbox, in ``session``'s
    transaction: it commits or rolls back with the change it reports."""
    if name not in EVENT_NAMES:
        raise ValueError(f"Unknown event {name!r}")
    session.execute(insert(OutboxEvent).values(name=name, payload=payload, created_at=utcnow()))
