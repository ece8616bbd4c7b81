"""Starting Fabric's three processes (gateway, sync service, dataset service) as ``fabric up``
and ``fabric demo`` do: each its own Python process, started by module name, so the command
that starts them imports none of them."""

from __future__ import annotations

import importlib.util
import json
import random
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from fabric_core.errors import ConfigurationError, ServiceUnavailableError
from fabric_core.settings import Settings

# (name, module run with ``python -m``, the setting that holds its port)
SERVICES = (
    ("gateway", "fabric_gateway", "gateway_port"),
    ("sync", "fabric_sync", "sync_port"),
    ("dataset", "fabric_dataset", "dataset_port"),
)


# Ports handed out by free_port in this process: a port is handed out once, even if whoever
# asked for it has not bound it yet.
_handed_out: set[int] = set()
_handing_out = threading.Lock()
_LOWEST_PICKED_PORT = 20_000
_EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing is bound to now, for a server that is started next.

    Chosen below the kernel's ephemeral range where the kernel says what it is: a port from
    that range (what binding port 0 gives) can be taken as the local end of any outgoing
    connection before the server that was meant to have it binds it."""
    candidates = _ports_below_the_ephemeral_range()
    with _handing_out:
        for _ in range(500):
            port = random.choice(candidates) if candidates else 0
            try:
                with socket.socket() as sock:
                    sock.bind((host, port))
                    port = sock.getsockname()[1]
            except OSError:
                continue
            if port in _handed_out:
                continue
            _handed_out.add(port)
            return port
    raise ServiceUnavailableError(f"No free port found on {host}.")


def _ports_below_the_ephemeral_range() -> range:
    try:
        lowest_ephemeral = int(_EPHEMERAL_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return range(0)  # not Linux: let the kernel pick
    if lowest_ephemeral - _LOWEST_PICKED_PORT < 1_000:
        return range(0)
    return range(_LOWEST_PICKED_PORT, lowest_ephemeral)


def missing_services() -> list[str]:
    return [module for _, module, _ in SERVICES if importlib.util.find_spec(module) is None]


def settings_env(settings: Settings) -> dict[str, str]:
    """``settings`` as the ``FABRIC_*`` variables that make a child process read the same."""
    env: dict[str, str] = {}
    for name, value in settings.model_dump(mode="json").items():
        if isinstance(value, list | dict):  # list settings are JSON, as pydantic-settings reads
            env[f"FABRIC_{name.upper()}"] = json.dumps(value)
        elif value is not None:
            env[f"FABRIC_{name.upper()}"] = str(value)
    env["FABRIC_HOME"] = str(settings.home.resolve())
    return env


def create_shared_secrets(settings: Settings) -> None:
    """Resolve the secret key and the service and admin tokens once, before the processes
    start: each is then read from its settled file (or the environment) by all of them, and a
    placeholder or empty value stops here with its message rather than in three logs."""
    settings.resolved_secret_key()
    settings.resolved_service_token()
    settings.resolved_admin_token()


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
                if name not in self.ready and _healthy(name, port):
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


def _healthy(name: str, port: int) -> bool:
    """The service ``name`` (not some other server that took the port) answers healthy."""
    try:
        answer = httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
        return answer.status_code == 200 and answer.json().get("service") == name
    except (httpx.HTTPError, ValueError, AttributeError):
        return False


def start_services(
    settings: Settings, env: Mapping[str, str], *, log_dir: Path | None = None
) -> ServiceProcesses:
    """Start the three services with ``env`` (their ports are ``settings``'); their output goes
    to the terminal, or to ``log_dir/{name}.log``."""
    if missing := missing_services():
        raise ConfigurationError(
            f"not installed: {', '.join(missing)} (install the Fabric workspace: uv sync)"
        )
    create_shared_secrets(settings)
    ports = {name: getattr(settings, port_setting) for name, _, port_setting in SERVICES}
    services = ServiceProcesses({}, ports)
    if log_dir is not None:
        log_dir.mkdir(parents=True, exist_ok=True)
    try:
        for name, module, _ in SERVICES:
            output = None if log_dir is None else (log_dir / f"{name}.log").open("ab")
            try:
                services.processes[name] = subprocess.Popen(
                    [sys.executable, "-m", module],
                    env=dict(env),
                    stdout=output,
                    stderr=subprocess.STDOUT if output else None,
                )
            finally:
                if output is not None:
                    output.close()  # the child holds its own copy
    except BaseException:
        services.stop()  # none left running when a later one could not start
        raise
    return services
