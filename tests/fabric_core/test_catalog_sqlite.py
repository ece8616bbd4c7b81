"""Harvest and incremental re-sync of a SQLite source file."""

from __future__ import annotations

import sqlite3

import pytest
from catalog_helpers import columns_of, counters, register, sync, tables_by_name
from fabric_core.errors import SourceUnreachableError


@pytest.fixture
def source_file(tmp_path):
    path = tmp_path / "source.db"
    with sqlite3.connect(path) as connection:
        connection.executescript(
            """
            CREATE TABLE "Customers" (
                id INTEGER PRIMARY KEY,
                "Full Name" TEXT NOT NULL,
                "order" INT DEFAULT 0,
                active BOOLEAN,
                balance NUMERIC(12, 2),
                created DATETIME,
                photo BLOB,
                "größe" REAL
            );
            CREATE TABLE lines (
                customer INTEGER REFERENCES "Customers",
                line INTEGER,
                note VARCHAR(20),
                PRIMARY KEY (customer, line)
            );
            CREATE TABLE events (
                customer INTEGER, line INTEGER, at TIMESTAMP,
                FOREIGN KEY (customer, line) REFERENCES lines (customer, line)
            );
            CREATE VIEW big_customers AS SELECT id FROM "Customers" WHERE balance > 100;
            INSERT INTO "Customers" (id, "Full Name") VALUES (1, 'Ada'), (2, 'Grace');
            """
        )
    connection.close()
    return path


def test_harvest_and_resync(runtime, source_file):
    connection_id = register(runtime, name="file", kind="sqlite", database=str(source_file))
    stats = sync(runtime, connection_id)
    assert (stats.schemas, stats.tables_added, stats.columns_added) == (1, 4, 8 + 3 + 3 + 1)

    tables = tables_by_name(runtime, connection_id)
    customers = tables[("main", "Customers")]
    assert customers.row_estimate == 2
    cols = columns_of(customers)
    assert [c.name for c in customers.columns][:3] == ["id", "Full Name", "order"]
    assert {n: c.logical_type for n, c in cols.items()} == {
        "id": "integer",
        "Full Name": "string",
        "order": "integer",
        "active": "boolean",
        "balance": "decimal",
        "created": "datetime",
        "photo": "binary",
        "größe": "float",
    }
    assert cols["id"].primary_key and not cols["id"].nullable
    assert cols["order"].default == "0"
    lines = columns_of(tables[("main", "lines")])
    assert lines["customer"].primary_key and lines["line"].primary_key
    # REFERENCES "Customers" without a column means its primary key.
    assert lines["customer"].foreign_key.column == "id"
    events = columns_of(tables[("main", "events")])
    assert [
        (events[c].foreign_key.table, events[c].foreign_key.column) for c in ("customer", "line")
    ] == [
        ("lines", "customer"),
        ("lines", "line"),
    ]
    assert tables[("main", "big_customers")].kind == "view"

    with sqlite3.connect(source_file) as connection:
        connection.executescript(
            """
            ALTER TABLE "Customers" ADD COLUMN loyalty INTEGER;
            ALTER TABLE "Customers" DROP COLUMN photo;
            DROP TABLE events;
            """
        )
    connection.close()
    stats = sync(runtime, connection_id)
    assert counters(stats) == {
        "tables_added": 0,
        "tables_changed": 0,
        "tables_removed": 1,
        "columns_added": 1,
        # SQLite renumbers positions after a dropped column: ordinal changes are changes.
        "columns_changed": 1,
        "columns_removed": 1 + 3,
    }
    after = tables_by_name(runtime, connection_id)
    assert after[("main", "Customers")].id == customers.id
    assert columns_of(after[("main", "Customers")])["photo"].removed
    assert after[("main", "events")].removed


def test_missing_file_is_unreachable_and_not_created(runtime, tmp_path):
    missing = tmp_path / "nope" / "missing.db"
    connection_id = register(runtime, name="missing", kind="sqlite", database=str(missing))
    with pytest.raises(SourceUnreachableError, match="unable to open"):
        sync(runtime, connection_id)
    assert not missing.exists()


def test_a_sync_lock_held_by_a_dead_worker_is_taken_over(runtime, source_file):
    from datetime import timedelta

    from fabric_core.job_kinds import SYNC
    from fabric_core.job_runner import run_job
    from fabric_core.jobs import claim_job, create_job, get_job
    from fabric_core.models import Connection, Job, utcnow
    from sqlalchemy import update

    connection_id = register(runtime, name="file", kind="sqlite", database=str(source_file))
    with runtime.session_factory.begin() as session:
        dead = create_job(session, kind="sync", id_prefix="sync_dead", connection_id=connection_id)
        fresh = create_job(session, kind="sync", id_prefix="sync_new", connection_id=connection_id)
        dead_id, fresh_id = dead.id, fresh.id
    claim_job(runtime.session_factory, dead_id)
    with runtime.session_factory.begin() as session:  # its service was killed mid-sync
        session.execute(update(Connection).values(sync_lock=dead_id, sync_locked_at=utcnow()))
        session.execute(
            update(Job).where(Job.id == dead_id).values(updated_at=utcnow() - timedelta(minutes=10))
        )
    assert run_job(SYNC, runtime, fresh_id)
    with runtime.session_factory() as session:
        assert get_job(session, fresh_id).status == "success"
        assert get_job(session, dead_id).status == "failed"
