"""The ``fabric`` command: ``up``, ``demo``, ``db upgrade``."""

from __future__ import annotations

import os
import signal
import time
from typing import Annotated
from urllib.parse import urlsplit

import typer

from fabric_core.airflow_api import AirflowClient
from fabric_core.airflow_stack import (
    DEFAULT_LOGIN,
    check_airflow_login,
    setup_airflow,
    start_airflow,
    wait_until_healthy,
)
from fabric_core.db import create_metadata_engine
from fabric_core.demo_run import run_demo
from fabric_core.errors import FabricError, ServiceUnavailableError
from fabric_core.launcher import (
    ServiceProcesses,
    create_shared_secrets,
    missing_services,
    start_services,
)
from fabric_core.migrate import current_revision, upgrade_database
from fabric_core.runtime import create_runtime
from fabric_core.secret_rotation import PROCESSES_TO_RESTART, rotate_secrets, settle
from fabric_core.settings import (
    ADMIN_TOKEN_FILE,
    PREVIOUS_SECRET_KEY_FILE,
    SECRET_KEY_FILE,
    Settings,
    get_settings,
)
from fabric_core.token_cli import token_app

app = typer.Typer(help="Fabric: one catalog and unified datasets over your data connections.")
db_app = typer.Typer(help="The metadata database.")
app.add_typer(db_app, name="db")
airflow_app = typer.Typer(help="Apache Airflow as the orchestrator.")
app.add_typer(airflow_app, name="airflow")
app.add_typer(token_app, name="token")
secrets_app = typer.Typer(help="The key that encrypts stored connection secrets.")
app.add_typer(secrets_app, name="secrets")


def fail(message: str) -> typer.Exit:
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    return typer.Exit(code=1)


@db_app.command("upgrade")
def db_upgrade(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
) -> None:
    """Apply the metadata DB migrations."""
    settings = get_settings()
    settings.ensure_home()
    engine = create_metadata_engine(
        settings.resolved_database_url,
        connect_timeout=settings.metadata_connect_timeout,
        statement_timeout=None,  # migrations
    )
    try:
        upgrade_database(engine, revision)
        typer.echo(f"metadata DB at revision {current_revision(engine)}")
    except Exception as exc:
        raise fail(f"migration failed: {type(exc).__name__}: {exc}") from None
    finally:
        engine.dispose()


@secrets_app.command("rotate")
def secrets_rotate(
    new_key: Annotated[
        str | None,
        typer.Option(
            "--new-key",
            envvar="FABRIC_NEW_SECRET_KEY",
            help="The new key (default: generated). Only needed when FABRIC_SECRET_KEY is set.",
        ),
    ] = None,
    settle_only: Annotated[
        bool,
        typer.Option(
            "--settle",
            help="No new key: encrypt under the current key the secrets that only "
            "FABRIC_SECRET_KEY_PREVIOUS opens (after a restart with a new FABRIC_SECRET_KEY).",
        ),
    ] = False,
) -> None:
    """Encrypt every stored connection secret again under a new key."""
    settings = get_settings()
    try:
        runtime = create_runtime(settings)
    except FabricError as exc:
        raise fail(exc.message) from None
    if settle_only:
        try:
            settled = settle(runtime.session_factory, runtime.box)
        finally:
            runtime.close()
        typer.echo(
            f"{settled} stored secret(s) moved to the current key; no secret needs the "
            "previous key any more (FABRIC_SECRET_KEY_PREVIOUS can be removed)."
        )
        return
    try:
        rotation = rotate_secrets(settings, runtime.session_factory, new_key)
    except FabricError as exc:
        raise fail(f"{exc.message} Every stored secret still opens with the current key.") from None
    finally:
        runtime.close()
    typer.echo(f"{rotation.rotated} stored secret(s) encrypted under the new key.")
    if rotation.key_file:
        typer.echo(
            f"The new key is in {settings.home / SECRET_KEY_FILE}, the old one in "
            f"{settings.home / PREVIOUS_SECRET_KEY_FILE} (running processes still read both)."
        )
    else:
        if rotation.generated:
            typer.echo(f"New key (shown once): {rotation.new_key}")
        typer.echo(
            "Set FABRIC_SECRET_KEY to the new key (and FABRIC_SECRET_KEY_PREVIOUS to the old "
            "one until every process has restarted) wherever Fabric runs; until then the "
            "processes started with the old key cannot open the secrets."
        )
    typer.echo("Restart: " + ", ".join(PROCESSES_TO_RESTART) + ".")


@airflow_app.command("setup")
def airflow_setup() -> None:
    """Create or update Airflow's pools and the services' connections (idempotent)."""
    settings = get_settings()
    try:
        check_airflow_login(settings)
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
    if missing := missing_services():
        raise fail(f"not installed: {', '.join(missing)} (install the Fabric workspace: uv sync)")
    try:
        # The key and the tokens, made before three processes look for them; an empty or
        # placeholder value stops here with its message.
        create_shared_secrets(settings)
    except FabricError as exc:
        raise fail(exc.message) from None
    db_upgrade("head")
    if settings.admin_token is None:
        typer.echo(f"admin token in {(settings.home / ADMIN_TOKEN_FILE).resolve()} (send it as")
        typer.echo("  Authorization: Bearer <token>; `fabric token create` makes more)")
    else:
        typer.echo("admin token: the value of FABRIC_ADMIN_TOKEN")
    env = {**os.environ, "FABRIC_AUTO_MIGRATE": "false"}
    airflow = None
    if with_airflow:
        airflow = _start_airflow(settings)
        env["FABRIC_ORCHESTRATOR"] = "airflow"
    services = start_services(settings, env)

    stopping = False

    def stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        _announce_when_ready(settings, services, lambda: stopping)
        while not stopping and not services.exited():
            time.sleep(0.2)
        exited = services.exited()
        if exited and not stopping:
            typer.secho(f"{', '.join(exited)} stopped; stopping the others", err=True)
    finally:
        services.stop()
        if airflow is not None:
            airflow.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    codes = [p.returncode for p in services.processes.values()]
    if any(code not in (0, -signal.SIGTERM) for code in codes) and not stopping:
        raise typer.Exit(code=1)


def _start_airflow(settings: Settings):
    """Start Airflow on FABRIC_AIRFLOW_URL's port, wait for it, set up pools and connections."""
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
        f"(login {settings.airflow_username} / {_shown_password(settings)})"
    )
    return stack


def _shown_password(settings: Settings) -> str:
    # Only the well-known default (accepted on loopback) is printed, never a real password.
    if settings.airflow_password == DEFAULT_LOGIN[1]:
        return settings.airflow_password
    return "FABRIC_AIRFLOW_PASSWORD"


def _announce_when_ready(settings: Settings, services: ServiceProcesses, should_stop) -> None:
    def announce(name: str, port: int) -> None:
        typer.echo(f"{name:8} ready on http://{settings.bind_host}:{port}")

    try:
        services.wait_until_ready(should_stop=should_stop, on_ready=announce)
    except ServiceUnavailableError as exc:
        typer.secho(exc.message, err=True)
        return
    if not should_stop():
        typer.echo(f"Fabric is up: API docs at http://127.0.0.1:{settings.gateway_port}/docs")


@app.command()
def demo() -> None:
    """Run Fabric's main job end to end on sample SQLite sources it creates itself."""
    try:
        run_demo(get_settings(), echo=typer.echo)
    except FabricError as exc:
        raise fail(exc.message) from None


def main() -> None:
    app()


if __name__ == "__main__":
    main()
