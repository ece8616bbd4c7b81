"""Metrics read from the metadata DB when Prometheus scrapes: queue depth and pool occupancy
are the same for every replica and process only if they come from the jobs table, not from
one process's memory. Every replica reports the same values (aggregate them with ``max()``).

A family is a function ``(session, settings) -> metric families``; add one to
``DB_FAMILIES`` (or pass ``families=``) and it is read in the same read-only session, under the
same time limit. A slow or unreachable DB never fails or hangs the scrape: it is reported as
``fabric_metadata_db_up 0`` and the DB-derived families are left out of that scrape.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from fabric_core.job_kinds import JOB_KINDS
from fabric_core.models import Job, utcnow
from fabric_core.runtime import Runtime
from fabric_core.settings import Settings
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import case, func, select, text
from sqlalchemy.orm import Session

from fabric_web.circuit_metrics import circuit_families

log = logging.getLogger(__name__)

DbFamily = Callable[[Session, Settings], Iterable[Metric]]


def job_families(session: Session, settings: Settings) -> Iterator[Metric]:
    """Per kind: jobs waiting to start, jobs waiting for their next attempt, jobs running, and
    how long the longest waiter has waited; per pool: its slots and the slots in use. One
    grouped query on the indexed ``jobs.status``.

    A slot is in use while its job runs, and also while the job is handed over but not yet
    claimed or waits for its next attempt: the task that holds the slot (a local pool thread,
    a deferred Airflow task) waits with it. A job back in ``queued`` waits from its requeue
    (``updated_at``), not from its creation."""
    phase = case(
        (Job.status == "running", "running"),
        (Job.next_attempt_at.is_not(None), "retry_wait"),
        (Job.handed_over_at.is_not(None), "handed_over"),
        else_="waiting",
    )
    rows = session.execute(
        select(Job.kind, phase, func.count(), func.min(Job.updated_at))
        .where(Job.status.in_(("queued", "running")))
        .group_by(Job.kind, phase)
    ).all()
    counts = {(kind, phase): count for kind, phase, count, _ in rows}
    since = {}
    for kind, phase, _, first in rows:
        if phase in ("waiting", "handed_over") and first is not None:
            since[kind] = min(first, since.get(kind, first))
    kinds = sorted({*JOB_KINDS, *(kind for kind, _ in counts)})
    now = utcnow()

    queued = GaugeMetricFamily(
        "fabric_jobs_queued",
        "Jobs waiting to start now (for a pool slot or a service worker), not for a retry.",
        labels=["kind"],
    )
    retry_waiting = GaugeMetricFamily(
        "fabric_jobs_retry_waiting",
        "Jobs queued again after a failed attempt, waiting for their next attempt's time.",
        labels=["kind"],
    )
    running = GaugeMetricFamily("fabric_jobs_running", "Jobs running now.", labels=["kind"])
    oldest_age = GaugeMetricFamily(
        "fabric_jobs_oldest_queued_age_seconds",
        "How long the longest-waiting job has waited to start since it was queued or queued "
        "again (0 when none waits).",
        labels=["kind"],
    )
    for kind in kinds:
        queued.add_metric(
            [kind], counts.get((kind, "waiting"), 0) + counts.get((kind, "handed_over"), 0)
        )
        retry_waiting.add_metric([kind], counts.get((kind, "retry_wait"), 0))
        running.add_metric([kind], counts.get((kind, "running"), 0))
        first = since.get(kind)
        oldest_age.add_metric([kind], max((now - first).total_seconds(), 0.0) if first else 0.0)

    slots = GaugeMetricFamily(
        "fabric_pool_slots", "Jobs a pool lets run at once (settings).", labels=["pool"]
    )
    in_use = GaugeMetricFamily(
        "fabric_pool_slots_in_use",
        "Slots of a pool held by its jobs: running, handed over, or waiting for a retry.",
        labels=["pool"],
    )
    for kind in JOB_KINDS.values():
        slots.add_metric([kind.pool], kind.pool_slots(settings))
        held = sum(counts.get((kind.name, p), 0) for p in ("running", "handed_over", "retry_wait"))
        in_use.add_metric([kind.pool], held)
    return iter([queued, retry_waiting, running, oldest_age, slots, in_use])


DB_FAMILIES: list[DbFamily] = [job_families, circuit_families]


class MetadataDbCollector(Collector):
    """Collects ``families`` from the metadata DB at scrape time, bounded in time.

    The queries run on a thread of their own and the scrape waits for them at most
    ``settings.metrics_db_timeout_seconds``; while queries of an earlier scrape still run, a
    new scrape does not start more (a slow DB is not given a pile of them) and reports the DB
    as down.
    """

    def __init__(
        self,
        runtime: Callable[[], Runtime | None],
        families: Sequence[DbFamily] | None = None,
    ) -> None:
        self._runtime = runtime
        self._families = families
        self._lock = threading.Lock()
        self._busy = False

    def describe(self) -> list[Metric]:
        # Registering the collector must not query the DB.
        return [GaugeMetricFamily("fabric_metadata_db_up", "")]

    def collect(self) -> Iterator[Metric]:
        started = time.perf_counter()
        metrics = self._query_in_time()
        up = GaugeMetricFamily(
            "fabric_metadata_db_up",
            "1 when the metadata DB answered this scrape's queries in time, else 0.",
        )
        up.add_metric([], 1 if metrics is not None else 0)
        duration = GaugeMetricFamily(
            "fabric_metadata_db_scrape_duration_seconds",
            "Time this scrape spent on the metadata DB's queries.",
        )
        duration.add_metric([], time.perf_counter() - started)
        yield up
        yield duration
        yield from metrics or []

    def _query_in_time(self) -> list[Metric] | None:
        runtime = self._runtime()
        if runtime is None:  # the app has not started (or has stopped)
            return None
        with self._lock:
            if self._busy:
                log.warning("metrics: the metadata DB's previous queries have not returned")
                return None
            self._busy = True
        answer: dict[str, Any] = {}
        done = threading.Event()

        def query() -> None:
            try:
                answer["metrics"] = self._query(runtime)
            except Exception as exc:
                answer["error"] = exc
            finally:
                with self._lock:
                    self._busy = False
                done.set()

        # A daemon thread: one stuck on a dead DB never holds up the process's exit.
        threading.Thread(target=query, name="fabric-db-metrics", daemon=True).start()
        timeout = runtime.settings.metrics_db_timeout_seconds
        if not done.wait(timeout):
            log.warning("metrics: the metadata DB did not answer within %ss", timeout)
            return None
        if "error" in answer:
            message = " ".join(str(answer["error"]).split())[:300]
            log.warning("metrics: metadata DB: %s", message)
            return None
        return answer["metrics"]

    def _query(self, runtime: Runtime) -> list[Metric]:
        settings = runtime.settings
        families = DB_FAMILIES if self._families is None else self._families
        with runtime.read_session_factory() as session:
            if session.get_bind().dialect.name == "postgresql":
                # The server stops the queries too, so a slow DB does not keep the connection.
                milliseconds = max(int(settings.metrics_db_timeout_seconds * 1000), 1)
                session.execute(text(f"SET LOCAL statement_timeout = {milliseconds}"))
            return [metric for family in families for metric in family(session, settings)]
