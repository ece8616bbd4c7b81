"""Running Airflow 3 next to Fabric: its environment, its processes, its pools and connections.

Used by ``fabric up --airflow``, ``fabric airflow setup`` and the tests, so the stack users
start is the one that is tested. Airflow itself is only needed for the first two functions
that start processes (``uv sync --group airflow``).
"""

from __future__ import annotations

import hashlib
import importlib.util
import ipaddress
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

from fabric_core.airflow_api import AirflowClient
from fabric_core.errors import ConfigurationError, ServiceUnavailableError
from fabric_core.job_kinds import JOB_KINDS
from fabric_core.secret_files import PLACEHOLDERS, replace_secret
from fabric_core.settings import Settings

COMPONENTS: dict[str, list[str]] = {
    "api-server": ["api-server", "--workers", "1"],
    "scheduler": ["scheduler", "--skip-serve-logs"],
    "dag-processor": ["dag-processor"],
    "triggerer": ["triggerer", "--skip-serve-logs"],
}


DEFAULT_LOGIN = ("airflow", "airflow")


def check_airflow_login(settings: Settings) -> None:
    """Airflow's well-known default login is accepted for an Airflow on loopback only.

    Raises:
        ConfigurationError: FABRIC_AIRFLOW_URL is not a loopback address and the login is
            the default ``airflow`` / ``airflow``.
    """
    host = urlsplit(settings.airflow_url).hostname or ""
    default = (settings.airflow_username, settings.airflow_password) == DEFAULT_LOGIN
    placeholder = settings.airflow_password.strip().lower() in PLACEHOLDERS
    if (default or placeholder) and not _is_loopback(host):
        raise ConfigurationError(
            f"Airflow at {settings.airflow_url} is not on this machine's loopback address: "
            "set a real login with FABRIC_AIRFLOW_USERNAME and FABRIC_AIRFLOW_PASSWORD "
            "(the default airflow / airflow, or a placeholder password, is only accepted on "
            "127.0.0.1)."
        )


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def default_dags_folder() -> Path:
    """The repository's ``airflow/dags`` (this file lives in packages/fabric_core/src/...)."""
    return Path(__file__).resolve().parents[4] / "airflow" / "dags"


def airflow_environment(settings: Settings, *, home: Path, host: str, port: int) -> dict[str, str]:
    """Environment for every Airflow component: one config, one secret, loopback only."""
    dags = settings.airflow_dags_folder or default_dags_folder()
    if not dags.is_dir():
        raise ConfigurationError(f"No DAG folder at {dags}; set FABRIC_AIRFLOW_DAGS_FOLDER.")
    home.mkdir(parents=True, exist_ok=True)
    passwords = home / "simple_auth_manager_passwords.json"
    # Airflow's login in clear: 0600, written whole (a reader never sees half of it).
    replace_secret(passwords, json.dumps({settings.airflow_username: settings.airflow_password}))
    database = settings.airflow_database_url or f"sqlite:///{(home / 'airflow.db').resolve()}"
    # Task processes read Fabric's settings too (service URLs, the metadata DB for failures):
    # hand them resolved values, whatever their working directory.
    fabric = {
        "FABRIC_HOME": str(settings.home.resolve()),
        "FABRIC_DATABASE_URL": settings.resolved_database_url,
        "FABRIC_SYNC_URL": settings.resolved_sync_url,
        "FABRIC_DATASET_URL": settings.resolved_dataset_url,
        "FABRIC_JOB_POLL_INTERVAL": str(settings.job_poll_interval),
    }
    # All components must sign and check the same tokens.
    secret = hashlib.sha256(f"fabric-airflow:{settings.resolved_secret_key()}".encode()).hexdigest()
    return {
        **os.environ,
        **fabric,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": str(settings.airflow_parallelism),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://{host}:{port}/execution/",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{settings.airflow_username}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "10",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": database,
        "AIRFLOW__API__HOST": host,
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__SECRET_KEY": secret,
        "AIRFLOW__API_AUTH__JWT_SECRET": secret,
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
    }


@dataclass
class AirflowProcesses:
    """Airflow's components, each in its own process group, stopped together."""

    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def alive(self) -> bool:
        return all(p.poll() is None for p in self.processes.values())

    def stop(self, timeout: float = 20.0) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for process in self.processes.values():
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def require_airflow() -> None:
    if importlib.util.find_spec("airflow") is None:
        raise ConfigurationError("Airflow is not installed: run `uv sync --group airflow`.")


def start_airflow(
    settings: Settings,
    *,
    home: Path,
    host: str = "127.0.0.1",
    port: int = 8080,
    log_dir: Path,
    extra_env: dict[str, str] | None = None,
) -> AirflowProcesses:
    """Migrate Airflow's DB and start its components on ``host:port``."""
    require_airflow()
    check_airflow_login(settings)
    env = {**airflow_environment(settings, home=home, host=host, port=port), **(extra_env or {})}
    log_dir.mkdir(parents=True, exist_ok=True)
    migrate = subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if migrate.returncode != 0:
        raise ConfigurationError(f"airflow db migrate failed: {migrate.stderr[-2000:]}")
    stack = AirflowProcesses()
    for name, args in COMPONENTS.items():
        extra = ["--host", host, "--port", str(port)] if name == "api-server" else []
        log = (log_dir / f"{name}.log").open("ab")
        stack.processes[name] = subprocess.Popen(
            [sys.executable, "-m", "airflow", *args, *extra],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
    return stack


def wait_until_healthy(
    client: AirflowClient, stack: AirflowProcesses, timeout: float = 180
) -> None:
    """Wait for the API, a scheduler and a DAG processor that reported after our start."""
    deadline = time.monotonic() + timeout
    last = "no answer yet"
    while time.monotonic() < deadline:
        if not stack.alive():
            dead = [n for n, p in stack.processes.items() if p.poll() is not None]
            raise ServiceUnavailableError(f"Airflow component(s) exited: {', '.join(dead)}")
        try:
            health = client.health()
            if _fresh(health, "scheduler", stack.started_at) and _fresh(
                health, "dag_processor", stack.started_at
            ):
                return
            last = json.dumps(health)
        except ServiceUnavailableError as exc:
            last = exc.message
        time.sleep(1)
    raise ServiceUnavailableError(f"Airflow was not healthy within {timeout:.0f} s: {last}")


def _fresh(health: dict, component: str, since: datetime) -> bool:
    # Just after a restart Airflow may report old heartbeats as healthy: compare with our start.
    part = health.get(component) or {}
    beat = part.get("latest_scheduler_heartbeat") or part.get("latest_dag_processor_heartbeat")
    if part.get("status") != "healthy" or not beat:
        return False
    return datetime.fromisoformat(beat.replace("Z", "+00:00")) >= since


def setup_airflow(settings: Settings, client: AirflowClient) -> dict[str, int]:
    """Create or update the pools and the services' HTTP connections (idempotent).

    Each connection carries the service token as its password (Airflow encrypts connection
    passwords with its Fernet key): the DAG tasks present it to the service.
    """
    kinds = JOB_KINDS.values()
    token = settings.resolved_service_token()
    pools = {kind.pool: kind.pool_slots(settings) for kind in kinds}
    client.upsert_pools(pools)
    services = {
        kind.airflow_connection_id(): (kind.service_url(settings), kind.service) for kind in kinds
    }
    client.upsert_connections(
        [
            _http_connection(conn_id, url, token, f"Fabric {service} service")
            for conn_id, (url, service) in services.items()
        ]
    )
    return pools


def _http_connection(conn_id: str, url: str, token: str, description: str) -> dict:
    parts = urlsplit(url)
    return {
        "connection_id": conn_id,
        "conn_type": "http",
        "description": description,
        "host": parts.hostname,
        "port": parts.port or (443 if parts.scheme == "https" else 80),
        "schema": parts.scheme,
        "password": token,
    }
