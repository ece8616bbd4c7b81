"""Circuit breakers on real sources and a real metadata DB (SQLite and PostgreSQL): refused
connections open a connection's circuit, it then fails fast, one trial call goes through after
the reset time, and every process on the same metadata DB sees the same state."""

from __future__ import annotations

import threading
import time

import pytest
from catalog_helpers import register
from conftest import MYSQL_HOST, PG_HOST, PG_PORT, PG_USER, pg_execute
from fabric_core.airflow_api import AirflowClient
from fabric_core.catalog.browse import get_table, list_tables
from fabric_core.catalog.sync import sync_connection
from fabric_core.catalog.values import column_values
from fabric_core.circuits import AIRFLOW_CIRCUIT, connection_circuit, read_circuits
from fabric_core.connections import check_connection_by_id, connection_spec, get_connection
from fabric_core.errors import (
    CircuitOpenError,
    ServiceUnreachableError,
    SourceError,
    SourceUnreachableError,
)
from fabric_core.models import CircuitState, Connection, OutboxEvent
from fabric_core.runtime import create_runtime
from fabric_web.serving import free_port
from sqlalchemy import select, update

pytestmark = pytest.mark.postgres

FAILURES = 3
RESET = 1.0


@pytest.fixture
def circuit_settings(metadata_url, settings):
    return settings.model_copy(
        update={
            "database_url": metadata_url,
            "circuit_failures": FAILURES,
            "circuit_reset_seconds": RESET,
        }
    )


@pytest.fixture
def runtime(circuit_settings):
    runtime = create_runtime(circuit_settings)
    yield runtime
    runtime.close()


def _pg_connection(runtime, *, port: int, database: str = "postgres", name: str = "pg") -> int:
    return register(
        runtime,
        name=name,
        kind="postgresql",
        host=PG_HOST,
        port=port,
        database=database,
        username=PG_USER,
        password="pg-Circuit-Secret-1",
    )


def _sync(runtime, connection_id: int):
    with runtime.session_factory() as session:
        spec = connection_spec(
            get_connection(session, connection_id), runtime.box, runtime.source_policy
        )
    return sync_connection(
        runtime.session_factory, connection_id, spec, timeout=5, circuits=runtime.circuits
    )


def _events(runtime, name: str) -> list[dict]:
    with runtime.session_factory() as session:
        return list(
            session.scalars(
                select(OutboxEvent.payload).where(OutboxEvent.name == name).order_by(OutboxEvent.id)
            )
        )


def _state(runtime, connection_id: int):
    with runtime.session_factory() as session:
        return session.get(CircuitState, connection_circuit(connection_id))


def _move(runtime, connection_id: int, port: int) -> None:
    """Point the connection at another port (the source "comes back" or "goes away")."""
    with runtime.session_factory.begin() as session:
        session.execute(update(Connection).where(Connection.id == connection_id).values(port=port))


def _open_circuit(runtime, connection_id: int) -> None:
    for _ in range(FAILURES):
        with pytest.raises(SourceUnreachableError):
            _sync(runtime, connection_id)


def test_refused_connections_open_the_circuit_and_the_next_call_fails_at_once(runtime):
    connection_id = _pg_connection(runtime, port=free_port())
    for attempt in range(1, FAILURES + 1):
        with pytest.raises(SourceUnreachableError) as refused:
            _sync(runtime, connection_id)
        assert "pg-Circuit-Secret-1" not in refused.value.message
        state = _state(runtime, connection_id)
        assert (state.failures, state.state) == (
            attempt,
            "open" if attempt == FAILURES else "closed",
        )

    started = time.perf_counter()
    with pytest.raises(CircuitOpenError) as open_error:
        _sync(runtime, connection_id)
    assert time.perf_counter() - started < 0.5
    error = open_error.value
    assert error.retryable and error.status_code == 503
    assert f"connection:{connection_id}" in error.message
    assert "UTC" in error.message and "trial" in error.message
    assert "pg-Circuit-Secret-1" not in (_state(runtime, connection_id).last_error or "x")

    (opened,) = _events(runtime, "circuit.opened")
    assert opened["circuit"] == f"connection:{connection_id}"
    assert opened["connection_id"] == connection_id and opened["failures"] == FAILURES
    assert opened["retry_at"] and "refused" in opened["error"].lower()
    # The refusal was not a call: it neither counts nor fires anything.
    assert _state(runtime, connection_id).failures == FAILURES
    assert _events(runtime, "circuit.closed") == []


def test_after_the_reset_one_trial_closes_or_reopens_the_circuit(runtime):
    connection_id = _pg_connection(runtime, port=free_port())
    _open_circuit(runtime, connection_id)
    time.sleep(RESET + 0.1)

    # A failed trial opens it again for another reset period, without a second event.
    with pytest.raises(SourceUnreachableError):
        _sync(runtime, connection_id)
    state = _state(runtime, connection_id)
    assert state.state == "open" and state.failures == FAILURES + 1
    with pytest.raises(CircuitOpenError):
        _sync(runtime, connection_id)
    assert len(_events(runtime, "circuit.opened")) == 1

    # The source is back: the next trial succeeds and closes the circuit, once.
    _move(runtime, connection_id, PG_PORT)
    time.sleep(RESET + 0.1)
    _sync(runtime, connection_id)
    state = _state(runtime, connection_id)
    assert (state.state, state.failures, state.opened_at, state.retry_at) == (
        "closed",
        0,
        None,
        None,
    )
    _sync(runtime, connection_id)
    (closed,) = _events(runtime, "circuit.closed")
    assert closed["circuit"] == f"connection:{connection_id}" and closed["state"] == "closed"
    assert closed["opened_at"] is not None
    assert len(_events(runtime, "circuit.opened")) == 1


def test_concurrent_callers_after_the_reset_make_exactly_one_trial(runtime, circuit_settings):
    connection_id = _pg_connection(runtime, port=free_port())
    _open_circuit(runtime, connection_id)
    time.sleep(RESET + 0.1)

    # Callers in two runtimes (as two processes would be) race for the trial.
    other = create_runtime(circuit_settings)
    try:
        breakers = [runtime.circuits, other.circuits] * 4
        barrier = threading.Barrier(len(breakers))
        outcomes: list[str] = []

        def call(breaker) -> None:
            circuit = breaker.connection(connection_id)
            barrier.wait()
            try:
                outcomes.append("trial" if circuit.enter() else "passed")
            except CircuitOpenError as exc:
                assert "half-open" in exc.message or "is open" in exc.message
                outcomes.append("refused")

        threads = [threading.Thread(target=call, args=(b,)) for b in breakers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        other.close()
    assert sorted(outcomes) == ["refused"] * (len(breakers) - 1) + ["trial"]
    state = _state(runtime, connection_id)
    assert state.state == "half_open"
    # While the trial runs, other callers keep failing fast, saying a trial is under way.
    with pytest.raises(CircuitOpenError, match="half-open"):
        _sync(runtime, connection_id)


def test_the_state_is_shared_by_every_runtime_on_the_metadata_db(runtime, circuit_settings):
    connection_id = _pg_connection(runtime, port=free_port())
    _open_circuit(runtime, connection_id)
    other = create_runtime(circuit_settings)
    try:
        with pytest.raises(CircuitOpenError, match=f"connection:{connection_id}"):
            _sync(other, connection_id)
        with other.read_session_factory() as session:
            circuit = read_circuits(session)[connection_circuit(connection_id)]
        assert (circuit.state, circuit.failures) == ("open", FAILURES)
        assert circuit.opened_at is not None and circuit.retry_at > circuit.opened_at
    finally:
        other.close()


def test_a_test_that_reaches_the_source_closes_an_open_circuit(runtime):
    connection_id = _pg_connection(runtime, port=free_port())
    _open_circuit(runtime, connection_id)

    def probe():
        return check_connection_by_id(
            runtime.read_session_factory,
            connection_id,
            runtime.box,
            runtime.source_policy,
            runtime.circuits,
        )

    # The operator's probe is let through while open (no CircuitOpenError); a failed one
    # counts but keeps the trial's time.
    retry_at = _state(runtime, connection_id).retry_at
    assert probe().reachable is False
    state = _state(runtime, connection_id)
    assert (state.state, state.failures, state.retry_at) == ("open", FAILURES + 1, retry_at)

    _move(runtime, connection_id, PG_PORT)
    assert probe().reachable is True
    assert _state(runtime, connection_id).state == "closed"
    assert len(_events(runtime, "circuit.closed")) == 1
    _sync(runtime, connection_id)  # no longer refused


def test_a_bad_query_or_refused_credentials_do_not_count(runtime, pg_database, mysql_admin):
    database = pg_database()
    pg_execute(database, "CREATE TABLE t (code text); INSERT INTO t VALUES ('a')")
    connection_id = _pg_connection(runtime, port=PG_PORT, database=database)
    _sync(runtime, connection_id)
    with runtime.session_factory() as session:
        (table,) = list_tables(session, connection_id).items
        column_id = get_table(session, table.id).columns[0].id

    # Two refusals, then an answer: the count is of consecutive failures, and resets.
    _move(runtime, connection_id, free_port())
    for _ in range(FAILURES - 1):
        with pytest.raises(SourceUnreachableError):
            _sync(runtime, connection_id)
    assert _state(runtime, connection_id).failures == FAILURES - 1
    _move(runtime, connection_id, PG_PORT)
    pg_execute(database, "DROP TABLE t")

    def lookup():
        return column_values(
            runtime.read_session_factory,
            column_id,
            runtime.box,
            runtime.source_policy,
            limit=10,
            circuits=runtime.circuits,
        )

    for _ in range(FAILURES + 1):  # the table is gone: a bad query, the source answered
        with pytest.raises(SourceError) as bad_query:
            lookup()
        assert not isinstance(bad_query.value, SourceUnreachableError)
    state = _state(runtime, connection_id)
    assert (state.state, state.failures) == ("closed", 0)

    denied = register(
        runtime,
        name="denied",
        kind="mysql",
        host=MYSQL_HOST,
        port=3306,
        username="fabric_nobody",
        password="my-Secret-77",
    )
    for _ in range(FAILURES + 1):
        check = check_connection_by_id(
            runtime.read_session_factory,
            denied,
            runtime.box,
            runtime.source_policy,
            runtime.circuits,
        )
        assert (check.reachable, check.authenticated) == (True, False)
        with pytest.raises(SourceError) as refused:
            _sync(runtime, denied)
        assert not isinstance(refused.value, SourceUnreachableError)
    assert _state(runtime, denied) is None  # never failed: no row at all
    assert _events(runtime, "circuit.opened") == []


def test_airflow_calls_open_the_airflow_circuit_and_are_not_retried_while_open(runtime):
    circuit = runtime.circuits.circuit(AIRFLOW_CIRCUIT)
    with AirflowClient(
        f"http://127.0.0.1:{free_port()}", "airflow", "af-Secret-1", circuit=circuit
    ) as client:
        # One call retries three times (tenacity): three refused attempts open the circuit.
        with pytest.raises(ServiceUnreachableError):
            client.dag_run("sync_data_connection", "sync_1_1")
        started = time.perf_counter()
        with pytest.raises(CircuitOpenError, match="Circuit airflow is open"):
            client.dag_run("sync_data_connection", "sync_1_1")
        assert time.perf_counter() - started < 0.2  # no retries with backoff
    with runtime.session_factory() as session:
        state = session.get(CircuitState, AIRFLOW_CIRCUIT)
    assert (state.state, state.failures) == ("open", FAILURES)
    assert "af-Secret-1" not in state.last_error
    (opened,) = _events(runtime, "circuit.opened")
    assert opened["circuit"] == "airflow"


def test_a_deleted_connection_takes_its_circuit_with_it(runtime):
    from fabric_core.connections import delete_connection

    connection_id = _pg_connection(runtime, port=free_port())
    _open_circuit(runtime, connection_id)
    with runtime.session_factory.begin() as session:
        delete_connection(session, connection_id)
    assert _state(runtime, connection_id) is None


def test_status_polls_are_neither_refused_nor_counted_but_an_answer_closes(
    runtime, circuit_settings
):
    from fabric_core.clients import ServiceClient
    from fabric_core.errors import NotFoundError
    from fabric_sync.app import create_app as create_sync
    from fabric_web.serving import serve_in_thread

    port = free_port()
    settings = circuit_settings.model_copy(update={"sync_url": f"http://127.0.0.1:{port}"})
    with ServiceClient.of_service(settings, "sync", circuits=runtime.circuits) as client:
        # Polls of a running job wait out a restarting service on their own terms.
        for _ in range(FAILURES + 1):
            with pytest.raises(ServiceUnreachableError):
                client.job_status("sync_1_1")
        with runtime.session_factory() as session:
            assert session.get(CircuitState, "service:sync") is None
        # Other calls count, and open the circuit.
        for _ in range(FAILURES):
            with pytest.raises(ServiceUnreachableError):
                client.health()
        with pytest.raises(CircuitOpenError, match="service:sync"):
            client.health()
        server = serve_in_thread(create_sync(settings), port=port)
        try:
            with pytest.raises(NotFoundError):  # answered: the service is back
                client.job_status("sync_1_1")
            assert client.health()["status"] == "ok"  # closed: not refused
        finally:
            server.stop()
    with runtime.session_factory() as session:
        assert session.get(CircuitState, "service:sync").state == "closed"
    assert [e["circuit"] for e in _events(runtime, "circuit.closed")] == ["service:sync"]


def test_concurrent_reports_make_each_transition_and_its_event_once(runtime, circuit_settings):
    other = create_runtime(circuit_settings)
    try:
        circuits = [runtime.circuits.circuit("service:dataset")] * 4
        circuits += [other.circuits.circuit("service:dataset")] * 4

        def all_at_once(report) -> None:
            barrier = threading.Barrier(len(circuits))

            def run(circuit) -> None:
                barrier.wait()
                report(circuit)

            threads = [threading.Thread(target=run, args=(c,)) for c in circuits]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()

        all_at_once(lambda circuit: circuit.failed("refused"))
        with runtime.session_factory() as session:
            state = session.get(CircuitState, "service:dataset")
        assert (state.state, state.failures) == ("open", len(circuits))  # none lost
        all_at_once(lambda circuit: circuit.succeeded())
    finally:
        other.close()
    assert len(_events(runtime, "circuit.opened")) == 1
    assert len(_events(runtime, "circuit.closed")) == 1


def test_a_job_refused_by_an_open_circuit_is_not_retried_before_the_circuit_lets_calls_through(
    circuit_settings,
):
    from fabric_core.job_kinds import SYNC
    from fabric_core.job_runner import run_job
    from fabric_core.jobs import get_job
    from fabric_core.sync_jobs import queue_sync

    settings = circuit_settings.model_copy(
        update={"circuit_reset_seconds": 120.0, "sync_retry_attempts": 3}
    )
    runtime = create_runtime(settings)
    try:
        connection_id = _pg_connection(runtime, port=free_port())
        _open_circuit(runtime, connection_id)
        retry_at = _state(runtime, connection_id).retry_at
        with runtime.session_factory.begin() as session:
            job_id = queue_sync(
                session,
                connection_id,
                orchestrator="test",
                retry_policy={"attempts": 3, "backoff_seconds": 1, "max_delay_seconds": 5},
            )[0].id
        assert run_job(SYNC, runtime, job_id)
        with runtime.session_factory() as session:
            job = get_job(session, job_id)
        assert job.status == "queued" and "is open" in job.attempt_errors[0]["error"]
        # Not after the policy's 1 s backoff, which the open circuit would refuse at once.
        assert job.next_attempt_at == retry_at
    finally:
        runtime.close()
