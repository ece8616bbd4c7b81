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
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
from fabric_core.db import create_metadata_engine
from fabric_core.launcher import ServiceProcesses, free_port, settings_env, start_services
from fabric_core.migrate import upgrade_database
from fabric_core.schemas import TERMINAL_STATUSES
from fabric_core.settings import Settings


def vmhwm_kib(pid: int) -> int:
    """Peak resident set size (``VmHWM``) of process ``pid``, in KiB, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmHWM in /proc/{pid}/status")


def vmrss_kib(pid: int) -> int:
    """Current resident set size (``VmRSS``) of process ``pid``, in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS in /proc/{pid}/status")


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

    def wait_for_job(
        self, job_id: str, *, timeout: float = 3600, poll_interval: float = 0.02
    ) -> dict[str, Any]:
        """Poll ``GET /api/jobs/{id}`` until the job has ended; its last status."""
        deadline = time.monotonic() + timeout
        while True:
            job = self.request("GET", f"/api/jobs/{job_id}")
            if job["status"] in TERMINAL_STATUSES:
                return job
            if time.monotonic() > deadline:
                raise RuntimeError(f"job {job_id} still {job['status']} after {timeout:g} s")
            if exited := self.services.exited():
                raise RuntimeError(f"{', '.join(exited)} stopped; logs in {self.log_dir}")
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
