"""The PostgreSQL harvest's two paths: a first harvest reads the fingerprints and keys on a
second connection sharing the first one's snapshot; later ones read on one connection."""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest
from conftest import PG_HOST, PG_PORT, PG_USER, pg_execute
from fabric_core.catalog.harvest import HarvestedCatalog, KnownTable
from fabric_core.connectors import get_connector
from fabric_core.connectors.base import ConnectionSpec
from fabric_core.connectors.pg_harvest import _on_snapshot
from test_catalog_postgresql import SOURCE_DDL

pytestmark = pytest.mark.postgres

# A table no source has: a harvest given it as known takes the one-connection path and,
# no fingerprint matching, reads every column.
NOBODY = {("no schema", "no table"): KnownTable("pg2:none", None, [])}


def _spec(database: str, username: str = PG_USER) -> ConnectionSpec:
    return ConnectionSpec(
        kind="postgresql", host=PG_HOST, port=PG_PORT, database=database, username=username
    )


def _harvest(spec: ConnectionSpec, known=None) -> HarvestedCatalog:
    return get_connector("postgresql").harvest(spec, 10, known=known)


def _sorted(catalog: HarvestedCatalog) -> list:
    return sorted(catalog.tables, key=lambda table: (table.schema, table.name))


def _sessions(pg_admin: psycopg.Connection, database: str) -> int:
    """Sessions ever established to ``database``, once the count has settled (a session
    reports itself as it ends)."""
    last, settled_at = None, time.monotonic()
    deadline = settled_at + 60
    while True:
        assert time.monotonic() < deadline, "the count of sessions did not settle"
        pg_admin.execute("SELECT pg_stat_clear_snapshot()")
        (count,) = pg_admin.execute(
            "SELECT sessions FROM pg_stat_database WHERE datname = %s", (database,)
        ).fetchone()
        if count != last:
            last, settled_at = count, time.monotonic()
        elif time.monotonic() - settled_at > 1.0:
            return count
        time.sleep(0.1)


@pytest.fixture
def source_db(pg_database) -> str:
    database = pg_database()
    pg_execute(database, SOURCE_DDL)
    return database


def test_a_first_harvest_reads_beside_on_a_second_connection_and_matches_one(pg_admin, source_db):
    spec = _spec(source_db)
    before = _sessions(pg_admin, source_db)
    first = _harvest(spec)
    after_first = _sessions(pg_admin, source_db)
    one_connection = _harvest(spec, known=NOBODY)
    after_one = _sessions(pg_admin, source_db)

    assert (after_first - before, after_one - after_first) == (2, 1)
    assert _sorted(first) == _sorted(one_connection)
    assert first.schemas == one_connection.schemas
    tables = {(t.schema, t.name): t for t in first.tables}
    shipments = {c.name: c for c in tables[("Ops Data", "shipment_events")].columns}
    assert shipments["customer"].foreign_key.column == "customerId"
    assert [c.name for c in tables[("Ops Data", "Shipments")].columns if c.primary_key] == [
        "customerId",
        "line",
    ]
    assert all(t.fingerprint for t in first.tables)


def test_without_a_second_connection_the_first_harvest_reads_all_on_one(pg_admin, source_db):
    """A role allowed one connection: the second is refused, and the first connection, on
    the same snapshot, reads the fingerprints and keys itself."""
    role = f"fabric_test_{uuid.uuid4().hex[:10]}"
    pg_admin.execute(f'CREATE ROLE "{role}" LOGIN CONNECTION LIMIT 1')
    try:
        pg_execute(source_db, f'GRANT USAGE ON SCHEMA sales, "Ops Data" TO "{role}"')
        before = _sessions(pg_admin, source_db)
        alone = _harvest(_spec(source_db, role))
        assert _sessions(pg_admin, source_db) - before == 1
        assert _sorted(alone) == _sorted(_harvest(_spec(source_db), known=NOBODY))
    finally:
        pg_admin.execute(f'DROP OWNED BY "{role}"')
        pg_execute(source_db, f'DROP OWNED BY "{role}"')
        pg_admin.execute(f'DROP ROLE "{role}"')


@contextmanager
def _exported_snapshot(database: str) -> Iterator[tuple[str, list[int]]]:
    """A snapshot exported by an open transaction, and the oid of schema ``sales``."""
    with psycopg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname=database) as first:
        first.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        (snapshot,) = first.execute("SELECT pg_export_snapshot()").fetchone()
        sales = first.execute("SELECT oid FROM pg_namespace WHERE nspname = 'sales'")
        yield snapshot, [oid for (oid,) in sales]


def test_the_second_connection_reads_the_first_ones_snapshot(source_db):
    """DDL committed after the snapshot was taken is not seen beside: the fingerprints and
    keys describe the same catalog as the columns."""
    spec = _spec(source_db)
    with _exported_snapshot(source_db) as (snapshot, schema_oids):
        at_snapshot = _on_snapshot(spec, 10, snapshot, schema_oids)
        pg_execute(
            source_db,
            "ALTER TABLE sales.customers ADD COLUMN later integer;"
            "ALTER TABLE sales.customers DROP CONSTRAINT customers_pkey CASCADE",
        )
        still = _on_snapshot(spec, 10, snapshot, schema_oids)
    with _exported_snapshot(source_db) as (snapshot, schema_oids):
        now = _on_snapshot(spec, 10, snapshot, schema_oids)

    assert at_snapshot is not None and now is not None
    assert still == at_snapshot
    fingerprints, keys = at_snapshot
    (customers,) = [relid for relid, (count, _) in fingerprints.items() if count == 13]
    assert (customers, "p") in {(relid, contype) for relid, contype, *_ in keys}
    assert now[0][customers][0] == 14 and now[0][customers] != fingerprints[customers]
    assert (customers, "p") not in {(relid, contype) for relid, contype, *_ in now[1]}


def test_a_harvest_query_that_times_out_is_the_sources_error(pg_database):
    """A catalog the harvest cannot read in time (here: one of its catalogs locked) ends as
    the source's error, retryable and counted by its circuit, not as an unexpected one."""
    from fabric_core.errors import SourceUnreachableError
    from fabric_core.source_policy import SourcePolicy

    database = pg_database()
    pg_execute(database, "CREATE TABLE t (id integer); COMMENT ON TABLE t IS 'x'")
    spec = _spec(database)
    spec = dataclasses.replace(spec, policy=SourcePolicy(read_timeout=1.0))
    with psycopg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname=database) as holder:
        holder.execute("LOCK TABLE pg_catalog.pg_description IN ACCESS EXCLUSIVE MODE")
        with pytest.raises(SourceUnreachableError, match="statement timeout"):
            _harvest(spec)
