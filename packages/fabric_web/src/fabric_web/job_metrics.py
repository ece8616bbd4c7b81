"""What a job service counts when one of its jobs ends: per job kind, by final status, how
long it waited and ran, what it wrote and what it changed (docs/operations.md lists them).

Counted by the process that ran the job, so a sum over replicas is the total. Queue depth and
pool occupancy are not here: they come from the metadata DB (``fabric_web.db_metrics``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from fabric_core.models import Job
from fabric_core.schemas import TERMINAL_STATUSES
from prometheus_client import CollectorRegistry, Counter, Histogram

# From a tenth of a second (a sync of a small source) to four hours (a large build): an
# alert on the p95 needs buckets on both sides of it.
JOB_SECONDS_BUCKETS = (
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    5,
    10,
    30,
    60,
    120,
    300,
    600,
    1800,
    3600,
    7200,
    14400,
)

# Catalog changes a sync's stats count, as (stats key, object, change) label values.
CATALOG_CHANGES = [
    (f"{obj}s_{change}", obj, change)
    for obj in ("table", "column")
    for change in ("added", "changed", "removed")
]


class JobMetrics:
    """The per-kind job families, in the registry of the service that runs the jobs."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.ended = Counter(
            "fabric_jobs_ended",
            "Jobs ended, by kind and final status (success, failed, cancelled).",
            ["kind", "status"],
            registry=registry,
        )
        self.queue_wait = Histogram(
            "fabric_job_queue_wait_seconds",
            "Time from a job's creation to its start, observed when it ends.",
            ["kind"],
            buckets=JOB_SECONDS_BUCKETS,
            registry=registry,
        )
        self.run_duration = Histogram(
            "fabric_job_run_duration_seconds",
            "Time from a job's start to its end, by kind and final status.",
            ["kind", "status"],
            buckets=JOB_SECONDS_BUCKETS,
            registry=registry,
        )
        self.rows_written = Counter(
            "fabric_job_written_rows",
            "Rows written by successful jobs (dataset builds).",
            ["kind"],
            registry=registry,
        )
        self.bytes_written = Counter(
            "fabric_job_written_bytes",
            "Bytes of files written by successful jobs (dataset builds' Parquet parts).",
            ["kind"],
            registry=registry,
        )
        self.cast_failures = Counter(
            "fabric_job_cast_failures",
            "Values that did not fit their column's type and became null (dataset builds).",
            ["kind"],
            registry=registry,
        )
        self.retries = Counter(
            "fabric_job_retries",
            "Attempts beyond the first of ended jobs.",
            ["kind"],
            registry=registry,
        )
        self.catalog_changes = Counter(
            "fabric_catalog_changes",
            "Catalog objects added, changed or removed by successful syncs.",
            ["object", "change"],
            registry=registry,
        )

    def initialize(self, kind: str) -> None:
        """Export every series of ``kind`` at 0 from the start: a rate or an alert over a
        series that appears only with its first event misses that event."""
        for status in sorted(TERMINAL_STATUSES):
            self.ended.labels(kind, status)
            self.run_duration.labels(kind, status)
        self.queue_wait.labels(kind)
        for counter in (self.rows_written, self.bytes_written, self.cast_failures, self.retries):
            counter.labels(kind)
        for _key, obj, change in CATALOG_CHANGES:
            self.catalog_changes.labels(obj, change)

    def observe_end(self, job: Job) -> None:
        """Count ``job``, which has just ended (a job not ended yet is left to whoever ends it:
        the stale-job check)."""
        if job.status not in TERMINAL_STATUSES:
            return
        kind = job.kind
        self.ended.labels(kind, job.status).inc()
        if job.started_at is not None:
            self.queue_wait.labels(kind).observe(_seconds(_queued_at(job), job.started_at))
            if job.finished_at is not None:
                run = _seconds(job.started_at, job.finished_at)
                self.run_duration.labels(kind, job.status).observe(run)
        if job.attempts > 1:
            self.retries.labels(kind).inc(job.attempts - 1)
        if job.status == "success":
            self._count_stats(kind, job.stats or {})

    def _count_stats(self, kind: str, stats: Mapping[str, Any]) -> None:
        # Read by key, not by kind: a kind whose stats have the key is counted the same way.
        if "rows_written" in stats:
            self.rows_written.labels(kind).inc(stats["rows_written"] or 0)
        if "bytes_written" in stats:
            self.bytes_written.labels(kind).inc(stats["bytes_written"] or 0)
        if "cast_failures" in stats:
            self.cast_failures.labels(kind).inc(sum((stats["cast_failures"] or {}).values()))
        for key, obj, change in CATALOG_CHANGES:
            if key in stats:
                self.catalog_changes.labels(obj, change).inc(stats[key] or 0)


def _queued_at(job: Job) -> datetime:
    """When the job's last attempt was queued: its creation, or the failed attempt before it
    (``started_at`` is the last attempt's; earlier attempts and their backoff are not wait)."""
    earlier = [e for e in job.attempt_errors or [] if e["attempt"] < job.attempts]
    return datetime.fromisoformat(earlier[-1]["at"]) if earlier else job.created_at


def _seconds(start, end) -> float:
    # Clocks of different hosts write created_at and started_at: never a negative wait.
    return max((end - start).total_seconds(), 0.0)
