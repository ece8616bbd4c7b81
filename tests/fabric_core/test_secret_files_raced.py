"""Secrets on a fresh home, raced by processes started together as ``fabric up`` starts
three; refused secrets stop a process with a clear message; private files stay private."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
from pathlib import Path

import pytest
from fabric_core.airflow_stack import airflow_environment, check_airflow_login
from fabric_core.errors import ConfigurationError
from fabric_core.runtime import create_runtime
from fabric_core.settings import Settings
from fabric_web.serving import free_port

RACERS = 6


def _resolve_together(home: str, barrier, results) -> None:
    settings = Settings(home=Path(home))
    barrier.wait()  # every process reaches the fresh home at the same moment
    results.put(
        (
            settings.resolved_secret_key(),
            settings.resolved_service_token(),
            settings.resolved_admin_token(),
        )
    )


def test_processes_racing_on_a_fresh_home_agree_on_private_secrets(tmp_path):
    home = tmp_path / "fresh" / "home"
    context = multiprocessing.get_context("spawn")  # no state shared with this process
    barrier, results = context.Barrier(RACERS), context.Queue()
    racers = [
        context.Process(target=_resolve_together, args=(str(home), barrier, results))
        for _ in range(RACERS)
    ]
    for racer in racers:
        racer.start()
    answers = [results.get(timeout=120) for _ in racers]
    for racer in racers:
        racer.join(30)
        assert racer.exitcode == 0
    assert len(set(answers)) == 1
    key, service_token, admin_token = answers[0]
    assert all(len(secret) >= 32 for secret in answers[0])
    assert len({key, service_token, admin_token}) == 3
    assert home.stat().st_mode & 0o777 == 0o700
    for name, value in (
        ("secret.key", key),
        ("service.token", service_token),
        ("admin.token", admin_token),
    ):
        assert (home / name).read_text().strip() == value
        assert (home / name).stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in home.iterdir()) == ["admin.token", "secret.key", "service.token"]


def test_an_existing_home_open_to_others_is_tightened(tmp_path):
    home = tmp_path / "home"
    home.mkdir(mode=0o755)
    home.chmod(0o755)
    settings = Settings(home=home, secret_key="test-secret-key-0123456789")
    create_runtime(settings).close()
    assert home.stat().st_mode & 0o777 == 0o700


def test_airflows_password_file_is_private(tmp_path):
    settings = Settings(
        home=tmp_path / "home", airflow_username="admin", airflow_password="pw-Airflow-0123456"
    )
    airflow_home = tmp_path / "airflow"
    environment = airflow_environment(settings, home=airflow_home, host="127.0.0.1", port=8080)
    passwords = Path(environment["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"])
    assert passwords.stat().st_mode & 0o777 == 0o600
    assert "pw-Airflow-0123456" in passwords.read_text()


def test_the_sqlite_metadata_db_is_created_private(tmp_path):
    settings = Settings(home=tmp_path / "home", secret_key="test-secret-key-0123456789")
    runtime = create_runtime(settings)
    runtime.check_database()
    runtime.close()
    database = tmp_path / "home" / "fabric.db"
    assert (tmp_path / "home").stat().st_mode & 0o777 == 0o700
    files = [database, *database.parent.glob("fabric.db-*")]
    assert all(path.stat().st_mode & 0o777 == 0o600 for path in files), files
    database.chmod(0o644)  # a database made by an older version is tightened
    create_runtime(settings).close()
    assert database.stat().st_mode & 0o777 == 0o600


def _fabric_env(home: Path, **values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FABRIC_")}
    return {**env, "FABRIC_HOME": str(home), **values}


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "FABRIC_SECRET_KEY is set but empty"),
        ("change-me", "FABRIC_SECRET_KEY is the placeholder 'change-me'"),
    ],
)
def test_fabric_up_refuses_an_empty_or_placeholder_key(tmp_path, value, message):
    result = subprocess.run(
        [sys.executable, "-m", "fabric_core.cli", "up"],
        env=_fabric_env(tmp_path / "home", FABRIC_SECRET_KEY=value),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert f"error: {message}" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_gateway_refuses_a_placeholder_key(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "fabric_gateway"],
        env=_fabric_env(
            tmp_path / "home", FABRIC_SECRET_KEY="change-me", FABRIC_GATEWAY_PORT=str(free_port())
        ),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "FABRIC_SECRET_KEY is the placeholder 'change-me'" in result.stderr


@pytest.mark.parametrize(
    ("url", "login", "refused"),
    [
        ("http://127.0.0.1:8080", ("airflow", "airflow"), False),
        ("http://localhost:8080", ("airflow", "airflow"), False),
        ("http://[::1]:8080", ("airflow", "airflow"), False),
        ("http://0.0.0.0:8080", ("airflow", "airflow"), True),
        ("http://10.0.0.5:8080", ("airflow", "airflow"), True),
        ("http://airflow-apiserver:8080", ("airflow", "airflow"), True),
        ("http://airflow-apiserver:8080", ("airflow", "a-real-password-123"), False),
    ],
)
def test_the_default_airflow_login_is_for_loopback_only(url, login, refused):
    settings = Settings(airflow_url=url, airflow_username=login[0], airflow_password=login[1])
    if refused:
        with pytest.raises(ConfigurationError, match="FABRIC_AIRFLOW_PASSWORD"):
            check_airflow_login(settings)
    else:
        check_airflow_login(settings)


def test_fabric_airflow_setup_refuses_the_default_login_off_loopback(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "fabric_core.cli", "airflow", "setup"],
        env=_fabric_env(tmp_path / "home", FABRIC_AIRFLOW_URL="http://10.0.0.5:8080"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert "not on this machine's loopback address" in result.stderr
