"""Resolved drift items are history: kept ``FABRIC_DRIFT_RETENTION_DAYS`` after they were
resolved, then removed by the sync service's sweep, so the table does not grow with every
change a catalog ever went through. Open items are never removed here."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete, select

from fabric_core.models import DriftItem, utcnow
from fabric_core.runtime import Runtime

# Rows removed per transaction: a long history goes in short writes, not one long lock.
BATCH = 500


def purge_resolved_drift(runtime: Runtime) -> int:
    """Remove the items resolved more than ``drift_retention_days`` ago; returns how many."""
    cutoff = utcnow() - timedelta(days=runtime.settings.drift_retention_days)
    old = select(DriftItem.id).where(DriftItem.resolved_at < cutoff).limit(BATCH)
    removed = 0
    while True:
        with runtime.session_factory.begin() as session:
            ids = session.scalars(old).all()
            if not ids:
                return removed
            session.execute(delete(DriftItem).where(DriftItem.id.in_(ids)))
        removed += len(ids)
