"""What an alert says: the event's payload with its links, and a short text for people."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

from fabric_core.job_kinds import JOB_KINDS
from fabric_core.orchestrators import airflow_run_url
from fabric_core.settings import Settings

TITLES = {
    "job.failed": "job failed",
    "job.retrying": "job retrying",
    "job.stuck": "job stuck",
    "circuit.opened": "circuit opened",
    "circuit.closed": "circuit closed",
    "catalog.changed": "catalog changed",
    "mapping.broken": "column mapping broken",
    "drift.detected": "drift detected",
    "test": "test alert",
}
# What the subject line names, the first of these the payload has.
_SUBJECT_FIELDS = ("job_id", "connection_name", "dataset_name", "circuit", "channel")
# Payload fields the text shows on lines of their own, in this order (the JSON has them all).
_TEXT_FIELDS = (
    "connection_name",
    "dataset_name",
    "reason",
    "error",
    "unified_column",
    "source_column",
    "message",
    "job_url",
    "dag_run_url",
)


@dataclass(frozen=True)
class Alert:
    """One event as sent to one channel."""

    event: str
    event_id: int | None
    created_at: datetime
    payload: dict[str, Any]
    idempotency_key: str

    @property
    def subject(self) -> str:
        about = next((self.payload[k] for k in _SUBJECT_FIELDS if self.payload.get(k)), "")
        return f"[Fabric] {TITLES.get(self.event, self.event)}" + (f": {about}" if about else "")

    @property
    def text(self) -> str:
        lines = [self.subject]
        for name in _TEXT_FIELDS:
            if self.payload.get(name) not in (None, ""):
                lines.append(f"{name.replace('_', ' ')}: {self.payload[name]}")
        return "\n".join(lines)

    def body(self) -> dict[str, Any]:
        """The webhook body (JSON)."""
        return {
            "idempotency_key": self.idempotency_key,
            "event": self.event,
            "event_id": self.event_id,
            "created_at": self.created_at.isoformat(),
            "text": self.text,
            "payload": self.payload,
        }


def with_links(payload: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """``payload`` plus the job's link and, for a job run by Airflow, its DAG run's (the job id
    is the run id); added at delivery, from the gateway's public URLs."""
    job_id, kind = payload.get("job_id"), JOB_KINDS.get(str(payload.get("kind")))
    if not job_id:
        return payload
    links = {"job_url": f"{settings.public_url.rstrip('/')}/api/jobs/{quote(str(job_id))}"}
    if kind is not None and payload.get("orchestrator") == "airflow":
        links["dag_run_url"] = airflow_run_url(settings, kind.dag_id, str(job_id))
    return {**payload, **links}
