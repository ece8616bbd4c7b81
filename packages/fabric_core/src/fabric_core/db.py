"""Engine and session factories for the metadata DB. Nothing connects at import time."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker


def create_metadata_engine(
    url: str, *, connect_timeout: float = 10.0, statement_timeout: float | None = 300.0
) -> Engine:
    """An engine for the metadata DB; SQLite gets WAL and a busy timeout for many writers.

    On a server DB, connecting gives up after ``connect_timeout`` seconds and one statement
    (lock waits included) after ``statement_timeout`` (None: no limit, for migrations), so a
    stalled metadata DB is an error the caller handles (a 503, a heartbeat retried), never a
    thread blocked for good. SQLite's lock waits are bounded by its busy timeout."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            _create_private_file(Path(parsed.database))
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    return create_engine(
        url,
        pool_pre_ping=True,
        pool_size=10,
        max_overflow=10,
        pool_timeout=connect_timeout,
        connect_args=_server_timeouts(
            parsed.get_backend_name(), connect_timeout, statement_timeout
        ),
    )


def _server_timeouts(
    backend: str, connect_timeout: float, statement_timeout: float | None
) -> dict[str, object]:
    if backend != "postgresql":
        return {}
    # libpq counts connect_timeout in whole seconds, and takes at least 2.
    timeouts: dict[str, object] = {"connect_timeout": max(2, round(connect_timeout))}
    if statement_timeout is not None:
        timeouts["options"] = f"-c statement_timeout={round(statement_timeout * 1000)}"
    return timeouts


def _create_private_file(path: Path) -> None:
    """Create the SQLite file readable only by its owner before SQLite opens it (SQLite gives
    its -wal and -shm files the same mode); it holds every connection's encrypted secret."""
    path.parent.mkdir(parents=True, exist_ok=True)
    os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    if path.stat().st_mode & 0o077:
        # A file made before Fabric created it private: tighten it if it is ours.
        with contextlib.suppress(PermissionError):
            os.chmod(path, 0o600)


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    # Fabric starts SQLite's transactions itself (see _sqlite_begin), not the driver.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _sqlite_begin(connection) -> None:
    # A transaction that may write takes SQLite's write lock when it begins (IMMEDIATE), and
    # waits for it up to the busy timeout. A deferred one that reads, then writes after another
    # process committed, fails at once with "database is locked": the busy timeout does not
    # apply to that upgrade. Read-only sessions begin deferred and never block writers.
    read_only = connection.get_execution_options().get(READ_ONLY, False)
    connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


READ_ONLY = "fabric_read_only"


def create_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions that may write (on SQLite their transactions begin IMMEDIATE)."""
    return sessionmaker(engine, expire_on_commit=False)


def create_read_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions that only read: on SQLite they never hold the write lock, so a long read
    (a preview reading its sources) does not stop other processes from writing."""
    return sessionmaker(engine.execution_options(**{READ_ONLY: True}), expire_on_commit=False)


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session that commits on success and rolls back on error."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
