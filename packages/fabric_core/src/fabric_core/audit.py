"""The audit log: who changed what through the gateway, and who was refused.

Rows are only ever added; no API route changes or removes them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from fabric_core.models import AuditEvent
from fabric_core.paging import Page, Paged


@dataclass(frozen=True)
class AuditFilter:
    token_id: int | None = None
    action: str | None = None
    since: datetime | None = None

    def apply(self, query: Select) -> Select:
        if self.token_id is not None:
            query = query.where(AuditEvent.token_id == self.token_id)
        if self.action is not None:
            query = query.where(AuditEvent.action == self.action)
        if self.since is not None:
            query = query.where(AuditEvent.at >= self.since)
        return query


def list_events(session: Session, where: AuditFilter, page: Page) -> Paged[AuditEvent]:
    """Matching events, newest first, and how many match in all."""
    query = where.apply(select(AuditEvent)).order_by(AuditEvent.id.desc())
    return Paged(page.scalars(session, query), page.total(session, query))
