"""Real local receivers of alerts: an HTTP server (webhooks, Slack) and an SMTP server
(aiosmtpd), each on loopback in a thread of the test process."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from fabric_web.serving import free_port


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    raw: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.raw)


@dataclass
class HttpReceiver:
    """Records every POST; answers ``status``. ``start``/``stop`` may be called again (the
    receiver is down, then back on the same port)."""

    port: int = field(default_factory=free_port)
    status: int = 200
    received: list[Received] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def start(self) -> HttpReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.received.append(Received(self.path, dict(self.headers), body))
                self.send_response(receiver.status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *_args: Any) -> None:
                pass

        # HTTPServer reuses the address: the port can be taken again right after a stop.
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


class _Collect:
    def __init__(self) -> None:
        self.messages: list[tuple[list[str], Message, bytes]] = []

    async def handle_DATA(self, _server, _session, envelope) -> str:
        raw = envelope.original_content or envelope.content
        self.messages.append((list(envelope.rcpt_tos), message_from_bytes(raw), raw))
        return "250 OK"


class SmtpReceiver:
    """A real SMTP server (aiosmtpd) that keeps what it is sent; with ``login``, it takes mail
    only from a client that logged in as that (user, password)."""

    def __init__(self, login: tuple[str, str] | None = None) -> None:
        self.port = free_port()
        self.logins: list[tuple[str, str]] = []
        self._handler = _Collect()
        extra: dict[str, Any] = {}
        if login is not None:

            def authenticate(_server, _session, _envelope, _mechanism, data) -> AuthResult:
                given = (data.login.decode(), data.password.decode())
                self.logins.append(given)
                return AuthResult(success=given == login, handled=False)

            # Loopback tests without TLS: the login is allowed over plain SMTP here only.
            extra = {"authenticator": authenticate, "auth_required": True}
            extra["auth_require_tls"] = False
        self._controller = Controller(self._handler, hostname="127.0.0.1", port=self.port, **extra)

    @property
    def messages(self) -> list[tuple[list[str], Message, bytes]]:
        return self._handler.messages

    def __enter__(self) -> SmtpReceiver:
        self._controller.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._controller.stop()


def wait_until(condition: Callable[[], Any], timeout: float = 20, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(0.05)
    raise AssertionError(f"Timed out after {timeout} s waiting for {what}")
