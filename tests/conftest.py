"""Shared fixtures: real PostgreSQL and MariaDB servers, fresh databases, running services.

Outside CI a missing server skips its tests with the reason; with CI=true it fails them.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pymysql
import pytest
from fabric_core.runtime import Runtime, create_runtime
from fabric_core.settings import Settings

PG_HOST, PG_PORT, PG_USER = "127.0.0.1", 5432, "postgres"
MYSQL_HOST, MYSQL_PORT, MYSQL_USER = "127.0.0.1", 3306, "root"


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


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Embedded defaults in a temporary FABRIC_HOME (SQLite metadata DB)."""
    return Settings(home=tmp_path / "home", secret_key="test-secret-key", job_poll_interval=0.05)


@pytest.fixture
def runtime(settings: Settings) -> Iterator[Runtime]:
    runtime = create_runtime(settings)
    yield runtime
    runtime.close()
