"""A connection authenticates with its own secret only: the service's PG* environment and
pass files are not consulted, and what a server of another kind says is not echoed."""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress

import pytest
from fabric_core.connectors import get_connector
from fabric_core.connectors.base import ConnectionSpec, check_connection
from fabric_core.errors import SourceError
from fabric_core.source_policy import SourcePolicy

SSL_OR_GSS_REQUEST = (80877103, 80877104)


@contextmanager
def serving(handle: Callable[[socket.socket], None]) -> Iterator[int]:
    """A loopback TCP server that gives each connection to ``handle``; yields its port."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn, suppress(OSError, struct.error):
                handle(conn)

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield listener.getsockname()[1]
    finally:
        listener.close()


@contextmanager
def password_asking_server() -> Iterator[tuple[int, list]]:
    """Speaks PostgreSQL's start-up far enough to ask for a clear-text password, and keeps
    every password a client sends."""
    received: list = []

    def read_exactly(conn: socket.socket, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = conn.recv(n - len(data))
            if not chunk:
                raise ConnectionError("closed")
            data += chunk
        return data

    def ask_for_a_password(conn: socket.socket) -> None:
        conn.settimeout(5)
        while True:
            length = struct.unpack("!I", read_exactly(conn, 4))[0]
            code = struct.unpack("!I", read_exactly(conn, length - 4)[:4])[0]
            if code not in SSL_OR_GSS_REQUEST:
                break
            conn.sendall(b"N")
        conn.sendall(b"R" + struct.pack("!II", 8, 3))  # clear-text password, please
        if read_exactly(conn, 1) == b"p":
            length = struct.unpack("!I", read_exactly(conn, 4))[0]
            received.append(read_exactly(conn, length - 4))

    with serving(ask_for_a_password) as port:
        yield port, received


@contextmanager
def banner_server(banner: bytes) -> Iterator[int]:
    """A server of another kind: says its banner to whoever connects."""

    def say_banner(conn: socket.socket) -> None:
        conn.sendall(banner)
        conn.settimeout(2)
        conn.recv(1000)

    with serving(say_banner) as port:
        yield port


def test_postgresql_ignores_the_services_pg_environment(monkeypatch, tmp_path):
    passfile = tmp_path / "pgpass"
    passfile.write_text("*:*:*:*:from-the-pass-file\n")
    passfile.chmod(0o600)
    monkeypatch.setenv("PGPASSWORD", "from-the-environment")
    monkeypatch.setenv("PGPASSFILE", str(passfile))
    monkeypatch.setenv("PGUSER", "ambient-user")
    with password_asking_server() as (port, received):
        spec = ConnectionSpec(kind="postgresql", host="127.0.0.1", port=port, username="u")
        result = check_connection(spec, 3)
        assert not result.ok and not result.authenticated, result
        # DuckDB's PostgreSQL scanner (dataset reads) runs libpq too.
        with pytest.raises(SourceError):
            list(
                get_connector("postgresql").read_batches(
                    spec, "public", "t", ["id"], limit=1, batch_rows=10, timeout=3
                )
            )
    assert received == []


@pytest.mark.parametrize("kind", ["mysql", "postgresql"])
@pytest.mark.parametrize(
    "banner",
    [
        b"SSH-2.0-OpenSSH_9.6 BANNER-SECRET\r\n",
        b"HTTP/1.1 400 Bad Request\r\nServer: BANNER-SECRET\r\n\r\n",
        b"\x20\x00\x00\x00\x0aBANNER-SECRET\x00" + b"\x00" * 40,
    ],
)
def test_what_another_server_says_is_not_echoed(kind, banner):
    with banner_server(banner) as port:
        spec = ConnectionSpec(kind=kind, host="127.0.0.1", port=port, username="u")
        result = check_connection(spec, 2)
    assert not result.ok
    assert "BANNER" not in result.message and "SSH" not in result.message, result.message
    assert "HTTP" not in result.message and "received S" not in result.message, result.message
    assert "did not answer as a" in result.message, result.message


def _message(kind: bytes, payload: bytes) -> bytes:
    return kind + struct.pack("!I", len(payload) + 4) + payload


def log_in_then_go_silent(conn: socket.socket) -> None:
    """A PostgreSQL server that accepts the login, then never answers a query."""
    conn.settimeout(30)
    while True:
        length = struct.unpack("!I", conn.recv(4))[0]
        code = struct.unpack("!I", conn.recv(length - 4)[:4])[0]
        if code not in SSL_OR_GSS_REQUEST:
            break
        conn.sendall(b"N")
    conn.sendall(
        _message(b"R", struct.pack("!I", 0))  # authentication ok
        + _message(b"S", b"server_version\x0016.0\x00")
        + _message(b"S", b"client_encoding\x00UTF8\x00")
        + _message(b"S", b"standard_conforming_strings\x00on\x00")
        + _message(b"K", struct.pack("!II", 1, 2))
        + _message(b"Z", b"I")  # ready for a query, which it will never answer
    )
    while conn.recv(1000):
        pass


def test_a_postgresql_server_that_stops_answering_is_cut_off():
    policy = SourcePolicy(connect_timeout=2.0, read_timeout=1.0)
    with serving(log_in_then_go_silent) as port:
        spec = ConnectionSpec(
            kind="postgresql", host="127.0.0.1", port=port, username="u", policy=policy
        )
        started = time.monotonic()
        result = check_connection(spec, 2)
        elapsed = time.monotonic() - started
    assert not result.ok, result
    # The server's statement_timeout never comes: Fabric's own deadline (1 s + 1 s) ends it.
    assert elapsed < 6, elapsed
