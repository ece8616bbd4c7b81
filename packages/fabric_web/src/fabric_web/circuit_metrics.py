"""``fabric_circuit_open``: the circuit breakers' state, read from the metadata DB at scrape
time, so every replica reports what all of them share (not one process's memory)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

from fabric_core.circuits import CLOSED, read_circuits
from fabric_core.runtime import Runtime
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy.exc import SQLAlchemyError

log = logging.getLogger(__name__)


def _family() -> GaugeMetricFamily:
    return GaugeMetricFamily(
        "fabric_circuit_open",
        "1 while a circuit is open or half-open (calls fail at once), 0 when closed; one "
        "series per circuit that ever failed (connection:<id>, service:<name>, airflow).",
        labels=["circuit"],
    )


class CircuitCollector(Collector):
    """Yields one gauge per circuit with a row; nothing while the runtime is not up or the
    metadata DB does not answer (logged), rather than failing the whole scrape."""

    def __init__(self, runtime: Callable[[], Runtime | None]) -> None:
        """``runtime``: the app's runtime once started (None before)."""
        self._runtime = runtime

    def describe(self) -> Iterator[Metric]:
        # Described without data: registering the collector does not query the DB.
        yield _family()

    def collect(self) -> Iterator[Metric]:
        family = _family()
        runtime = self._runtime()
        if runtime is not None:
            try:
                with runtime.read_session_factory() as session:
                    states = read_circuits(session)
            except SQLAlchemyError as exc:
                log.warning("circuit metrics: the metadata DB did not answer: %s", exc)
                states = {}
            for key, state in sorted(states.items()):
                family.add_metric([key], 0.0 if state.state == CLOSED else 1.0)
        yield family
