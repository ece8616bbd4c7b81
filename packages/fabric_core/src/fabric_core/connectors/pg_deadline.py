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
from collections.abc import Iterator
from functools import lru_cache
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


@lru_cache
def deadline_cursor_factories(seconds: float) -> tuple[type, type]:
    """Cursor classes (client-side, server-side) whose calls to the server have a deadline."""

    class DeadlineCursor(psycopg.Cursor):
        def execute(self, *args: Any, **kwargs: Any):
            with deadline(self.connection, seconds):
                return super().execute(*args, **kwargs)

        def executemany(self, *args: Any, **kwargs: Any):
            with deadline(self.connection, seconds):
                return super().executemany(*args, **kwargs)

    class DeadlineServerCursor(psycopg.ServerCursor):
        def execute(self, *args: Any, **kwargs: Any):
            with deadline(self.connection, seconds):
                return super().execute(*args, **kwargs)

        def fetchone(self):
            with deadline(self.connection, seconds):
                return super().fetchone()

        def fetchmany(self, *args: Any, **kwargs: Any):
            with deadline(self.connection, seconds):
                return super().fetchmany(*args, **kwargs)

        def fetchall(self):
            with deadline(self.connection, seconds):
                return super().fetchall()

    return DeadlineCursor, DeadlineServerCursor
