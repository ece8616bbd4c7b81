"""The ``fabric`` command: ``up``, ``demo``, ``db upgrade``."""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import time
from typing import Annotated

import httpx
import typer

from fabric_core.settings import Settings, get_settings

app = typer.Typer(help="Fabric: one catalog and unified datasets over your data connections.")
db_app = typer.Typer(help="The metadata database.")
app.add_typer(db_app, name="db")
airflow_app = typer.Typer(help="Apache Airflow as the orchestrator.")
app.add_typer(airflow_app, name="airflow")

SERVICES = (
    ("gateway", "fabric_gateway", "gateway_port"),
    ("sync", "fabric_sync", "sync_port"),
    ("dataset", "fabric_dataset", "dataset_port"),
)


def fail(message: str) -> typer.Exit:
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    return typer.Exit(code=1)


@db_app.command("upgrade")
def db_upgrade(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
) -> None:
    """Apply the metadata DB migrations."""
    from fabric_core.db import create_metadata_engine
    from fabric_core.migrate import current_revision, upgrade_database

    settings = get_settings()
    settings.ensure_home()
    engine = create_metadata_engine(settings.resolved_database_url)
    try:
        upgrade_database(engine, revision)
        typer.echo(f"metadata DB at revision {current_revision(engine)}")
    except Exception as exc:
        raise fail(f"migration failed: {type(exc).__name__}: {exc}") from None
    finally:
        engine.dispose()


@airflow_app.command("setup")
def airflow_setup() -> None:
    """Create or update Airflow's pools and the services' connections (idempotent)."""
    from fabric_core.airflow_api import AirflowClient
    from fabric_core.airflow_stack import setup_airflow
    from fabric_core.errors import FabricError

    settings = get_settings()
    try:
        with AirflowClient(
            settings.airflow_url, settings.airflow_username, settings.airflow_password
        ) as client:
            pools = setup_airflow(settings, client)
    except FabricError as exc:
        raise fail(exc.message) from None
    typer.echo(f"Airflow at {settings.airflow_url}: pools {pools}, connections set up")


@app.command()
def up(
    with_airflow: Annotated[
        bool, typer.Option("--airflow", help="Also run Airflow 3 and orchestrate with it.")
    ] = False,
) -> None:
    """Run the gateway, sync and dataset services in the foreground until Ctrl-C."""
    settings = get_settings()
    missing = [module for _, module, _ in SERVICES if importlib.util.find_spec(module) is None]
    if missing:
        raise fail(f"not installed: {', '.join(missing)} (install the Fabric workspace: uv sync)")
    db_upgrade("head")
    env = {**os.environ, "FABRIC_AUTO_MIGRATE": "false"}
    airflow = None
    if with_airflow:
        airflow = _start_airflow(settings)
        env["FABRIC_ORCHESTRATOR"] = "airflow"
    processes: dict[str, subprocess.Popen] = {}
    for name, module, _ in SERVICES:
        processes[name] = subprocess.Popen([sys.executable, "-m", module], env=env)

    stopping = False

    def stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        _announce_when_ready(settings, processes, lambda: stopping)
        while not stopping and all(p.poll() is None for p in processes.values()):
            time.sleep(0.2)
        exited = [name for name, p in processes.items() if p.poll() is not None]
        if exited and not stopping:
            typer.secho(f"{', '.join(exited)} stopped; stopping the others", err=True)
    finally:
        _stop_all(processes)
        if airflow is not None:
            airflow.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if any(p.returncode not in (0, -signal.SIGTERM) for p in processes.values()) and not stopping:
        raise typer.Exit(code=1)


def _start_airflow(settings: Settings):
    """Start Airflow on FABRIC_AIRFLOW_URL's port, wait for it, set up pools and connections."""
    from urllib.parse import urlsplit

    from fabric_core.airflow_api import AirflowClient
    from fabric_core.airflow_stack import setup_airflow, start_airflow, wait_until_healthy
    from fabric_core.errors import FabricError

    address = urlsplit(settings.airflow_url)
    home = (settings.home / "airflow").resolve()
    typer.echo(f"starting Airflow on {settings.airflow_url} (logs in {home / 'logs'}) ...")
    try:
        stack = start_airflow(
            settings,
            home=home,
            host=address.hostname or "127.0.0.1",
            port=address.port or 8080,
            log_dir=home / "logs",
        )
    except FabricError as exc:
        raise fail(exc.message) from None
    try:
        with AirflowClient(
            settings.airflow_url, settings.airflow_username, settings.airflow_password
        ) as client:
            wait_until_healthy(client, stack)
            setup_airflow(settings, client)
    except (FabricError, KeyboardInterrupt) as exc:
        stack.stop()
        raise fail(getattr(exc, "message", "interrupted")) from None
    typer.echo(
        f"Airflow ready: UI {settings.airflow_public_url} "
        f"(login {settings.airflow_username} / {settings.airflow_password})"
    )
    return stack


def _announce_when_ready(settings: Settings, processes, should_stop) -> None:
    pending = {name: getattr(settings, port) for name, _, port in SERVICES}
    deadline = time.monotonic() + 60
    while pending and not should_stop() and time.monotonic() < deadline:
        for name, port in list(pending.items()):
            if processes[name].poll() is not None:
                pending.pop(name)
                continue
            try:
                httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).raise_for_status()
            except httpx.HTTPError:
                continue
            typer.echo(f"{name:8} ready on http://{settings.bind_host}:{port}")
            pending.pop(name)
        time.sleep(0.2)
    if not pending and not should_stop():
        typer.echo(f"Fabric is up: API docs at http://127.0.0.1:{settings.gateway_port}/docs")


def _stop_all(processes: dict[str, subprocess.Popen]) -> None:
    for process in processes.values():
        if process.poll() is None:
            process.terminate()
    deadline = time.monotonic() + 15
    for process in processes.values():
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@app.command()
def demo() -> None:
    """Run Fabric's main job end to end on sample SQLite sources it creates itself."""
    from fabric_core.demo_run import run_demo

    try:
        run_demo(get_settings(), echo=typer.echo)
    except ModuleNotFoundError as exc:
        raise fail(f"{exc.name} is not installed (install the Fabric workspace: uv sync)") from None


def main() -> None:
    app()


if __name__ == "__main__":
    main()
