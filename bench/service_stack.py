"""Fabric's processes for benchmarks, started as ``fabric up`` starts them.

The gateway, the sync service and the dataset service run as their own Python processes
(``fabric_core.launcher.start_services``) on free loopback ports, with ``FABRIC_HOME`` in a
temporary directory and the metadata DB migrated before they start (``fabric up`` runs
``fabric db upgrade`` first, then starts them with ``FABRIC_AUTO_MIGRATE=false``). Requests go
through the gateway with the admin token, as a user's would::

    with ServiceStack.start(database_url=None) as stack:
        connection = stack.request("POST", "/api/data-connections", json={...})
        job = stack.wait_for_job(stack.request("POST", ...)["dag_run_id"])
        print(stack.vmhwm_mb("sync"))
"""

from __future__ import annotations

import os
import secrets
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
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


def status_kib(pid: int, field: str) -> int:
    """A ``kB`` field of ``/proc/<pid>/status`` (``VmHWM``: peak RSS, ``VmRSS``: now)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/{pid}/status")


def vmhwm_kib(pid: int) -> int:
    """Peak resident set size (``VmHWM``) of process ``pid``, in KiB."""
    return status_kib(pid, "VmHWM")


def vmrss_kib(pid: int) -> int:
    """Current resident set size (``VmRSS``) of process ``pid``, in KiB."""
    return status_kib(pid, "VmRSS")


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


def ended_at(job: dict[str, Any]) -> float:
    """When a job ended (``time.time()``): its ``finished_at``, or now if it has none."""
    if job.get("finished_at"):
        finished = datetime.fromisoformat(job["finished_at"])
        if finished.tzinfo is None:  # the metadata DB keeps UTC
            finished = finished.replace(tzinfo=UTC)
        return finished.timestamp()
    return time.time()


class ServiceStack:
    """Running services, the admin token, and a keep-alive client on the gateway."""

    def __init__(
        self,
        settings: Settings,
        services: ServiceProcesses,
        admin_token: str,
        tmp: tempfile.TemporaryDirectory,
    ) -> None:
        self.settings = settings
        self.services = services
        self.admin_token = admin_token
        self.gateway_url = f"http://127.0.0.1:{settings.gateway_port}"
        self.log_dir = settings.home / "logs"
        self._tmp = tmp
        self.client = httpx.Client(
            base_url=self.gateway_url,
            headers={"Authorization": f"Bearer {admin_token}"},
            timeout=600,
        )

    @classmethod
    def start(
        cls,
        *,
        database_url: str | None = None,
        settings: dict[str, Any] | None = None,
        ready_timeout: float = 120,
    ) -> ServiceStack:
        """Start the three services on a fresh ``FABRIC_HOME`` (default metadata DB: SQLite in
        it); ``settings`` are more ``Settings`` fields for every process."""
        tmp = tempfile.TemporaryDirectory(prefix="fabric_stack_")
        ports = {name: free_port() for name in ("gateway_port", "sync_port", "dataset_port")}
        admin_token = "bench-admin-" + secrets.token_hex(16)
        config = Settings(
            home=Path(tmp.name) / "home",
            database_url=database_url,
            secret_key="bench-secret-key-" + secrets.token_hex(16),
            admin_token=admin_token,
            bind_host="127.0.0.1",
            orchestrator="local",
            rate_limit="1000000/minute",
            sync_url=f"http://127.0.0.1:{ports['sync_port']}",
            dataset_url=f"http://127.0.0.1:{ports['dataset_port']}",
            job_poll_interval=0.1,
            auto_migrate=False,
            **ports,
            **(settings or {}),
        )
        config.ensure_home()
        create_shared_secrets(config)
        engine = create_metadata_engine(config.resolved_database_url, statement_timeout=None)
        try:
            upgrade_database(engine)  # what `fabric up` does before it starts the services
        finally:
            engine.dispose()
        env = {**os.environ, **settings_env(config), "FABRIC_AUTO_MIGRATE": "false"}
        services = start_services(config, env, log_dir=config.home / "logs")
        stack = cls(config, services, admin_token, tmp)
        try:
            services.wait_until_ready(timeout=ready_timeout)
        except BaseException:
            stack.stop()
            raise
        return stack

    def pid(self, service: str) -> int:
        return self.services.processes[service].pid

    def vmhwm_mb(self, service: str) -> float:
        """Peak RSS of ``service``'s process so far, in MB (MiB)."""
        return vmhwm_kib(self.pid(service)) / 1024

    def vmrss_mb(self, service: str) -> float:
        return vmrss_kib(self.pid(service)) / 1024

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """Send a request through the gateway; its JSON answer (None when empty).

        Raises:
            RuntimeError: the answer was an error (its status and body in the message).
        """
        answer = self.client.request(method, path, **kwargs)
        if answer.status_code >= 400:
            raise RuntimeError(f"{method} {path}: {answer.status_code} {answer.text}")
        return answer.json() if answer.content else None

    def post(self, path: str, body: dict[str, Any]) -> Any:
        return self.request("POST", path, json=body)

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params=params)

    def log_tail(self, service: str, chars: int = 3000) -> str:
        path = self.log_dir / f"{service}.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""

    def wait_for_job(
        self, job_id: str, *, timeout: float = 3600, poll_interval: float = 0.02
    ) -> dict[str, Any]:
        """Poll ``GET /api/jobs/{id}`` until the job has ended; its last status."""
        [(job, _)] = self.wait_for_jobs([job_id], timeout, poll_interval).values()
        return job

    def wait_for_jobs(
        self, job_ids: list[str], timeout: float, poll_interval: float = 0.02
    ) -> dict[str, tuple[dict[str, Any], float]]:
        """Poll each job until it ends; its last answer and when it ended (``ended_at``)."""
        ended: dict[str, tuple[dict[str, Any], float]] = {}
        deadline = time.monotonic() + timeout
        while True:
            for job_id in job_ids:
                if job_id not in ended:
                    job = self.request("GET", f"/api/jobs/{job_id}")
                    if job["status"] in TERMINAL_STATUSES:
                        ended[job_id] = (job, ended_at(job))
            if len(ended) == len(job_ids):
                return ended
            if exited := self.services.exited():
                raise RuntimeError(f"{', '.join(exited)} stopped: {self.log_tail(exited[0])}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"jobs {sorted(set(job_ids) - set(ended))} still running")
            time.sleep(poll_interval)

    def stop(self) -> None:
        self.client.close()
        try:
            self.services.stop()
        finally:
            self._tmp.cleanup()

    def __enter__(self) -> ServiceStack:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
