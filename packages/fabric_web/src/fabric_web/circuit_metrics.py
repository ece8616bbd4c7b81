"""``fabric_circuit_open``: the circuit breakers' state, a family of the gateway's metadata-DB
collector (``fabric_web.db_metrics``), so every replica reports what all of them share."""

from __future__ import annotations

from collections.abc import Iterator

from fabric_core.circuits import CLOSED, read_circuits
from fabric_core.settings import Settings
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from sqlalchemy.orm import Session


def circuit_families(session: Session, settings: Settings) -> Iterator[Metric]:
    """One series per circuit with a row (it failed once at least; a deleted connection's
    goes with it), so the label values stay bounded by connections, services and Airflow."""
    family = GaugeMetricFamily(
        "fabric_circuit_open",
        "1 while a circuit is open or half-open (calls fail at once), 0 when closed; one "
        "series per circuit that failed (connection:<id>, service:<name>, airflow).",
        labels=["circuit"],
    )
    for key, state in sorted(read_circuits(session).items()):
        family.add_metric([key], 0.0 if state.state == CLOSED else 1.0)
    yield family
