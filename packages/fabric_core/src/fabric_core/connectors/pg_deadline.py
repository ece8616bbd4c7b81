"""A deadline Fabric keeps itself on each PostgreSQL statement and fetch.

``statement_timeout`` is the server's promise and ``tcp_user_timeout`` only covers sends: a
server that logs the client in and then stops answering (or is not PostgreSQL at all) keeps
neither. Every execute and fetch arms a timer; when it fires, the connection's socket is shut
down, so the waiting call ends with an error instead of waiting for ever.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from collections.abc import Callable, Iterator
from functools import lru_cache, wraps
from typing import Any

import psycopg


def deadline_seconds(read_timeout: float) -> float:
    """After the server's own timeout had its chance to end the statement cleanly."""
    return read_timeout + min(5.0, read_timeout)


@contextlib.contextmanager
def deadline(connection: psycopg.Connection, seconds: float) -> Iterator[None]:
    timer = threading.Timer(seconds, _cut, (connection,))
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


def _cut(connection: psycopg.Connection) -> None:
    with contextlib.suppress(Exception):  # already closed: nothing is waiting
        descriptor = os.dup(connection.pgconn.socket)
        with socket.socket(fileno=descriptor) as connected:
            connected.shutdown(socket.SHUT_RDWR)


def _within_deadline(method: Callable[..., Any]) -> Callable[..., Any]:
    """``method`` of a cursor, run under its class's ``deadline_seconds``."""

    @wraps(method)
    def bounded(self, *args: Any, **kwargs: Any) -> Any:
        with deadline(self.connection, self.deadline_seconds):
            return method(self, *args, **kwargs)

    return bounded


def _streaming_within_deadline(method: Callable[..., Iterator[Any]]) -> Callable[..., Any]:
    """``stream`` of a cursor: the whole iteration under one deadline, as an ``execute``
    and its fetches are."""

    @wraps(method)
    def bounded(self, *args: Any, **kwargs: Any) -> Iterator[Any]:
        with deadline(self.connection, self.deadline_seconds):
            yield from method(self, *args, **kwargs)

    return bounded


@lru_cache
def deadline_cursor_factories(seconds: float) -> tuple[type, type]:
    """Cursor classes (client-side, server-side) whose calls to the server have a deadline.

    A client-side cursor talks to the server in ``execute`` and while it ``stream``s; a
    server-side one in each fetch too.
    """
    client_side = type(
        "DeadlineCursor",
        (psycopg.Cursor,),
        {
            "deadline_seconds": seconds,
            "execute": _within_deadline(psycopg.Cursor.execute),
            "executemany": _within_deadline(psycopg.Cursor.executemany),
            "stream": _streaming_within_deadline(psycopg.Cursor.stream),
        },
    )
    calls = ("execute", "fetchone", "fetchmany", "fetchall")
    server_side = type(
        "DeadlineServerCursor",
        (psycopg.ServerCursor,),
        {
            "deadline_seconds": seconds,
            **{name: _within_deadline(getattr(psycopg.ServerCursor, name)) for name in calls},
        },
    )
    return client_side, server_side
