"""The metadata DB migrations go up and down on SQLite and PostgreSQL without losing the
catalog (on SQLite a table rebuild would cascade through the foreign keys)."""

from __future__ import annotations

import threading
import time

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from conftest import pg_url
from fabric_core.db import create_metadata_engine
from fabric_core.migrate import alembic_config, current_revision, upgrade_database
from fabric_core.models import Base
from sqlalchemy import Engine, inspect, text


def _downgrade(engine: Engine, revision: str) -> None:
    config = alembic_config(engine)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, revision)


def _head(engine: Engine) -> str:
    return ScriptDirectory.from_config(alembic_config(engine)).get_current_head()


def _catalog_counts(engine: Engine) -> tuple[int, int, int]:
    with engine.connect() as connection:
        return tuple(
            connection.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()
            for table in ("catalog_tables", "catalog_columns", "column_mappings")
        )


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request, tmp_path):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'meta.db'}"
    else:
        url = pg_url(request.getfixturevalue("pg_database")())
    engine = create_metadata_engine(url)
    yield engine
    engine.dispose()


def test_down_to_0002_and_up_again_keeps_the_catalog(engine):
    upgrade_database(engine)
    long_type = "struct<" + ", ".join(f"field_{i}: int64" for i in range(40)) + ">"
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO connections (id, name, kind, options, created_at, updated_at) "
                "VALUES (1, 'c', 'sqlite', '{}', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
            )
        )
        connection.execute(
            text(
                "INSERT INTO catalog_schemas (id, connection_id, name, created_at) "
                "VALUES (1, 1, 'main', CURRENT_TIMESTAMP)"
            )
        )
        connection.execute(
            text(
                "INSERT INTO catalog_tables (id, connection_id, schema_id, name, kind, "
                "created_at, updated_at) VALUES (1, 1, 1, 't', 'table', "
                "CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
            )
        )
        connection.execute(
            text(
                "INSERT INTO catalog_columns (id, table_id, name, ordinal, native_type, "
                "logical_type, nullable, primary_key, created_at, updated_at) VALUES "
                "(1, 1, 'a', 1, :native, 'json', true, false, CURRENT_TIMESTAMP, "
                "CURRENT_TIMESTAMP)"
            ),
            {"native": long_type},
        )
        connection.execute(
            text(
                "INSERT INTO unified_columns (id, name, logical_type, created_at, updated_at) "
                "VALUES (1, 'u', 'string', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
            )
        )
        connection.execute(
            text(
                "INSERT INTO column_mappings (id, column_id, unified_column_id, created_at) "
                "VALUES (1, 1, 1, CURRENT_TIMESTAMP)"
            )
        )
    assert len(long_type) > 255
    _downgrade(engine, "0002")
    assert current_revision(engine) == "0002"
    assert _catalog_counts(engine) == (1, 1, 1)
    upgrade_database(engine)
    assert current_revision(engine) == _head(engine)
    assert _catalog_counts(engine) == (1, 1, 1)
    # 0014: a connection's columns from before count as checked for new-column drift.
    with engine.connect() as connection:
        checked = "SELECT drift_checked_column_id FROM connections WHERE id = 1"
        assert connection.execute(text(checked)).scalar_one() == 1


def test_the_migrations_build_the_models_schema(engine):
    upgrade_database(engine)
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    # Only what SQLite cannot tell apart may differ (it keeps no column types' lengths).
    operations = [op for d in differences for op in (d if isinstance(d, list) else [d])]
    assert [op for op in operations if op[0] != "modify_type"] == []


def test_every_foreign_key_column_leads_an_index(engine):
    """A parent row's deletion cascades through its children's foreign key columns, and the
    queries join and filter on them: each one leads the primary key or an index."""
    upgrade_database(engine)
    unindexed = []
    with engine.connect() as connection:
        inspector = inspect(connection)
        for table in inspector.get_table_names():
            leading = {
                *(index["column_names"][0] for index in inspector.get_indexes(table)),
                *(unique["column_names"][0] for unique in inspector.get_unique_constraints(table)),
                *inspector.get_pk_constraint(table)["constrained_columns"][:1],
            }
            unindexed += [
                (table, column)
                for foreign_key in inspector.get_foreign_keys(table)
                for column in foreign_key["constrained_columns"][:1]
                if column not in leading
            ]
    assert unindexed == []


@pytest.mark.postgres
def test_processes_starting_together_migrate_one_at_a_time(pg_database):
    url = pg_url(pg_database())
    engines = [create_metadata_engine(url) for _ in range(4)]
    start, errors = threading.Barrier(len(engines)), []

    def migrate(engine: Engine) -> None:
        start.wait()
        try:
            upgrade_database(engine)
        except Exception as exc:  # the race lost: "duplicate key ... alembic_version"
            errors.append(exc)

    # Daemon threads: without the lock the migrations can wait on each other for good.
    threads = [threading.Thread(target=migrate, args=(e,), daemon=True) for e in engines]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 60
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    assert not any(thread.is_alive() for thread in threads), "migrations waiting on each other"
    assert errors == []
    assert {current_revision(e) for e in engines} == {_head(engines[0])}
    for engine in engines:
        engine.dispose()
