"""Fabric's processes for the service-path dataset-build benchmark, started as ``fabric up``
starts them, and the dataset service's peak memory.

``fabric up`` migrates the metadata DB once, then starts the gateway, the sync service and the
dataset service as their own Python processes (``python -m fabric_<name>``) with the settings
in ``FABRIC_*`` variables and ``FABRIC_AUTO_MIGRATE=false``. :func:`start_stack` does the
same through the launcher's own functions, on free loopback ports, with ``FABRIC_HOME`` in the
caller's folder and each process's output in ``logs/<name>.log`` there.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from fabric_core.db import create_metadata_engine
from fabric_core.launcher import (
    ServiceProcesses,
    create_shared_secrets,
    free_port,
    settings_env,
    start_services,
)
from fabric_core.migrate import upgrade_database
from fabric_core.schemas import TERMINAL_STATUSES
from fabric_core.settings import Settings

# As a client would poll; the end of a job is its own ``finished_at``, not when a poll saw it,
# so polling more often would only add load to the gateway the build shares the cores with.
POLL_SECONDS = 0.5


@dataclass
class Stack:
    """The running processes and an admin client of the gateway."""

    services: ServiceProcesses
    settings: Settings
    api: httpx.Client
    home: Path

    @property
    def dataset_pid(self) -> int:
        return self.services.processes["dataset"].pid

    def log_tail(self, name: str, chars: int = 3000) -> str:
        path = self.home.parent / "logs" / f"{name}.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        answer = self.api.post(path, json=body)
        if answer.status_code >= 400:
            raise RuntimeError(f"POST {path}: {answer.status_code} {answer.text}")
        return answer.json()

    def get(self, path: str, **params: Any) -> Any:
        answer = self.api.get(path, params=params)
        if answer.status_code >= 400:
            raise RuntimeError(f"GET {path}: {answer.status_code} {answer.text}")
        return answer.json()

    def wait_for_jobs(self, job_ids: list[str], timeout: float) -> dict[str, tuple[dict, float]]:
        """Poll each job until it ends; its last answer and when it ended (``time.time()``:
        its ``finished_at``, or when a poll saw it ended if it has none)."""
        ended: dict[str, tuple[dict, float]] = {}
        deadline = time.monotonic() + timeout
        while len(ended) < len(job_ids):
            for job_id in job_ids:
                if job_id in ended:
                    continue
                job = self.get(f"/api/jobs/{job_id}")
                if job["status"] in TERMINAL_STATUSES:
                    ended[job_id] = (job, _ended_at(job))
            if len(ended) < len(job_ids):
                if exited := self.services.exited():
                    raise RuntimeError(f"{exited} exited: {self.log_tail(exited[0])}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"jobs {job_ids} did not end within {timeout:.0f} s")
                time.sleep(POLL_SECONDS)
        return ended


def _ended_at(job: dict[str, Any]) -> float:
    if job.get("finished_at"):
        finished = datetime.fromisoformat(job["finished_at"])
        if finished.tzinfo is None:  # the metadata DB keeps UTC
            finished = finished.replace(tzinfo=UTC)
        return finished.timestamp()
    return time.time()


def read_status_kb(pid: int, field: str) -> int:
    """A ``kB`` field of ``/proc/<pid>/status`` (``VmHWM``: peak RSS, ``VmRSS``: now)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/{pid}/status")


def reset_peak_rss(pid: int) -> bool:
    """Start ``pid``'s ``VmHWM`` again from its current RSS (``clear_refs`` 5, Linux >= 4.0),
    so the peak read after a build is that build's. False when the kernel refuses it: the
    peak then also covers what ran before in the same process."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


@contextmanager
def start_stack(folder: Path, settings_update: dict[str, Any]) -> Iterator[Stack]:
    """The gateway, sync and dataset services on free ports, ``FABRIC_HOME`` at
    ``folder/home`` (SQLite metadata DB), settings overridden by ``settings_update``."""
    admin_token = "bench-admin-" + uuid.uuid4().hex
    ports = {name: free_port() for name in ("gateway_port", "sync_port", "dataset_port")}
    settings = Settings(
        home=folder / "home",
        secret_key="bench-secret-key-0123456789",
        admin_token=admin_token,
        rate_limit="1000000/minute",
        sync_url=f"http://127.0.0.1:{ports['sync_port']}",
        dataset_url=f"http://127.0.0.1:{ports['dataset_port']}",
        **ports,
        **settings_update,
    )
    settings.ensure_home()
    create_shared_secrets(settings)
    engine = create_metadata_engine(
        settings.resolved_database_url,
        connect_timeout=settings.metadata_connect_timeout,
        statement_timeout=None,  # migrations
    )
    try:
        upgrade_database(engine)  # once, as `fabric up` does before the processes start
    finally:
        engine.dispose()
    env = {
        **os.environ,
        **settings_env(settings),
        "FABRIC_ADMIN_TOKEN": admin_token,
        "FABRIC_AUTO_MIGRATE": "false",
    }
    services = start_services(settings, env, log_dir=folder / "logs")
    try:
        services.wait_until_ready(timeout=120)
        with httpx.Client(
            base_url=f"http://127.0.0.1:{settings.gateway_port}",
            headers={"Authorization": f"Bearer {admin_token}"},
            timeout=60,
        ) as api:
            yield Stack(services, settings, api, settings.home)
    finally:
        services.stop()
