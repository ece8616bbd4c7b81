"""Running Fabric's ASGI apps: the services' entry points, and threads of one process
(tests). Needs uvicorn."""

from __future__ import annotations

import gc
import socket
import threading
import time
from dataclasses import dataclass

import uvicorn
from fabric_core.launcher import free_port
from fabric_core.log_context import logging_config
from fabric_core.settings import Settings

__all__ = [
    "ThreadedServer",
    "bound_socket",
    "free_port",
    "serve",
    "serve_in_thread",
    "uvicorn_config",
]


def uvicorn_config(app, settings: Settings, port: int, service: str = "fabric") -> uvicorn.Config:
    """How a Fabric service is served, its logs written as FABRIC_LOG_FORMAT says.

    X-Forwarded-For is ignored unless FABRIC_FORWARDED_ALLOW_IPS names the proxies that set
    it: uvicorn's own default trusts it from 127.0.0.1, so anything on the host could pick the
    client address that rate limits and the audit log go by."""
    trusted = list(settings.forwarded_allow_ips)
    return uvicorn.Config(
        app,
        host=settings.bind_host,
        port=port,
        proxy_headers=bool(trusted),
        forwarded_allow_ips=trusted or None,
        log_config=logging_config(service, settings.log_format, settings.log_level),
    )


def serve(app, settings: Settings, port: int, service: str) -> None:
    """Serve ``app`` until stopped (the ``fabric-gateway``, ``-sync``, ``-dataset`` commands)."""
    _FrozenStartServer(uvicorn_config(app, settings, port, service)).run()


class _FrozenStartServer(uvicorn.Server):
    """A server whose start-up objects are left out of the cyclic garbage collector."""

    async def startup(self, sockets=None) -> None:
        await super().startup(sockets)
        # Imports, the app and its runtime live as long as the process. Frozen, they are not
        # walked by every full collection: about 165,000 objects in the gateway, 0.15 s a
        # collection, which landed on whichever request happened to trigger it.
        gc.freeze()


@dataclass
class ThreadedServer:
    """A uvicorn server on a background thread; ``stop()`` runs the app's shutdown."""

    server: uvicorn.Server
    thread: threading.Thread
    url: str

    def stop(self, timeout: float = 30.0) -> None:
        self.server.should_exit = True
        self.thread.join(timeout)


def bound_socket(host: str = "127.0.0.1", port: int | None = None) -> socket.socket:
    """A socket bound to ``port`` of ``host`` (a free one by default), held for a server that
    is started later.

    Until the server listens on it, connections to the port are refused, and nothing else
    can take the port in between."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port or free_port(host)))
    return sock


def serve_in_thread(
    app, *, host: str = "127.0.0.1", port: int | None = None, sock: socket.socket | None = None
) -> ThreadedServer:
    """Start ``app`` on ``sock`` (from :func:`bound_socket`), or else on ``host:port`` (a free
    port by default), and wait until it accepts. The server closes the socket when it stops."""
    sock = sock or bound_socket(host, port)
    host, port = sock.getsockname()[:2]
    config = uvicorn.Config(
        app, host=host, port=port, log_level="warning", lifespan="on", proxy_headers=False
    )
    return serve_config_in_thread(config, sockets=[sock])


def serve_config_in_thread(
    config: uvicorn.Config, sockets: list[socket.socket] | None = None
) -> ThreadedServer:
    """Start a server of ``config`` (on ``sockets`` if given) on a background thread and wait
    until it accepts."""
    host, port = config.host, config.port
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": sockets}, name=f"uvicorn-{port}", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive():
            _close(sockets)  # a failed start-up leaves them to nobody
            raise RuntimeError(f"The server on {host}:{port} stopped during start-up.")
        if time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError(f"The server on {host}:{port} did not start within 30 s.")
        time.sleep(0.02)
    return ThreadedServer(server=server, thread=thread, url=f"http://{host}:{port}")


def _close(sockets: list[socket.socket] | None) -> None:
    for sock in sockets or []:
        sock.close()
