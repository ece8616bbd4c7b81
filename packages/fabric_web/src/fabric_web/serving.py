"""Running Fabric's ASGI apps on threads of one process (tests). Needs uvicorn."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import uvicorn
from fabric_core.launcher import free_port

__all__ = ["ThreadedServer", "free_port", "serve_in_thread"]


@dataclass
class ThreadedServer:
    """A uvicorn server on a background thread; ``stop()`` runs the app's shutdown."""

    server: uvicorn.Server
    thread: threading.Thread
    url: str

    def stop(self, timeout: float = 30.0) -> None:
        self.server.should_exit = True
        self.thread.join(timeout)


def serve_in_thread(app, *, host: str = "127.0.0.1", port: int | None = None) -> ThreadedServer:
    """Start ``app`` on ``host:port`` (a free port by default) and wait until it accepts."""
    port = port or free_port(host)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError(f"The server on {host}:{port} stopped during start-up.")
        if time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError(f"The server on {host}:{port} did not start within 30 s.")
        time.sleep(0.02)
    return ThreadedServer(server=server, thread=thread, url=f"http://{host}:{port}")
