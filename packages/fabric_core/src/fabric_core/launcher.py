"""Starting Fabric's three processes (gateway, sync service, dataset service) as ``fabric up``
and ``fabric demo`` do: each its own Python process, started by module name, so the command
that starts them imports none of them."""

from __future__ import annotations

import importlib.util
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import httpx

from fabric_core.errors import ConfigurationError, ServiceUnavailableError
from fabric_core.settings import Settings

# (name, module run with ``python -m``, the setting that holds its port)
SERVICES = (
    ("gateway", "fabric_gateway", "gateway_port"),
    ("sync", "fabric_sync", "sync_port"),
    ("dataset", "fabric_dataset", "dataset_port"),
)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def missing_services() -> list[str]:
    return [module for _, module, _ in SERVICES if importlib.util.find_spec(module) is None]


def settings_env(settings: Settings) -> dict[str, str]:
    """``settings`` as the ``FABRIC_*`` variables that make a child process read the same."""
    env: dict[str, str] = {}
    for name, value in settings.model_dump().items():
        if value is not None:
            env[f"FABRIC_{name.upper()}"] = str(value)
    env["FABRIC_HOME"] = str(settings.home.resolve())
    return env


@dataclass
class ServiceProcesses:
    """The running processes and the ports they serve on."""

    processes: dict[str, subprocess.Popen]
    ports: dict[str, int]
    ready: set[str] = field(default_factory=set)

    def exited(self) -> list[str]:
        return [name for name, process in self.processes.items() if process.poll() is not None]

    def wait_until_ready(
        self,
        *,
        timeout: float = 60,
        should_stop: Callable[[], bool] = lambda: False,
        on_ready: Callable[[str, int], None] = lambda name, port: None,
    ) -> None:
        """Wait until every service answers ``/health``.

        Raises:
            ServiceUnavailableError: one exited or did not answer within ``timeout``.
        """
        deadline = time.monotonic() + timeout
        while len(self.ready) < len(self.processes) and not should_stop():
            if exited := self.exited():
                raise ServiceUnavailableError(f"{', '.join(exited)} stopped during start-up")
            if time.monotonic() > deadline:
                waiting = sorted(set(self.processes) - self.ready)
                raise ServiceUnavailableError(
                    f"{', '.join(waiting)} did not answer within {timeout:.0f} s"
                )
            for name, port in self.ports.items():
                if name not in self.ready and _healthy(port):
                    self.ready.add(name)
                    on_ready(name, port)
            time.sleep(0.2)

    def stop(self, timeout: float = 15) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        deadline = time.monotonic() + timeout
        for process in self.processes.values():
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _healthy(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def start_services(settings: Settings, env: Mapping[str, str]) -> ServiceProcesses:
    """Start the three services with ``env`` (their ports are ``settings``')."""
    if missing := missing_services():
        raise ConfigurationError(
            f"not installed: {', '.join(missing)} (install the Fabric workspace: uv sync)"
        )
    processes = {
        name: subprocess.Popen([sys.executable, "-m", module], env=dict(env))
        for name, module, _ in SERVICES
    }
    ports = {name: getattr(settings, port_setting) for name, _, port_setting in SERVICES}
    return ServiceProcesses(processes, ports)
