"""Harvest and incremental re-sync of a PostgreSQL source, against a real server."""

from __future__ import annotations

import time

import psycopg
import pytest
from catalog_helpers import columns_of, counters, register, sync, tables_by_name
from conftest import PG_HOST, PG_PORT, PG_USER, pg_execute

SOURCE_DDL = """
CREATE SCHEMA sales;
CREATE SCHEMA "Ops Data";
CREATE SCHEMA scratch_tmp;
CREATE TABLE sales.customers (
    id integer PRIMARY KEY,
    "Full Name" text NOT NULL,
    email varchar(200),
    "order" integer,
    active boolean DEFAULT true,
    balance numeric(12, 2) DEFAULT 0,
    created timestamptz DEFAULT now(),
    tags text[],
    profile jsonb,
    photo bytea,
    birth date,
    wake time,
    score double precision
);
COMMENT ON TABLE sales.customers IS 'Customers of the shop';
COMMENT ON COLUMN sales.customers."Full Name" IS 'Given and family name';
CREATE TABLE "Ops Data"."Shipments" (
    "customerId" integer NOT NULL REFERENCES sales.customers (id),
    line smallint NOT NULL,
    "größe" double precision,
    "select" text,
    PRIMARY KEY ("customerId", line)
);
CREATE TABLE "Ops Data".shipment_events (
    customer integer,
    line smallint,
    happened_at timestamp,
    FOREIGN KEY (customer, line) REFERENCES "Ops Data"."Shipments" ("customerId", line)
);
CREATE VIEW sales.active_customers AS SELECT id, "Full Name" FROM sales.customers WHERE active;
COMMENT ON VIEW sales.active_customers IS 'Only the active ones';
CREATE TABLE scratch_tmp.scratch (x integer);
INSERT INTO sales.customers (id, "Full Name", "order")
    SELECT g, 'name ' || g, g FROM generate_series(1, 250) g;
ANALYZE;
"""

pytestmark = pytest.mark.postgres


@pytest.fixture
def source_db(pg_database) -> str:
    database = pg_database()
    pg_execute(database, SOURCE_DDL)
    return database


def _register(runtime, database: str, **options) -> int:
    return register(
        runtime,
        name=f"pg {database}",
        kind="postgresql",
        host=PG_HOST,
        port=PG_PORT,
        database=database,
        username=PG_USER,
        options=options,
    )


@pytest.fixture
def pg_runtime(metadata_url, settings):
    """A runtime whose metadata DB is SQLite or PostgreSQL (both are supported)."""
    from fabric_core.runtime import create_runtime

    runtime = create_runtime(settings.model_copy(update={"database_url": metadata_url}))
    yield runtime
    runtime.close()


def test_harvest_reads_every_detail_of_the_schema(pg_runtime, source_db):
    runtime = pg_runtime
    connection_id = _register(runtime, source_db)
    stats = sync(runtime, connection_id)

    assert stats.schemas == 4  # public, sales, "Ops Data", scratch_tmp
    assert counters(stats) == {
        "tables_added": 5,
        "tables_changed": 0,
        "tables_removed": 0,
        "columns_added": 13 + 4 + 3 + 2 + 1,
        "columns_changed": 0,
        "columns_removed": 0,
    }
    tables = tables_by_name(runtime, connection_id)
    assert set(tables) == {
        ("sales", "customers"),
        ("sales", "active_customers"),
        ("Ops Data", "Shipments"),
        ("Ops Data", "shipment_events"),
        ("scratch_tmp", "scratch"),
    }
    customers = tables[("sales", "customers")]
    assert customers.kind == "table"
    assert customers.comment == "Customers of the shop"
    assert customers.row_estimate == 250
    assert [c.name for c in customers.columns] == [
        "id",
        "Full Name",
        "email",
        "order",
        "active",
        "balance",
        "created",
        "tags",
        "profile",
        "photo",
        "birth",
        "wake",
        "score",
    ]
    assert [c.ordinal for c in customers.columns] == list(range(1, 14))
    by_name = columns_of(customers)
    assert {name: c.logical_type for name, c in by_name.items()} == {
        "id": "integer",
        "Full Name": "string",
        "email": "string",
        "order": "integer",
        "active": "boolean",
        "balance": "decimal",
        "created": "datetime",
        "tags": "array",
        "profile": "json",
        "photo": "binary",
        "birth": "date",
        "wake": "time",
        "score": "float",
    }
    assert by_name["email"].native_type == "character varying(200)"
    assert by_name["balance"].native_type == "numeric(12,2)"
    assert by_name["id"].primary_key and not by_name["id"].nullable
    assert by_name["Full Name"].comment == "Given and family name"
    assert not by_name["Full Name"].nullable and by_name["email"].nullable
    assert by_name["active"].default == "true"
    assert by_name["created"].default == "now()"

    shipments = columns_of(tables[("Ops Data", "Shipments")])
    assert shipments["customerId"].primary_key and shipments["line"].primary_key
    assert not shipments["größe"].primary_key
    fk = shipments["customerId"].foreign_key
    assert (fk.schema_, fk.table, fk.column) == ("sales", "customers", "id")
    assert shipments["select"].logical_type == "string"

    events = columns_of(tables[("Ops Data", "shipment_events")])
    composite = [events["customer"].foreign_key, events["line"].foreign_key]
    assert [(f.schema_, f.table, f.column) for f in composite] == [
        ("Ops Data", "Shipments", "customerId"),
        ("Ops Data", "Shipments", "line"),
    ]
    assert events["happened_at"].foreign_key is None

    view = tables[("sales", "active_customers")]
    assert view.kind == "view" and view.row_estimate is None
    assert view.comment == "Only the active ones"


def test_schema_filters_use_glob_patterns(runtime, source_db):
    connection_id = _register(runtime, source_db, exclude_schemas=["scratch_*"])
    sync(runtime, connection_id)
    assert {schema for schema, _ in tables_by_name(runtime, connection_id)} == {
        "sales",
        "Ops Data",
    }
    other = register(
        runtime,
        name="only ops",
        kind="postgresql",
        host=PG_HOST,
        database=source_db,
        username=PG_USER,
        options={"include_schemas": ["Ops*"]},
    )
    sync(runtime, other)
    assert {schema for schema, _ in tables_by_name(runtime, other)} == {"Ops Data"}


def test_resync_diffs_keeps_ids_and_marks_removed(pg_runtime, source_db):
    runtime = pg_runtime
    connection_id = _register(runtime, source_db)
    sync(runtime, connection_id)
    before = tables_by_name(runtime, connection_id)

    pg_execute(
        source_db,
        """
        ALTER TABLE sales.customers ADD COLUMN loyalty integer;
        ALTER TABLE sales.customers ALTER COLUMN email TYPE text;
        ALTER TABLE sales.customers ALTER COLUMN "order" SET NOT NULL;
        COMMENT ON COLUMN sales.customers.score IS 'Credit score';
        ALTER TABLE sales.customers DROP COLUMN photo;
        DROP VIEW sales.active_customers;
        DROP TABLE scratch_tmp.scratch;
        CREATE TABLE sales."New Orders" (id bigint PRIMARY KEY,
                                         customer_id integer REFERENCES sales.customers (id));
        """,
    )
    stats = sync(runtime, connection_id)
    assert counters(stats) == {
        "tables_added": 1,
        "tables_changed": 0,
        "tables_removed": 2,
        "columns_added": 1 + 2,
        "columns_changed": 3,  # email type, "order" nullability, score comment
        "columns_removed": 1 + 2 + 1,  # photo, the view's two columns, scratch.x
    }
    after = tables_by_name(runtime, connection_id)
    customers_before, customers_after = (
        before[("sales", "customers")],
        after[("sales", "customers")],
    )
    assert customers_after.id == customers_before.id
    old_cols, new_cols = columns_of(customers_before), columns_of(customers_after)
    for name in ("id", "Full Name", "email", "order", "tags"):
        assert new_cols[name].id == old_cols[name].id, name
    assert new_cols["email"].native_type == "text"
    assert new_cols["order"].nullable is False
    assert new_cols["score"].comment == "Credit score"
    assert new_cols["photo"].removed and new_cols["photo"].removed_at is not None
    assert not new_cols["loyalty"].removed
    assert new_cols["loyalty"].ordinal == 14
    # Removed columns come after the live ones.
    assert [c.name for c in customers_after.columns][-1] == "photo"

    view = after[("sales", "active_customers")]
    assert view.removed and view.id == before[("sales", "active_customers")].id
    assert all(column.removed for column in view.columns)
    assert after[("scratch_tmp", "scratch")].removed
    new_orders = columns_of(after[("sales", "New Orders")])
    assert (new_orders["customer_id"].foreign_key.table, new_orders["id"].primary_key) == (
        "customers",
        True,
    )

    # Nothing changed since: nothing to report, nothing rewritten.
    assert counters(sync(runtime, connection_id)) == dict.fromkeys(counters(stats), 0)

    # A dropped view created again comes back under its old id.
    pg_execute(source_db, "CREATE VIEW sales.active_customers AS SELECT id FROM sales.customers")
    stats = sync(runtime, connection_id)
    assert (stats.tables_added, stats.columns_added, stats.tables_removed) == (1, 1, 0)
    restored = tables_by_name(runtime, connection_id)[("sales", "active_customers")]
    assert restored.id == view.id and not restored.removed
    restored_cols = columns_of(restored)
    assert not restored_cols["id"].removed and restored_cols["Full Name"].removed


def test_new_columns_are_stored_exactly_and_the_stats_time_each_phase(pg_runtime, pg_database):
    """New columns go in as one bulk write (COPY on a PostgreSQL metadata DB): values that
    need escaping, nulls, booleans and the sync's timestamp come back as the source has them."""
    from fabric_core.models import CatalogColumn, CatalogTable
    from sqlalchemy import select

    database = pg_database()
    pg_execute(
        database,
        r'''
        CREATE TABLE odd (
            id integer PRIMARY KEY,
            U&"tab\0009and \005C back" text DEFAULT E'a\tb\\c\nd' NOT NULL,
            "quote ""q""" varchar(10) DEFAULT 'it''s',
            empty text DEFAULT ''
        );
        COMMENT ON COLUMN odd.id IS E'line one\nline two \\N';
        ''',
    )
    connection_id = _register(pg_runtime, database)
    stats = sync(pg_runtime, connection_id)
    assert (stats.tables_added, stats.columns_added) == (1, 4)
    phases = {name: stats.as_dict()[f"{name}_seconds"] for name in ("harvest", "diff", "persist")}
    assert all(seconds >= 0 for seconds in phases.values()), phases

    with pg_runtime.session_factory() as session:
        table = session.scalars(
            select(CatalogTable).where(CatalogTable.connection_id == connection_id)
        ).one()
        columns = {
            c.name: c
            for c in session.scalars(
                select(CatalogColumn).where(CatalogColumn.table_id == table.id)
            )
        }
    odd = columns["tab\tand \\ back"]
    assert (odd.nullable, odd.primary_key) == (False, False)
    with psycopg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname=database) as source:
        (default,) = source.execute(
            "SELECT pg_get_expr(adbin, adrelid) FROM pg_attrdef WHERE adnum = 2"
        ).fetchone()
    assert "\t" in default and "\\" in default and "\n" in default  # escapes COPY must keep
    assert odd.default == default
    assert columns['quote "q"'].default == "'it''s'::character varying"
    assert columns["empty"].default == "''::text" and columns["empty"].comment is None
    key = columns["id"]
    assert key.primary_key is True and key.nullable is False
    assert key.comment == "line one\nline two \\N"
    for column in columns.values():
        assert column.created_at == column.updated_at == table.created_at
        assert column.created_at.tzinfo is not None and column.removed_at is None

    # Stored exactly: the re-sync finds nothing changed.
    assert counters(sync(pg_runtime, connection_id)) == dict.fromkeys(counters(stats), 0)


def test_a_sync_runs_with_the_cyclic_collector_paused(pg_runtime, source_db):
    """Its objects form no cycles: the collector, eager here, never runs during a sync."""
    import gc
    import sys

    from fabric_core.catalog.sync import _sync, sync_connection
    from fabric_core.connections import connection_spec, get_connection

    connection_id = _register(pg_runtime, source_db)
    with pg_runtime.session_factory() as session:
        spec = connection_spec(
            get_connection(session, connection_id), pg_runtime.box, pg_runtime.source_policy
        )
    collections: list[int] = []
    sync_body = _sync.__code__

    def count(phase: str, info: dict) -> None:
        frame = sys._getframe()
        while frame is not None and frame.f_code is not sync_body:
            frame = frame.f_back
        if phase == "start" and frame is not None:
            collections.append(info["generation"])

    thresholds = gc.get_threshold()
    gc.set_threshold(1, 1, 1)
    gc.callbacks.append(count)
    try:
        stats = sync_connection(pg_runtime.session_factory, connection_id, spec, timeout=5)
    finally:
        gc.callbacks.remove(count)
        gc.set_threshold(*thresholds)
    assert stats.tables_added == 5
    assert collections == []
    assert gc.isenabled()


def test_defaults_read_as_postgresql_spells_them_with_their_table(pg_runtime, pg_database):
    """Defaults are deparsed without their table, except generated columns' expressions,
    which name columns: every kind comes out as ``pg_get_expr(adbin, adrelid)`` spells it."""
    database = pg_database()
    pg_execute(
        database,
        """
        CREATE SCHEMA "Shop Floor";
        CREATE SEQUENCE "Shop Floor"."line numbers";
        CREATE TABLE "Shop Floor".lines (
            id serial PRIMARY KEY,
            line bigint DEFAULT nextval('"Shop Floor"."line numbers"'),
            qty integer NOT NULL DEFAULT 1,
            price numeric(10, 2) DEFAULT 0.5,
            total numeric GENERATED ALWAYS AS (qty * price) STORED,
            label text GENERATED ALWAYS AS (upper(("Shop Floor".lines.id)::text)) STORED,
            at timestamptz DEFAULT (now() AT TIME ZONE 'UTC') + interval '1 day',
            flags text[] DEFAULT ARRAY['a', 'b'],
            plain text
        );
        """,
    )
    connection_id = _register(pg_runtime, database)
    stats = sync(pg_runtime, connection_id)
    assert stats.columns_added == 9
    stored = columns_of(tables_by_name(pg_runtime, connection_id)[("Shop Floor", "lines")])
    with psycopg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname=database) as source:
        spelled = dict(
            source.execute(
                """SELECT a.attname, pg_get_expr(d.adbin, d.adrelid)
                FROM pg_attribute a LEFT JOIN pg_attrdef d
                  ON d.adrelid = a.attrelid AND d.adnum = a.attnum
                WHERE a.attrelid = '"Shop Floor".lines'::regclass AND a.attnum > 0"""
            ).fetchall()
        )
    assert {name: column.default for name, column in stored.items()} == spelled
    assert spelled["total"] == "((qty)::numeric * price)" and spelled["plain"] is None
    assert "nextval" in spelled["id"] and "line numbers" in spelled["line"]


def test_a_table_never_analyzed_is_estimated_by_its_live_rows(pg_runtime, pg_database):
    """And a foreign table never analyzed has no estimate: the server counts none of its
    rows."""
    database = pg_database()
    pg_execute(
        database,
        """
        CREATE TABLE fresh (id integer);
        INSERT INTO fresh SELECT generate_series(1, 40);
        CREATE TABLE empty_one (id integer);
        CREATE EXTENSION file_fdw;
        CREATE SERVER files FOREIGN DATA WRAPPER file_fdw;
        CREATE FOREIGN TABLE outside (id integer)
            SERVER files OPTIONS (filename '/dev/null', format 'csv');
        """,
    )
    with psycopg.connect(
        host=PG_HOST, port=PG_PORT, user=PG_USER, dbname=database, autocommit=True
    ) as source:
        # PostgreSQL 14 and later mark a table never vacuumed nor analyzed with -1.
        never = source.execute(
            "SELECT count(*) FROM pg_class WHERE relname IN ('fresh', 'empty_one', 'outside')"
            " AND reltuples < 0"
        ).fetchone()
        assert never == (3,)
        # The inserting session reports its rows as it ends, a moment after it closed.
        deadline = time.monotonic() + 30
        while True:
            source.execute("SELECT pg_stat_clear_snapshot()")
            (live,) = source.execute("SELECT pg_stat_get_live_tuples('fresh'::regclass)").fetchone()
            if live == 40:
                break
            assert time.monotonic() < deadline, live
            time.sleep(0.1)
    connection_id = _register(pg_runtime, database)
    sync(pg_runtime, connection_id)
    tables = tables_by_name(pg_runtime, connection_id)
    assert tables[("public", "fresh")].row_estimate == 40
    assert tables[("public", "empty_one")].row_estimate == 0
    assert tables[("public", "outside")].row_estimate is None


def test_new_tables_and_columns_carry_the_sync_time_exactly_as_the_orm_stores_it(
    pg_runtime, source_db
):
    """The bulk inserts of new tables and columns store ``created_at``/``updated_at`` in the
    very form the ORM stores ``last_synced_at``: drift compares them in SQL, as text on
    SQLite."""
    import sqlite3

    from fabric_core.models import CatalogColumn, CatalogTable, Connection
    from sqlalchemy import select

    connection_id = _register(pg_runtime, source_db)
    assert sync(pg_runtime, connection_id).columns_added > 0

    with pg_runtime.session_factory() as session:
        synced_at = session.get(Connection, connection_id).last_synced_at
        stamps = session.execute(
            select(CatalogColumn.created_at, CatalogColumn.updated_at)
            .join(CatalogTable, CatalogTable.id == CatalogColumn.table_id)
            .where(CatalogTable.connection_id == connection_id)
        ).all()
        newer = session.scalar(
            select(CatalogColumn.id)
            .join(CatalogTable, CatalogTable.id == CatalogColumn.table_id)
            .where(
                CatalogTable.connection_id == connection_id,
                CatalogColumn.created_at > Connection.last_synced_at,
                Connection.id == connection_id,
            )
            .limit(1)
        )
        table_stamps = session.execute(
            select(CatalogTable.created_at, CatalogTable.updated_at).where(
                CatalogTable.connection_id == connection_id
            )
        ).all()
    assert synced_at is not None and stamps and table_stamps
    assert set(stamps) == set(table_stamps) == {(synced_at, synced_at)}
    assert newer is None  # compared in SQL, no column was made after the sync that made it

    if pg_runtime.engine.dialect.name != "sqlite":
        return
    raw = sqlite3.connect(pg_runtime.engine.url.database)
    try:
        ((stored_synced_at, synced_type),) = raw.execute(
            "SELECT last_synced_at, typeof(last_synced_at) FROM connections WHERE id = ?",
            (connection_id,),
        ).fetchall()
        stored = raw.execute(
            "SELECT DISTINCT c.created_at, typeof(c.created_at), c.updated_at,"
            " typeof(c.updated_at) FROM catalog_columns c"
            " JOIN catalog_tables t ON t.id = c.table_id WHERE t.connection_id = ?",
            (connection_id,),
        ).fetchall()
    finally:
        raw.close()
    assert synced_type == "text"
    assert stored == [(stored_synced_at, "text", stored_synced_at, "text")]


def test_resync_reads_only_the_tables_whose_fingerprint_changed(pg_runtime, source_db):
    """A re-sync compares one fingerprint a table (computed by the server the same way the
    first harvest computed it) and reads again only the tables that changed, including one
    changed through another: its foreign key's target was renamed."""
    from fabric_core.catalog.sync import _load_known, harvest
    from fabric_core.connections import connection_spec, get_connection

    runtime = pg_runtime
    connection_id = _register(runtime, source_db)
    first = sync(runtime, connection_id)

    def harvested() -> dict[tuple[str, str], object]:
        with runtime.session_factory() as session:
            spec = connection_spec(
                get_connection(session, connection_id), runtime.box, runtime.source_policy
            )
            known = _load_known(session, connection_id, with_columns=False)
        return {(t.schema, t.name): t for t in harvest(spec, 5, known).tables}

    tables = harvested()
    assert all(t.fingerprint and t.unchanged_columns == first_count(t) for t in tables.values())
    assert sum(t.unchanged_columns for t in tables.values()) == first.columns

    pg_execute(
        source_db,
        """
        ALTER TABLE "Ops Data"."Shipments" RENAME COLUMN line TO line_no;
        COMMENT ON COLUMN sales.customers.email IS 'Where to write';
        """,
    )
    tables = harvested()
    changed = {key for key, t in tables.items() if t.unchanged_columns is None}
    # shipment_events changed only through its foreign key's target column.
    assert changed == {
        ("Ops Data", "Shipments"),
        ("Ops Data", "shipment_events"),
        ("sales", "customers"),
    }
    events = {c.name: c for c in tables[("Ops Data", "shipment_events")].columns}
    assert events["line"].foreign_key.column == "line_no"

    stats = sync(runtime, connection_id)
    assert (stats.columns_added, stats.columns_changed, stats.columns_removed) == (1, 2, 1)
    assert stats.columns == first.columns
    assert counters(sync(runtime, connection_id)) == dict.fromkeys(counters(stats), 0)


def first_count(table) -> int:
    return {"customers": 13, "Shipments": 4, "shipment_events": 3, "active_customers": 2}.get(
        table.name, 1
    )


# Each statement changes what the catalog stores of exactly the tables named with it.
COLUMN_CHANGES = [
    ('ALTER TABLE sales.customers ALTER COLUMN "Full Name" DROP NOT NULL', {"customers"}),
    ("ALTER TABLE sales.customers ALTER COLUMN score TYPE numeric(10, 3)", {"customers"}),
    ("ALTER TABLE sales.customers ALTER COLUMN active SET DEFAULT false", {"customers"}),
    ("ALTER TABLE sales.customers ALTER COLUMN balance DROP DEFAULT", {"customers"}),
    ('COMMENT ON COLUMN sales.customers."Full Name" IS NULL', {"customers"}),
    ('ALTER TABLE "Ops Data".shipment_events ADD COLUMN note text', {"shipment_events"}),
    ('ALTER TABLE "Ops Data".shipment_events DROP COLUMN happened_at', {"shipment_events"}),
    # A foreign key's target renamed: the referencing table stores the new name.
    (
        'ALTER TABLE "Ops Data"."Shipments" RENAME TO "Shipments2"',
        {"Shipments2", "shipment_events"},
    ),
    # Only the references into the renamed schema change; its tables' own columns do not.
    ('ALTER SCHEMA "Ops Data" RENAME TO "Ops"', {"shipment_events"}),
    (
        'ALTER TABLE "Ops"."Shipments2" DROP CONSTRAINT "Shipments_pkey" CASCADE',
        {"Shipments2", "shipment_events"},
    ),
]


def test_each_column_change_moves_its_tables_fingerprint_and_maintenance_none(
    pg_runtime, source_db
):
    """The server's fingerprint of a table moves with every kind of change to what the
    catalog stores of its columns, and with nothing else: not with rows written, ANALYZE,
    VACUUM FULL of the catalogs, or another table's change."""
    from fabric_core.catalog.sync import harvest
    from fabric_core.connections import connection_spec, get_connection

    runtime = pg_runtime
    connection_id = _register(runtime, source_db)

    def fingerprints() -> dict[str, str]:
        with runtime.session_factory() as session:
            spec = connection_spec(
                get_connection(session, connection_id), runtime.box, runtime.source_policy
            )
        return {t.name: t.fingerprint for t in harvest(spec, 5).tables if t.fingerprint}

    before = fingerprints()
    assert len(set(before.values())) == len(before) == 5
    pg_execute(source_db, "INSERT INTO sales.customers (id, \"Full Name\") VALUES (999, 'x')")
    pg_execute(source_db, "ANALYZE")
    with psycopg.connect(
        host=PG_HOST, port=PG_PORT, user=PG_USER, dbname=source_db, autocommit=True
    ) as conn:
        conn.execute("VACUUM FULL pg_attribute, pg_attrdef, pg_description, pg_constraint")
    assert fingerprints() == before

    for statement, changed_tables in COLUMN_CHANGES:
        pg_execute(source_db, statement)
        after = fingerprints()
        moved = {name for name, value in after.items() if before.get(name) != value}
        assert moved == changed_tables, statement
        before = after
