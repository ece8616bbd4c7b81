"""The gateway's alert dispatcher: a Periodic thread delivering outbox events, and the count
of deliveries in the gateway's metrics."""

from __future__ import annotations

from fabric_core.alerts.dispatcher import AlertDispatcher
from fabric_core.periodic import Periodic
from fabric_core.runtime import Runtime
from prometheus_client import CollectorRegistry, Counter

CHANNEL_KINDS = ("webhook", "slack", "email")
OUTCOMES = ("delivered", "retrying", "failed")


def deliveries_counter(registry: CollectorRegistry) -> Counter:
    counter = Counter(
        "fabric_alert_deliveries",
        "Alert delivery attempts by channel kind and outcome (retrying: the attempt failed "
        "and will be tried again; failed: given up, or a test that failed).",
        ["kind", "outcome"],
        registry=registry,
    )
    for kind in CHANNEL_KINDS:  # every series from the start, at 0
        for outcome in OUTCOMES:
            counter.labels(kind, outcome)
    return counter


def start_dispatcher(runtime: Runtime, counter: Counter) -> tuple[AlertDispatcher, Periodic]:
    dispatcher = AlertDispatcher(
        runtime.settings,
        runtime.session_factory,
        runtime.read_session_factory,
        runtime.box,
        on_outcome=lambda kind, outcome: counter.labels(kind, outcome).inc(),
    )
    periodic = Periodic(
        "alert-dispatcher", runtime.settings.alert_dispatch_seconds, dispatcher.run_once
    )
    return dispatcher, periodic.start()
