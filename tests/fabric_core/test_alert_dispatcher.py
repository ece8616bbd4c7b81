"""The alert dispatcher on its own: fan-out once, leases, retries, giving up; with several
dispatchers (gateway replicas) at once, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from alert_helpers import HttpReceiver
from fabric_core.alerts.channels import create_channel
from fabric_core.alerts.dispatcher import AlertDispatcher, retry_delay
from fabric_core.alerts.schemas import AlertChannelCreate
from fabric_core.events import record_event
from fabric_core.models import AlertChannel, AlertDelivery, OutboxEvent, utcnow
from sqlalchemy import select, update


@pytest.fixture
def alert_runtime(metadata_url, settings):
    from fabric_core.runtime import create_runtime

    fast = {"alert_retry_seconds": 60, "alert_timeout_seconds": 3, "alert_max_attempts": 3}
    runtime = create_runtime(settings.model_copy(update={"database_url": metadata_url, **fast}))
    yield runtime
    runtime.close()


@pytest.fixture
def receiver():
    receiver = HttpReceiver().start()
    yield receiver
    receiver.stop()


def _channel(runtime, name: str, target: str, events=("job.failed",)) -> int:
    with runtime.session_factory.begin() as session:
        data = AlertChannelCreate(name=name, kind="webhook", target=target, events=list(events))
        return create_channel(session, data, runtime.box, runtime.source_policy).id


def _event(runtime, name="job.failed", **payload) -> None:
    with runtime.session_factory.begin() as session:
        record_event(session, name, payload or {"job_id": "sync_1_1", "kind": "sync"})


def _deliveries(runtime) -> list[AlertDelivery]:
    with runtime.session_factory() as session:
        return list(session.scalars(select(AlertDelivery).order_by(AlertDelivery.id)))


def _dispatcher(runtime, outcomes=None) -> AlertDispatcher:
    hook = (
        (lambda kind, outcome: outcomes.append((kind, outcome))) if outcomes is not None else None
    )
    return AlertDispatcher(
        runtime.settings, runtime.session_factory, runtime.read_session_factory, runtime.box, hook
    )


def test_racing_dispatchers_send_each_event_once_per_channel(alert_runtime, receiver):
    runtime = alert_runtime
    first = _channel(runtime, "a", receiver.url("/a"))
    second = _channel(runtime, "b", receiver.url("/b"), ["job.failed", "job.stuck"])
    _channel(runtime, "c", receiver.url("/c"), ["catalog.changed"])
    for number in range(10):
        _event(runtime, job_id=f"sync_1_{number}", kind="sync")
    _event(runtime, "job.stuck", job_id="sync_1_0", kind="sync", reason="no heartbeat")

    dispatchers = [_dispatcher(runtime) for _ in range(4)]
    barrier = threading.Barrier(len(dispatchers))
    errors: list[BaseException] = []

    def run(dispatcher: AlertDispatcher) -> None:
        try:
            barrier.wait()
            for _ in range(3):
                dispatcher.run_once()
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(d,)) for d in dispatchers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    by_path: dict[str, list[str]] = {}
    for request in receiver.received:
        by_path.setdefault(request.path, []).append(request.json["idempotency_key"])
    assert sorted(by_path) == ["/a", "/b"]
    assert len(by_path["/a"]) == len(set(by_path["/a"])) == 10
    assert len(by_path["/b"]) == len(set(by_path["/b"])) == 11
    deliveries = _deliveries(runtime)
    assert len(deliveries) == 21 and {d.status for d in deliveries} == {"delivered"}
    assert {d.channel_id for d in deliveries} == {first, second}


def test_a_leased_delivery_is_not_sent_by_another_dispatcher_until_the_lease_ends(
    alert_runtime, receiver
):
    runtime = alert_runtime
    _channel(runtime, "a", receiver.url())
    _event(runtime)
    holder, other = _dispatcher(runtime), _dispatcher(runtime)
    holder.fan_out()
    [delivery] = _deliveries(runtime)
    assert holder._claim(delivery.id)  # holder took it, then died before sending
    assert other.deliver_due() == 0 and receiver.received == []
    with runtime.session_factory.begin() as session:
        session.execute(update(AlertDelivery).values(lease_until=utcnow() - timedelta(seconds=1)))
    assert other.deliver_due() == 1
    assert len(receiver.received) == 1
    # The holder's late outcome does not overwrite what the new holder recorded.
    holder._record(delivery.id, delivery.channel_id, "webhook", 1, "late error", "job.failed")
    [delivery] = _deliveries(runtime)
    assert (delivery.status, delivery.last_error) == ("delivered", None)


def test_failed_attempts_back_off_then_give_up(alert_runtime):
    runtime = alert_runtime
    receiver = HttpReceiver(status=503).start()
    try:
        channel_id = _channel(runtime, "a", receiver.url())
        _event(runtime)
        outcomes: list[tuple[str, str]] = []
        dispatcher = _dispatcher(runtime, outcomes)
        assert dispatcher.run_once() == 1
        [delivery] = _deliveries(runtime)
        assert (delivery.status, delivery.attempts) == ("pending", 1)
        assert "HTTP 503" in delivery.last_error
        wait = (delivery.next_attempt_at - utcnow()).total_seconds()
        assert 55 < wait <= 60  # alert_retry_seconds
        assert dispatcher.run_once() == 0  # not due yet
        for _ in range(2):
            with runtime.session_factory.begin() as session:
                session.execute(update(AlertDelivery).values(next_attempt_at=utcnow()))
            assert dispatcher.run_once() == 1
        [delivery] = _deliveries(runtime)
        assert (delivery.status, delivery.attempts) == ("failed", 3)
        assert outcomes == [("webhook", "retrying")] * 2 + [("webhook", "failed")]
        with runtime.session_factory() as session:
            channel = session.get_one(AlertChannel, channel_id)
            assert channel.last_error.startswith("job.failed: The receiver answered HTTP 503")
            assert channel.last_error.endswith("(given up)")
            assert channel.last_delivered_at is None
        with runtime.session_factory.begin() as session:
            session.execute(update(AlertDelivery).values(next_attempt_at=utcnow()))
        assert dispatcher.run_once() == 0  # given up for good
        assert len(receiver.received) == 3
    finally:
        receiver.stop()


def test_events_before_any_channel_are_not_delivered_later(alert_runtime, receiver):
    _event(alert_runtime)
    dispatcher = _dispatcher(alert_runtime)
    dispatcher.run_once()
    _channel(alert_runtime, "a", receiver.url())
    dispatcher.run_once()
    assert receiver.received == [] and _deliveries(alert_runtime) == []


def test_retry_delay_doubles_up_to_the_cap(settings):
    settings = settings.model_copy(
        update={"alert_retry_seconds": 10, "alert_retry_max_seconds": 100}
    )
    assert [retry_delay(settings, n) for n in range(1, 7)] == [10, 20, 40, 80, 100, 100]
    assert retry_delay(settings, 10_000) == 100


def test_old_events_are_purged_once_their_deliveries_ended(alert_runtime, receiver):
    runtime = alert_runtime
    _channel(runtime, "a", receiver.url())
    for number in range(3):
        _event(runtime, job_id=f"sync_1_{number}", kind="sync")
    dispatcher = _dispatcher(runtime)
    dispatcher.run_once()
    [first, second, third] = _deliveries(runtime)
    old = utcnow() - timedelta(days=31)
    with runtime.session_factory.begin() as session:
        session.execute(
            update(OutboxEvent)
            .where(OutboxEvent.id.in_([first.event_id, second.event_id]))
            .values(fanned_out_at=old)
        )
        # The second is old but still to be sent: it stays.
        session.execute(
            update(AlertDelivery).where(AlertDelivery.id == second.id).values(status="pending")
        )
    assert dispatcher.purge() == 1
    with runtime.session_factory() as session:
        left = set(session.scalars(select(OutboxEvent.id)))
    assert left == {second.event_id, third.event_id}
    assert [d.id for d in _deliveries(runtime)] == [second.id, third.id]


def test_a_failing_channel_does_not_hold_up_the_others(alert_runtime, receiver):
    runtime = alert_runtime
    down = HttpReceiver()  # never started: refused
    _channel(runtime, "down", down.url())
    _channel(runtime, "up", receiver.url())
    for number in range(3):
        _event(runtime, job_id=f"sync_1_{number}", kind="sync")
    outcomes: list[tuple[str, str]] = []
    assert _dispatcher(runtime, outcomes).run_once() == 4  # one try at "down", three sent
    assert len(receiver.received) == 3
    assert outcomes.count(("webhook", "retrying")) == 1
    attempts = sorted(d.attempts for d in _deliveries(runtime) if d.status == "pending")
    assert attempts == [0, 0, 1]  # the other two wait for the next round, untried
