"""How a Fabric service process serves its app."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from fabric_core.launcher import free_port
from fabric_web.serving import bound_socket, serve_in_thread
from fastapi import FastAPI

# A service process as the fabric-* commands start one, with a route that tells what its
# garbage collector sees.
SERVICE = """
import gc, sys
from fastapi import FastAPI
from fabric_core.settings import Settings
from fabric_web.serving import serve

app = FastAPI()

@app.get("/gc")
def collector() -> dict:
    return {"frozen": gc.get_freeze_count(), "tracked": len(gc.get_objects())}

serve(app, Settings(home=sys.argv[2]), int(sys.argv[1]), "test")
"""


def test_a_served_process_leaves_its_start_up_objects_out_of_full_collections(tmp_path):
    """What start-up built lives as long as the process: frozen, a full collection does not
    walk it (0.2 s in the gateway, paid by whichever request triggered it)."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-c", SERVICE, str(port), str(tmp_path / "home")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                answer = httpx.get(f"http://127.0.0.1:{port}/gc", timeout=5).json()
                break
            except httpx.TransportError:
                assert process.poll() is None, process.stderr.read().decode()[-2000:]
                assert time.monotonic() < deadline, "the service did not start"
                time.sleep(0.1)
        # Everything imported and built before serving is frozen; what is left for the
        # collector is what requests make.
        assert answer["frozen"] > 20_000
        assert answer["tracked"] < answer["frozen"] / 10
    finally:
        process.terminate()
        process.wait(15)
        process.stderr.close()


def test_free_ports_are_outside_the_range_outgoing_connections_take_theirs_from():
    """A port from the ephemeral range can become the local end of any outgoing connection
    before its server binds it; and no port is handed out twice."""
    lowest_ephemeral = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    ports = [free_port() for _ in range(200)]
    assert len(set(ports)) == len(ports)
    assert all(port < lowest_ephemeral for port in ports), sorted(ports)[-5:]


def test_a_held_socket_refuses_connections_and_keeps_its_port_until_served():
    sock = bound_socket()
    host, port = sock.getsockname()[:2]
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://{host}:{port}/", timeout=5)
    with socket.socket() as other, pytest.raises(OSError):
        other.bind((host, port))
    app = FastAPI()
    app.get("/")(lambda: {"served": True})
    server = serve_in_thread(app, sock=sock)
    try:
        assert httpx.get(f"{server.url}/", timeout=5).json() == {"served": True}
        assert server.url == f"http://{host}:{port}"
    finally:
        server.stop()


# uvicorn ends a failed start-up with SystemExit on the server's thread.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_server_that_fails_to_start_lets_its_port_go():
    @asynccontextmanager
    async def refuse(app):
        raise RuntimeError("no start")
        yield

    app = FastAPI(lifespan=refuse)
    sock = bound_socket()
    host, port = sock.getsockname()[:2]
    with pytest.raises(RuntimeError, match="stopped during start-up"):
        serve_in_thread(app, sock=sock)
    assert sock.fileno() == -1
    with socket.socket() as other:
        other.bind((host, port))  # free again
