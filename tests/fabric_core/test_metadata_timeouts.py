"""A stalled metadata DB is an error within the configured time, never a thread blocked for
good: connecting gives up after FABRIC_METADATA_CONNECT_TIMEOUT, and a statement (a lock wait
included) after FABRIC_METADATA_STATEMENT_TIMEOUT."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable

import psycopg
import pytest
from conftest import pg_url
from fabric_core.runtime import create_runtime
from faults.fault_helpers import silent_server
from sqlalchemy import text
from sqlalchemy.exc import OperationalError


def _error_within(seconds: float, call: Callable[[], object]) -> BaseException:
    """The error ``call`` raises, failing the test if it takes longer than ``seconds`` (on a
    daemon thread: without the timeouts the call would block for good)."""
    outcome: queue.Queue[BaseException | None] = queue.Queue()

    def run() -> None:
        try:
            call()
        except BaseException as exc:
            outcome.put(exc)
        else:
            outcome.put(None)

    threading.Thread(target=run, daemon=True).start()
    try:
        error = outcome.get(timeout=seconds)
    except queue.Empty:
        pytest.fail(f"still blocked after {seconds} s")
    assert error is not None, "the call succeeded"
    return error


def _count_jobs(runtime) -> None:
    with runtime.session_factory() as session:
        session.execute(text("SELECT count(*) FROM jobs"))


def test_a_statement_waiting_on_a_lock_gives_up(settings, pg_database):
    database = pg_database()
    runtime = create_runtime(
        settings.model_copy(
            update={"database_url": pg_url(database), "metadata_statement_timeout": 1.0}
        )
    )
    # Another client holds the jobs table's lock, as a stalled transaction would.
    with psycopg.connect(pg_url(database).replace("postgresql+psycopg", "postgresql")) as holder:
        holder.execute("LOCK TABLE jobs IN ACCESS EXCLUSIVE MODE")
        error = _error_within(5, lambda: _count_jobs(runtime))
        assert isinstance(error, OperationalError) and "statement timeout" in str(error)
    runtime.close()


def test_connecting_to_a_silent_server_gives_up(settings):
    with silent_server() as port:
        stalled = settings.model_copy(
            update={
                "database_url": f"postgresql+psycopg://fabric@127.0.0.1:{port}/fabric",
                "metadata_connect_timeout": 2.0,
            }
        )
        runtime = create_runtime(stalled, migrate=False)
        assert isinstance(_error_within(8, runtime.check_database), OperationalError)
        runtime.close()
