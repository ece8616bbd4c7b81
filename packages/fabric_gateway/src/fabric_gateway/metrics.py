"""The gateway's metrics: requests (shared with every app), source checks by outcome, and the
metadata DB's view of queues and pools (``fabric_web.db_metrics``)."""

from __future__ import annotations

from fabric_core.schemas import ConnectionCheck
from fabric_web.common import AppMetrics
from fabric_web.db_metrics import MetadataDbCollector
from fastapi import FastAPI
from prometheus_client import Counter

SOURCE_CHECK_OUTCOMES = ("ok", "unreachable", "rejected", "error")


class GatewayMetrics(AppMetrics):
    def __init__(self, app: FastAPI) -> None:
        super().__init__("gateway")
        self.source_checks = Counter(
            "fabric_source_checks",
            "Source connection checks, by outcome: ok, unreachable, rejected (reached but "
            "refused: credentials, database), error (the check could not be made).",
            ["outcome"],
            registry=self.registry,
        )
        for outcome in SOURCE_CHECK_OUTCOMES:  # every outcome shows, 0 until it happens
            self.source_checks.labels(outcome)
        self.metadata_db = MetadataDbCollector(lambda: getattr(app.state, "runtime", None))
        self.registry.register(self.metadata_db)

    def count_check(self, check: ConnectionCheck | None) -> None:
        """Count one check's outcome (None: it raised before an answer)."""
        if check is None:
            outcome = "error"
        elif check.ok:
            outcome = "ok"
        elif not check.reachable:
            outcome = "unreachable"
        else:
            outcome = "rejected"
        self.source_checks.labels(outcome).inc()
