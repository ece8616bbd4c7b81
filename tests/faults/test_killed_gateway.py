"""The gateway killed (`kill -9`) after it queued a job and before it handed it over: the
gateway started again hands it over, and the job runs; nothing stays queued."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from datetime import timedelta

from fabric_core.launcher import settings_env
from fabric_core.models import Job, utcnow
from fabric_core.runtime import create_runtime
from fabric_core.sync_jobs import queue_sync
from fault_helpers import fabric_processes, fabric_settings, gateway, job_end
from sqlalchemy import update


def test_a_job_the_killed_gateway_never_handed_over_runs_after_its_restart(tmp_path):
    path = tmp_path / "s.db"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE t (id INTEGER PRIMARY KEY)")
    connection.close()
    settings = fabric_settings(tmp_path / "home", job_handover_seconds=1, sweep_seconds=0.3)
    with fabric_processes(settings, tmp_path / "logs") as services:
        with gateway(settings) as api:
            body = {"name": "s", "kind": "sqlite", "database": str(path)}
            connection_id = api.post("/api/data-connections", json=body).json()["id"]
        services.processes["gateway"].send_signal(signal.SIGKILL)
        services.processes["gateway"].wait()
        # What the killed gateway had committed, and never handed over.
        runtime = create_runtime(settings.model_copy(update={"auto_migrate": False}))
        with runtime.session_factory.begin() as session:
            job, _ = queue_sync(session, connection_id, orchestrator="local")
            job_id = job.id
            past = utcnow() - timedelta(seconds=5)
            session.execute(update(Job).where(Job.id == job_id).values(created_at=past))
        runtime.close()

        env = {**os.environ, **settings_env(settings)}
        log = (tmp_path / "logs" / "gateway-again.log").open("ab")
        restarted = subprocess.Popen(
            [sys.executable, "-m", "fabric_gateway"], env=env, stdout=log, stderr=log
        )
        services.processes["gateway"] = restarted  # stopped with the others
        services.ready.discard("gateway")
        services.wait_until_ready(timeout=60)
        with gateway(settings) as api:
            ended = job_end(api, job_id, timeout=60)
            assert ended["status"] == "success", ended
            assert api.get("/api/jobs", params={"limit": 1000}).json()[0]["status"] != "queued"
        log.close()
