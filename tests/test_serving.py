"""How a Fabric service process serves its app."""

from __future__ import annotations

import subprocess
import sys
import time

import httpx
from fabric_core.launcher import free_port

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
