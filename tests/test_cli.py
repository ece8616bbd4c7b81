"""The ``fabric`` command as a user runs it: demo, db upgrade, up (and its clean stop)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from conftest import pg_url
from fabric_web.serving import free_port

FABRIC = [sys.executable, "-m", "fabric_core.cli"]


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FABRIC_")}
    return {**env, "FABRIC_HOME": str(home), **extra}


def test_demo_runs_end_to_end_and_again(tmp_path):
    env = _env(tmp_path / "home")
    first = subprocess.run([*FABRIC, "demo"], env=env, capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    out = first.stdout
    assert out.count("registered connection") == 3
    assert "sync crm      success: 1 tables, 5 columns (+1 ~0 -0 tables" in out
    assert "shop.orders (2 rows):" in out and "client_id integer -> Clients.ClientID" in out
    assert (tmp_path / "home" / "fabric.db").exists()
    assert "dataset customers v1: 7 rows at file://" in out
    assert "2 rows from demo_shop.main.Clients" in out
    assert "Alan Turing | alan@example.org | GB |" in out  # "United Kingdom" mapped to GB
    parts = list((tmp_path / "home" / "storage" / "datasets" / "customers" / "v1").iterdir())
    assert sorted(p.name for p in parts) == ["_manifest.json", "part-00000.parquet"]

    second = subprocess.run([*FABRIC, "demo"], env=env, capture_output=True, text=True, timeout=120)
    assert second.returncode == 0, second.stderr
    assert second.stdout.count("already registered") == 3
    assert "(+0 ~0 -0 tables, +0 ~0 -0 columns)" in second.stdout
    assert "dataset customers v2: 7 rows" in second.stdout


@pytest.mark.postgres
def test_db_upgrade_on_postgresql(tmp_path, pg_database):
    url = pg_url(pg_database())
    env = _env(tmp_path, FABRIC_DATABASE_URL=url)
    result = subprocess.run([*FABRIC, "db", "upgrade"], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert f"at revision {_head_revision()}" in result.stdout


def _head_revision() -> str:
    """The newest migration's id (migrations are numbered ``NNNN_what.py``)."""
    import fabric_core.migrations

    versions = Path(fabric_core.migrations.__file__).parent / "versions"
    return max(p.name[:4] for p in versions.glob("[0-9][0-9][0-9][0-9]_*.py"))


def test_db_upgrade_reports_an_unreachable_database(tmp_path):
    url = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/nowhere"
    env = _env(tmp_path, FABRIC_DATABASE_URL=url)
    result = subprocess.run([*FABRIC, "db", "upgrade"], env=env, capture_output=True, text=True)
    assert result.returncode == 1
    assert "migration failed" in result.stderr and "Traceback" not in result.stderr


def _readme_curl_start() -> str:
    """The README's curl session up to its first token creation (the auth header and a token)."""
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    session = readme.split('auth="Authorization', 1)[1].split("# register a source", 1)[0]
    return 'auth="Authorization' + session


def test_up_serves_every_service_and_stops_on_sigterm(tmp_path):
    ports = {name: free_port() for name in ("GATEWAY", "SYNC", "DATASET")}
    env = _env(tmp_path / "unused", **{f"FABRIC_{n}_PORT": str(p) for n, p in ports.items()})
    del env["FABRIC_HOME"]  # the default ./.fabric, as the README's curl session expects
    process = subprocess.Popen(
        [*FABRIC, "up"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        healthy: dict[str, int] = {}
        while len(healthy) < 3 and time.monotonic() < deadline:
            for name, port in ports.items():
                with contextlib.suppress(httpx.HTTPError):
                    healthy[name] = httpx.get(f"http://127.0.0.1:{port}/health").status_code
            time.sleep(0.3)
        assert healthy == {"GATEWAY": 200, "SYNC": 200, "DATASET": 200}
        gateway = f"http://127.0.0.1:{ports['GATEWAY']}"
        assert httpx.get(f"{gateway}/api/data-connections").status_code == 401
        token = (tmp_path / ".fabric" / "admin.token").read_text().strip()
        headers = {"Authorization": f"Bearer {token}"}
        assert httpx.get(f"{gateway}/api/data-connections", headers=headers).json() == []
        script = _readme_curl_start().replace("localhost:8004", gateway)
        created = subprocess.run(
            ["bash", "-c", script], cwd=tmp_path, capture_output=True, text=True, check=True
        )
        assert '"role":"viewer"' in created.stdout and '"token":"fabric_' in created.stdout
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert process.returncode == 0, output
    assert "Fabric is up" in output
    assert f"admin token in {(tmp_path / '.fabric' / 'admin.token').resolve()}" in output
    for port in ports.values():
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://127.0.0.1:{port}/health")


def test_token_commands_create_list_and_revoke(tmp_path):
    env = _env(tmp_path / "home")

    def fabric(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([*FABRIC, *args], env=env, capture_output=True, text=True)

    created = fabric("token", "create", "--name", "ci bot", "--role", "editor")
    assert created.returncode == 0, created.stderr
    value = created.stdout.strip().splitlines()[-1]
    assert value.startswith("fabric_") and "'ci bot' (editor)" in created.stdout
    listed = fabric("token", "list")
    assert "editor" in listed.stdout and "ci bot" in listed.stdout and value not in listed.stdout
    assert "active" in listed.stdout

    from fabric_core.runtime import create_runtime
    from fabric_core.settings import Settings
    from fabric_core.tokens import authenticate

    runtime = create_runtime(Settings(home=tmp_path / "home"))
    try:
        with runtime.session_factory() as session:
            assert authenticate(session, value, bootstrap_admin="x" * 20).role == "editor"
        assert fabric("token", "revoke", "1").returncode == 0
        with runtime.session_factory() as session:
            assert authenticate(session, value, bootstrap_admin="x" * 20) is None
    finally:
        runtime.close()
    assert "revoked" in fabric("token", "list").stdout

    wrong_role = fabric("token", "create", "--name", "x", "--role", "root")
    assert wrong_role.returncode == 1 and "Unknown role" in wrong_role.stderr
    missing = fabric("token", "revoke", "99")
    assert missing.returncode == 1 and "not found" in missing.stderr
