"""Benchmark: catalog sync of a large PostgreSQL schema vs. SQLAlchemy per-table reflection.

Run from the workspace root (PostgreSQL on 127.0.0.1:5432, user ``postgres``, trust auth)::

    uv run python bench/sync_catalog.py
    uv run python bench/sync_catalog.py --tables 500 --columns 10 --reflect-sample 200
    uv run python bench/sync_catalog.py \\
        --metadata-url postgresql+psycopg://postgres@127.0.0.1:5432/fabric_bench_meta

What it does:

1. Creates a throw-away database ``fabric_bench_sync_<random>`` holding schema ``bench``:
   N tables x C columns of mixed types, a primary key on every table (every 5th one
   composite), a foreign key from each table to the previous one, comments on every table
   and on every third column; then ANALYZE. The DDL runs as multi-statement scripts of 500
   tables, one transaction each: all 2000 tables in one transaction overflow PostgreSQL's
   default lock table (``max_locks_per_transaction`` = 64, "out of shared memory").
2. In a child process (so its peak RSS is the sync's own): migrates the metadata DB, registers
   the source as a ``Connection`` and runs ``fabric_core.catalog.sync.sync_connection`` twice;
   the second sync must find nothing added, changed or removed.
3. Times SQLAlchemy's per-table Inspector reflection of the same schema (``get_columns``,
   ``get_pk_constraint``, ``get_foreign_keys``, ``get_table_comment``) with a fresh engine;
   ``--reflect-sample K`` reflects K evenly spaced tables and extrapolates linearly.
4. Prints the figures and PASS/FAIL against the goals (verdicts only: exit status is 0 unless
   something errored), then drops the source database unless ``--keep``.

The metadata DB defaults to a SQLite file in a temporary directory. A ``--metadata-url`` is used
as given (migrated to head) and never dropped; give it an empty database so runs are comparable,
e.g. ``createdb -h 127.0.0.1 -U postgres fabric_bench_meta`` before and ``dropdb ...`` after.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import resource
import secrets
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

import psycopg
import sqlalchemy
from psycopg import sql

PG_HOST = "127.0.0.1"
PG_PORT = 5432
PG_USER = "postgres"
SCHEMA = "bench"
SYNC_TIMEOUT = 10
DDL_TABLES_PER_TRANSACTION = 500

# Goals, stated for 2000 tables x 20 columns.
GOAL_FIRST_SYNC_SECONDS = 5.0
GOAL_SPEEDUP_VS_REFLECTION = 20.0
GOAL_PEAK_RSS_MB = 300.0

# The four key columns every table starts with; the rest cycle through EXTRA_COLUMN_TYPES.
KEY_COLUMNS = 4
# (name stem, SQL type, NOT NULL, default expression)
EXTRA_COLUMN_TYPES: list[tuple[str, str, bool, str | None]] = [
    ("qty", "integer", True, "0"),
    ("big", "bigint", False, None),
    ("title", "text", False, None),
    ("code", "varchar(32)", True, "''"),
    ("amount", "numeric(12,2)", False, "0.00"),
    ("active", "boolean", True, "true"),
    ("day", "date", False, None),
    ("created", "timestamptz", True, "now()"),
    ("attrs", "jsonb", False, "'{}'::jsonb"),
    ("small", "smallint", False, None),
    ("ratio", "double precision", False, None),
    ("ref", "uuid", False, None),
    ("label", "varchar(255)", False, None),
    ("blob", "bytea", False, None),
    ("tags", "text[]", False, None),
    ("at", "time", False, None),
]


def _table_name(index: int) -> str:
    return f"t{index:05d}"


def _composite_pk(index: int) -> bool:
    return index % 5 == 0


def _table_ddl(i: int, tables: int, columns: int) -> list[sql.Composable]:
    """CREATE TABLE and COMMENT statements of table ``i``."""
    ident = sql.Identifier
    name = _table_name(i)
    table = ident(SCHEMA, name)
    defs = [
        sql.SQL("id bigint NOT NULL"),
        sql.SQL("part integer NOT NULL DEFAULT 0"),
        sql.SQL("prev_id bigint"),
        sql.SQL("prev_part integer"),
    ]
    comments = [(ident(SCHEMA, name, "id"), "Row id")]
    for j in range(KEY_COLUMNS, columns):
        stem, type_, not_null, default = EXTRA_COLUMN_TYPES[(i + j) % len(EXTRA_COLUMN_TYPES)]
        column = f"{stem}_{j:03d}"
        text = f"{column} {type_}"
        if not_null:
            text += " NOT NULL"
        if default is not None:
            text += f" DEFAULT {default}"
        defs.append(sql.SQL(text))
        if j % 3 == 0:
            comments.append((ident(SCHEMA, name, column), f"Column {j} of table {i}"))
    pk = ["id", "part"] if _composite_pk(i) else ["id"]
    defs.append(sql.SQL("PRIMARY KEY ({})").format(sql.SQL(", ").join(map(ident, pk))))
    if i > 0:
        local, remote = ["prev_id"], ["id"]
        if _composite_pk(i - 1):
            local, remote = ["prev_id", "prev_part"], ["id", "part"]
        defs.append(
            sql.SQL("FOREIGN KEY ({}) REFERENCES {} ({})").format(
                sql.SQL(", ").join(map(ident, local)),
                ident(SCHEMA, _table_name(i - 1)),
                sql.SQL(", ").join(map(ident, remote)),
            )
        )
    statements = [
        sql.SQL("CREATE TABLE {} ({})").format(table, sql.SQL(", ").join(defs)),
        sql.SQL("COMMENT ON TABLE {} IS {}").format(
            table, sql.Literal(f"Benchmark table {i} of {tables}")
        ),
    ]
    statements += [
        sql.SQL("COMMENT ON COLUMN {} IS {}").format(column, sql.Literal(comment))
        for column, comment in comments
    ]
    return statements


def build_ddl(tables: int, columns: int) -> list[str]:
    """The schema as a few multi-statement scripts (no parameters), one per transaction.

    One transaction for everything does not fit PostgreSQL's default lock table
    (``max_locks_per_transaction`` 64): each new table also locks its TOAST table and
    indexes, so 2000 tables fail with "out of shared memory". Hence chunks.
    """
    scripts = []
    for start in range(0, tables, DDL_TABLES_PER_TRANSACTION):
        statements: list[sql.Composable] = []
        if start == 0:
            statements.append(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(SCHEMA)))
        for i in range(start, min(tables, start + DDL_TABLES_PER_TRANSACTION)):
            statements += _table_ddl(i, tables, columns)
        scripts.append(sql.SQL(";\n").join(statements).as_string(None) + ";")
    return scripts


def _admin_connect() -> psycopg.Connection:
    return psycopg.connect(
        host=PG_HOST, port=PG_PORT, user=PG_USER, dbname="postgres", autocommit=True
    )


def create_source_database(name: str, tables: int, columns: int) -> dict[str, float]:
    """Create database ``name`` with the benchmark schema; returns timings."""
    with _admin_connect() as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    started = time.perf_counter()
    ddl = build_ddl(tables, columns)
    build_seconds = time.perf_counter() - started
    started = time.perf_counter()
    with psycopg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname=name) as conn:
        for script in ddl:
            conn.execute(script)  # one multi-statement execution per transaction
            conn.commit()
    create_seconds = time.perf_counter() - started
    started = time.perf_counter()
    with psycopg.connect(
        host=PG_HOST, port=PG_PORT, user=PG_USER, dbname=name, autocommit=True
    ) as conn:
        conn.execute(sql.SQL("ANALYZE"))
    return {
        "ddl_build_seconds": build_seconds,
        "ddl_execute_seconds": create_seconds,
        "analyze_seconds": time.perf_counter() - started,
    }


def drop_database(name: str) -> None:
    with _admin_connect() as admin:
        admin.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def _sync_child(metadata_url: str, database: str, expected: dict[str, int], conn) -> None:
    """Child process: migrate, register the source, sync twice; sends figures over ``conn``."""
    try:
        conn.send({"ok": True, **_run_syncs(metadata_url, database, expected)})
    except BaseException:
        conn.send({"ok": False, "error": traceback.format_exc()})
    finally:
        conn.close()


def _run_syncs(metadata_url: str, database: str, expected: dict[str, int]) -> dict[str, Any]:
    from fabric_core.catalog.sync import sync_connection
    from fabric_core.connectors.base import ConnectionSpec
    from fabric_core.db import create_metadata_engine, create_session_factory
    from fabric_core.migrate import upgrade_database
    from fabric_core.models import Connection

    engine = create_metadata_engine(metadata_url)
    started = time.perf_counter()
    upgrade_database(engine)
    migrate_seconds = time.perf_counter() - started
    session_factory = create_session_factory(engine)
    with session_factory() as session, session.begin():
        row = Connection(
            name=database,
            kind="postgresql",
            host=PG_HOST,
            port=PG_PORT,
            database=database,
            username=PG_USER,
        )
        session.add(row)
        session.flush()
        connection_id = row.id
    spec = ConnectionSpec(
        kind="postgresql", host=PG_HOST, port=PG_PORT, database=database, username=PG_USER
    )

    started = time.perf_counter()
    first = sync_connection(session_factory, connection_id, spec, timeout=SYNC_TIMEOUT)
    first_seconds = time.perf_counter() - started
    rss_after_first = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    started = time.perf_counter()
    second = sync_connection(session_factory, connection_id, spec, timeout=SYNC_TIMEOUT)
    second_seconds = time.perf_counter() - started
    engine.dispose()

    problems = [
        f"first sync: {key} = {getattr(first, key)}, expected {value}"
        for key, value in expected.items()
        if getattr(first, key) != value
    ]
    problems += [
        f"re-sync: {key} = {value}, expected 0"
        for key, value in second.as_dict().items()
        if key.endswith(("_added", "_changed", "_removed")) and value != 0
    ]
    if problems:
        raise RuntimeError("unexpected sync stats: " + "; ".join(problems))
    return {
        "migrate_seconds": migrate_seconds,
        "first_seconds": first_seconds,
        "second_seconds": second_seconds,
        "first_stats": first.as_dict(),
        "second_stats": second.as_dict(),
        # ru_maxrss is in KiB on Linux.
        "peak_rss_mb_after_first": rss_after_first / 1024,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def run_sync_in_child(metadata_url: str, database: str, expected: dict[str, int]) -> dict:
    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(
        target=_sync_child, args=(metadata_url, database, expected, sender), daemon=True
    )
    process.start()
    sender.close()
    try:
        result = receiver.recv()
    except EOFError:
        result = {"ok": False, "error": "sync child died without a result"}
    process.join()
    if not result.pop("ok"):
        raise RuntimeError(f"sync child failed (exit code {process.exitcode}):\n{result['error']}")
    return result


def reflect(database: str, sample: int | None) -> dict[str, Any]:
    """Per-table Inspector reflection, as the catalog sync would need it; fresh engine.

    With ``sample``, only the per-table part is extrapolated; connecting and listing the
    tables are counted once.
    """
    engine = sqlalchemy.create_engine(
        f"postgresql+psycopg://{PG_USER}@{PG_HOST}:{PG_PORT}/{database}"
    )
    try:
        started = time.perf_counter()
        inspector = sqlalchemy.inspect(engine)
        names = sorted(inspector.get_table_names(schema=SCHEMA))
        total = len(names)
        if sample is not None and sample < total:
            step = total / sample
            names = [names[int(k * step)] for k in range(sample)]
        setup = time.perf_counter() - started
        columns = 0
        for name in names:
            columns += len(inspector.get_columns(name, schema=SCHEMA))
            inspector.get_pk_constraint(name, schema=SCHEMA)
            inspector.get_foreign_keys(name, schema=SCHEMA)
            inspector.get_table_comment(name, schema=SCHEMA)
        per_tables = time.perf_counter() - started - setup
    finally:
        engine.dispose()
    return {
        "reflected_tables": len(names),
        "reflected_columns": columns,
        "total_tables": total,
        "setup_seconds": setup,
        "measured_seconds": setup + per_tables,
        "seconds": setup + (per_tables * total / len(names) if names else 0.0),
        "extrapolated": len(names) < total,
    }


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def report(args: argparse.Namespace, figures: dict[str, Any]) -> list[str]:
    sync, refl = figures["sync"], figures["reflection"]
    first, second, reflection = sync["first_seconds"], sync["second_seconds"], refl["seconds"]
    fs, ss = sync["first_stats"], sync["second_stats"]
    extrapolated = (
        f" (EXTRAPOLATED from {refl['reflected_tables']} of {refl['total_tables']} tables,"
        f" measured {refl['measured_seconds']:.2f} s)"
        if refl["extrapolated"]
        else ""
    )
    speedup_first = reflection / first
    speedup_second = reflection / second
    at_goal_size = (args.tables, args.columns) == (2000, 20)
    lines = [
        f"source database       {figures['database']} (PostgreSQL {figures['server_version']})",
        f"metadata DB           {figures['metadata_backend']}",
        f"tables                {fs['tables']}",
        f"columns               {fs['columns']}",
        f"schema DDL            {figures['ddl']['ddl_execute_seconds']:.2f} s"
        f" (+ ANALYZE {figures['ddl']['analyze_seconds']:.2f} s)",
        f"metadata migrate      {sync['migrate_seconds']:.2f} s",
        f"first sync            {first:.3f} s"
        f" (harvest {fs['harvest_seconds']:.3f} s, persist {fs['persist_seconds']:.3f} s)",
        f"re-sync               {second:.3f} s"
        f" (harvest {ss['harvest_seconds']:.3f} s, persist {ss['persist_seconds']:.3f} s)",
        f"reflection            {reflection:.2f} s{extrapolated}",
        f"reflection/first sync {speedup_first:.1f}x",
        f"reflection/re-sync    {speedup_second:.1f}x",
        f"peak RSS sync child   {sync['peak_rss_mb']:.1f} MB"
        f" (after first sync {sync['peak_rss_mb_after_first']:.1f} MB)",
        "first sync stats      " + _stats_text(fs),
        "re-sync stats         " + _stats_text(ss),
        "",
        "goals" + ("" if at_goal_size else " (stated for 2000 tables x 20 columns)"),
        f"  {_verdict(first < GOAL_FIRST_SYNC_SECONDS)}  first sync < {GOAL_FIRST_SYNC_SECONDS:g} s"
        f" ({first:.3f} s)",
        f"  {_verdict(speedup_first >= GOAL_SPEEDUP_VS_REFLECTION)}  first sync >= "
        f"{GOAL_SPEEDUP_VS_REFLECTION:g}x faster than reflection ({speedup_first:.1f}x)",
        f"  {_verdict(second <= first)}  re-sync at least as fast as first sync"
        f" ({second:.3f} s vs {first:.3f} s)",
        f"  {_verdict(sync['peak_rss_mb'] < GOAL_PEAK_RSS_MB)}  peak RSS < "
        f"{GOAL_PEAK_RSS_MB:g} MB ({sync['peak_rss_mb']:.1f} MB)",
    ]
    return lines


def _stats_text(stats: dict[str, Any]) -> str:
    keys = ("tables", "columns", "tables_added", "tables_changed", "tables_removed")
    keys += ("columns_added", "columns_changed", "columns_removed")
    return " ".join(f"{key}={stats[key]}" for key in keys)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tables", type=int, default=2000, help="tables (default 2000)")
    parser.add_argument(
        "--columns", type=int, default=20, help=f"columns per table (>= {KEY_COLUMNS}, default 20)"
    )
    parser.add_argument(
        "--metadata-url",
        help="SQLAlchemy URL of the metadata DB (default: a SQLite file in a temporary dir)",
    )
    parser.add_argument(
        "--reflect-sample",
        type=int,
        metavar="K",
        help="reflect only K evenly spaced tables and extrapolate linearly (default: all)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the source database")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write figures as JSON")
    args = parser.parse_args(argv)
    if args.tables < 1:
        parser.error("--tables must be at least 1")
    if args.columns < KEY_COLUMNS:
        parser.error(f"--columns must be at least {KEY_COLUMNS}")
    if args.reflect_sample is not None and args.reflect_sample < 1:
        parser.error("--reflect-sample must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    database = f"fabric_bench_sync_{secrets.token_hex(4)}"
    with tempfile.TemporaryDirectory(prefix="fabric_bench_") as tmp:
        metadata_url = args.metadata_url or f"sqlite:///{Path(tmp) / 'metadata.db'}"
        figures: dict[str, Any] = {
            "database": database,
            "metadata_backend": sqlalchemy.make_url(metadata_url).get_backend_name(),
            "tables": args.tables,
            "columns": args.columns,
        }
        try:
            print(f"creating {database}: {args.tables} tables x {args.columns} columns ...")
            figures["ddl"] = create_source_database(database, args.tables, args.columns)
            with psycopg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname=database) as c:
                figures["server_version"] = c.execute("SHOW server_version").fetchone()[0]
            print("syncing (child process) ...")
            expected = {
                "tables": args.tables,
                "columns": args.tables * args.columns,
                "tables_added": args.tables,
                "columns_added": args.tables * args.columns,
            }
            figures["sync"] = run_sync_in_child(metadata_url, database, expected)
            print("reflecting with SQLAlchemy Inspector ...")
            figures["reflection"] = reflect(database, args.reflect_sample)
        finally:
            if args.keep:
                print(f"kept source database {database}")
            else:
                drop_database(database)
    print()
    print("\n".join(report(args, figures)))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
