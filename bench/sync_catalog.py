"""Benchmark: catalog sync of a large PostgreSQL schema vs. SQLAlchemy per-table reflection,
through the services (as users meet it) and in-process.

Run from the workspace root (PostgreSQL on 127.0.0.1:5432, user ``postgres``, trust auth)::

    uv run python bench/sync_catalog.py                      # 2000 tables, both paths, 3 runs
    uv run python bench/sync_catalog.py --tables 20000 --reflect-sample 400
    uv run python bench/sync_catalog.py --mode service --metadata sqlite --runs 5 --reuse

What it does:

1. Creates a database ``fabric_bench_sync_<random>`` (``--reuse``: ``fabric_bench_sync_{N}x{C}``,
   kept for the next run) holding schema ``bench``: N tables x C columns of mixed types, a
   primary key on every table (every 5th one composite), a foreign key from each table to the
   previous one, comments on every table and on every third column; then ANALYZE. The DDL
   runs as multi-statement scripts of 500 tables, one transaction each: all 2000 tables in one
   transaction overflow PostgreSQL's default lock table (``max_locks_per_transaction`` = 64).
   With ``--tables`` above 2000, a 2000-table source is made too: the reference of the
   linear-time goal.
2. In each run (``--runs``, default 3): times SQLAlchemy's per-table Inspector reflection of
   the 2000-table source (``get_columns``, ``get_pk_constraint``, ``get_foreign_keys``,
   ``get_table_comment``; ``--reflect-sample K`` reflects K evenly spaced tables and
   extrapolates linearly), then
   - ``inprocess``: in a child process (its ``ru_maxrss`` is the sync's own) migrates a fresh
     SQLite metadata DB, starts as the sync service does (its work and the SQL drivers
     loaded, the start-up objects frozen out of the garbage collector), registers each source
     and runs ``sync_connection`` twice;
   - ``service``: starts the gateway, the sync service and the dataset service as ``fabric up``
     does (``bench/service_stack.py``: own processes, free loopback ports, FABRIC_HOME in a
     temporary directory, the metadata DB migrated first) on a fresh SQLite file and/or a fresh
     PostgreSQL database (``--metadata``), registers each source through the gateway with the
     admin token, queues a sync, polls the job every 0.5 s (time: from the request to the
     job's own ``finished_at``), syncs again, lists the connection's tables page by page
     (``--page-size``), and reads the sync service's peak RSS (VmHWM in /proc/<pid>/status).
   Every re-sync must find nothing added, changed or removed; the script checks it.
3. Prints medians of the runs, the phases from the job's stats (harvest, diff, persist), the
   ratios (reflection / first sync per run, re-sync / first, large / reference) and PASS/FAIL
   per goal (verdicts only: the exit status is 0 unless something errored); drops the source
   databases unless ``--keep`` or ``--reuse``.
"""

from __future__ import annotations

import argparse
import gc
import json
import multiprocessing
import resource
import secrets
import statistics
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
POLL_SECONDS = 0.5  # how often the service path asks the gateway about a job
DDL_TABLES_PER_TRANSACTION = 500

# The goals of the issue "Scale: a 20,000-table catalog": first sync of the reference size
# against SQLAlchemy reflection of it, through the services and in-process; the larger size's
# first sync at most 11x (10x the tables, 10% slack) the reference's, its peak RSS and pages.
REFERENCE_TABLES = 2000
GOAL_SPEEDUP_SERVICE = 10.0
GOAL_SPEEDUP_INPROCESS = 20.0
GOAL_LINEAR_SLACK = 1.1
GOAL_PEAK_RSS_MB = 500.0
GOAL_PAGE_SECONDS = 0.1
PHASES = ("harvest", "diff", "persist")

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


def database_exists(name: str) -> bool:
    with _admin_connect() as admin:
        found = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
    return found is not None


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


def _start_like_the_sync_service() -> None:
    """What the sync service does before its first job: load the work and the SQL drivers,
    then leave the start-up objects out of the garbage collector."""
    from fabric_core.job_kinds import SYNC

    SYNC.load_at_start()
    gc.freeze()


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
    _start_like_the_sync_service()
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


def run_service(
    metadata: str, sources: list[tuple[str, int]], columns: int, page_size: int
) -> dict[str, Any]:
    """One run through the services: a fresh stack (and metadata DB), each source registered
    through the gateway, synced twice, its tables listed page by page; then the sync service's
    peak RSS."""
    from service_stack import ServiceStack, ended_at

    meta_db = None
    database_url = None
    if metadata == "postgresql":
        meta_db = f"fabric_bench_meta_{secrets.token_hex(4)}"
        with _admin_connect() as admin:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(meta_db)))
        database_url = f"postgresql+psycopg://{PG_USER}@{PG_HOST}:{PG_PORT}/{meta_db}"
    try:
        with ServiceStack.start(database_url=database_url) as stack:
            figures: dict[str, Any] = {"sync_idle_rss_mb": stack.vmrss_mb("sync"), "sizes": {}}
            for database, tables in sources:
                connection = stack.request(
                    "POST",
                    "/api/data-connections",
                    json={
                        "name": database,
                        "kind": "postgresql",
                        "host": PG_HOST,
                        "port": PG_PORT,
                        "database": database,
                        "username": PG_USER,
                    },
                )
                path = f"/api/data-connections/{connection['id']}"
                size: dict[str, Any] = {}
                for label in ("first", "second"):
                    # From just before the request to the job's own end, polled as a client
                    # would (every 0.5 s): a tight poll loop would take CPU from the sync it
                    # times on 2 cores, and would round nothing less.
                    started = time.time()
                    queued = stack.request("POST", f"{path}/sync")
                    job = stack.wait_for_job(queued["dag_run_id"], poll_interval=POLL_SECONDS)
                    size[f"{label}_seconds"] = ended_at(job) - started
                    if job["status"] != "success":
                        raise RuntimeError(f"{label} sync {job['status']}: {job['error']}")
                    size[f"{label}_stats"] = job["stats"]
                _check_stats(size["first_stats"], size["second_stats"], _expected(tables, columns))
                size["page_seconds"] = _page_times(stack, f"{path}/tables", tables, page_size)
                size["sync_peak_rss_mb"] = stack.vmhwm_mb("sync")
                figures["sizes"][tables] = size
            return figures
    finally:
        if meta_db is not None:
            drop_database(meta_db)


def _page_times(stack, path: str, tables: int, page_size: int) -> list[float]:
    times = []
    listed = 0
    for offset in range(0, tables, page_size):
        started = time.perf_counter()
        page = stack.request("GET", path, params={"limit": page_size, "offset": offset})
        times.append(time.perf_counter() - started)
        listed += len(page)
    if listed != tables:
        raise RuntimeError(f"listed {listed} tables page by page, expected {tables}")
    return times


def _expected(tables: int, columns: int) -> dict[str, int]:
    return {
        "tables": tables,
        "columns": tables * columns,
        "tables_added": tables,
        "columns_added": tables * columns,
    }


def _check_stats(first: dict, second: dict, expected: dict[str, int]) -> None:
    problems = [
        f"first sync: {key} = {first[key]}, expected {value}"
        for key, value in expected.items()
        if first[key] != value
    ]
    problems += [
        f"re-sync: {key} = {value}, expected 0"
        for key, value in second.items()
        if key.endswith(("_added", "_changed", "_removed")) and value != 0
    ]
    if problems:
        raise RuntimeError("unexpected sync stats: " + "; ".join(problems))


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def _median(values: list[float]) -> float:
    return statistics.median(values)


def _phases(stats: list[dict[str, Any]]) -> str:
    return ", ".join(
        f"{name} {_median([s.get(f'{name}_seconds', float('nan')) for s in stats]):.3f} s"
        for name in PHASES
    )


def _speedups(runs: list[dict[str, Any]], reflections: list[float]) -> list[float]:
    """Reflection / first sync of each run (both measured in that run)."""
    return [r / run["first_seconds"] for r, run in zip(reflections, runs, strict=True)]


def _size_lines(
    label: str, runs: list[dict[str, Any]], reflections: list[float] | None
) -> list[str]:
    first = _median([r["first_seconds"] for r in runs])
    second = _median([r["second_seconds"] for r in runs])
    lines = [
        f"  first sync   median {first:.3f} s of {_runs_text(r['first_seconds'] for r in runs)}"
        f" ({_phases([r['first_stats'] for r in runs])})",
        f"  re-sync      median {second:.3f} s of {_runs_text(r['second_seconds'] for r in runs)}"
        f" ({_phases([r['second_stats'] for r in runs])})",
        f"  re-sync/first {second / first:.2f}",
    ]
    if reflections is not None:
        speedups = _speedups(runs, reflections)
        lines.append(
            f"  reflection/first sync median {_median(speedups):.1f}x of "
            + "["
            + ", ".join(f"{x:.1f}" for x in speedups)
            + "] (per run)"
        )
    if "sync_peak_rss_mb" in runs[0]:
        rss = _median([r["sync_peak_rss_mb"] for r in runs])
        lines.append(f"  sync service peak RSS (VmHWM) median {rss:.1f} MB")
    if "page_seconds" in runs[0]:
        slowest = _median([max(r["page_seconds"]) for r in runs])
        typical = _median([_median(r["page_seconds"]) for r in runs])
        lines.append(
            f"  table pages  {len(runs[0]['page_seconds'])} pages: median page "
            f"{typical * 1000:.1f} ms, slowest page (median of runs) {slowest * 1000:.1f} ms"
        )
    if "peak_rss_mb" in runs[0]:
        rss = _median([r["peak_rss_mb"] for r in runs])
        lines.append(f"  peak RSS of the sync child median {rss:.1f} MB")
    return [f"{label}:", *lines]


def _runs_text(values) -> str:
    return "[" + ", ".join(f"{v:.3f}" for v in values) + "]"


def goals(
    path: str,
    by_size: dict[int, list[dict[str, Any]]],
    reflections: list[float],
    large: int | None,
) -> list[str]:
    """PASS/FAIL lines of the issue's goals for one path (``service (sqlite)``, ...)."""
    lines = []
    ref = by_size[REFERENCE_TABLES]
    first = _median([r["first_seconds"] for r in ref])
    second = _median([r["second_seconds"] for r in ref])
    needed = GOAL_SPEEDUP_INPROCESS if path == "in-process" else GOAL_SPEEDUP_SERVICE
    speedup = _median(_speedups(ref, reflections))
    lines.append(
        f"  {_verdict(speedup >= needed)}  {path}: {REFERENCE_TABLES} tables first sync"
        f" >= {needed:g}x faster than reflection ({speedup:.1f}x, median of runs)"
    )
    lines.append(
        f"  {_verdict(second <= 0.5 * first)}  {path}: {REFERENCE_TABLES} tables re-sync <= half"
        f" the first ({second / first:.2f})"
    )
    if large is not None:
        big = by_size[large]
        big_first = _median([r["first_seconds"] for r in big])
        big_second = _median([r["second_seconds"] for r in big])
        scale = large / REFERENCE_TABLES
        allowed = GOAL_LINEAR_SLACK * scale
        lines.append(
            f"  {_verdict(big_first <= allowed * first)}  {path}: {large} tables first sync <= "
            f"{allowed:g}x the {REFERENCE_TABLES}-table one ({big_first / first:.2f}x)"
        )
        lines.append(
            f"  {_verdict(big_second < 0.5 * big_first)}  {path}: {large} tables re-sync < half"
            f" the first ({big_second / big_first:.2f})"
        )
        rss_key = "sync_peak_rss_mb" if "sync_peak_rss_mb" in big[0] else "peak_rss_mb"
        rss = _median([r[rss_key] for r in big])
        lines.append(
            f"  {_verdict(rss < GOAL_PEAK_RSS_MB)}  {path}: {large} tables peak RSS < "
            f"{GOAL_PEAK_RSS_MB:g} MB ({rss:.1f} MB)"
        )
        if "page_seconds" in big[0]:
            slowest = _median([max(r["page_seconds"]) for r in big])
            lines.append(
                f"  {_verdict(slowest < GOAL_PAGE_SECONDS)}  {path}: {large} tables, every page"
                f" under {GOAL_PAGE_SECONDS * 1000:g} ms (slowest {slowest * 1000:.1f} ms)"
            )
    return lines


def report(args: argparse.Namespace, figures: dict[str, Any]) -> list[str]:
    refl = figures["reflections"][0]
    reflections = [r["seconds"] for r in figures["reflections"]]
    extrapolated = (
        f" (EXTRAPOLATED from {refl['reflected_tables']} of {refl['total_tables']} tables)"
        if refl["extrapolated"]
        else ""
    )
    lines = [
        f"PostgreSQL {figures['server_version']}; {args.columns} columns a table; "
        f"{args.runs} runs of each path, medians",
        *(
            f"source {db}: {tables} tables"
            + (f", DDL {ddl['ddl_execute_seconds']:.1f} s" if ddl else " (reused)")
            for db, tables, ddl in figures["sources"]
        ),
        f"reflection of {REFERENCE_TABLES} tables median {_median(reflections):.2f} s of "
        + _runs_text(reflections)
        + extrapolated,
        "",
    ]
    verdicts = []
    for path, by_size in figures["paths"].items():
        for tables, runs in by_size.items():
            ref = reflections if tables == REFERENCE_TABLES else None
            lines += _size_lines(f"{path}, {tables} tables", runs, ref)
        large = max(by_size) if max(by_size) != REFERENCE_TABLES else None
        verdicts += goals(path, by_size, reflections, large)
    return [*lines, "", "goals", *verdicts]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--mode",
        choices=("service", "inprocess", "both"),
        default="both",
        help="through the services as `fabric up` starts them, in-process, or both",
    )
    parser.add_argument(
        "--tables",
        type=int,
        default=REFERENCE_TABLES,
        help=f"tables (default {REFERENCE_TABLES}; more also syncs a {REFERENCE_TABLES}-table"
        " source as the reference of the linear-time goal)",
    )
    parser.add_argument(
        "--columns", type=int, default=20, help=f"columns per table (>= {KEY_COLUMNS}, default 20)"
    )
    parser.add_argument("--runs", type=int, default=3, help="runs of each path (default 3)")
    parser.add_argument(
        "--metadata",
        choices=("sqlite", "postgresql", "both"),
        default="both",
        help="metadata DB of the service path: a fresh SQLite file, a fresh PostgreSQL"
        " database, or both (default)",
    )
    parser.add_argument(
        "--page-size", type=int, default=1000, help="tables a page when listing (default 1000)"
    )
    parser.add_argument(
        "--reflect-sample",
        type=int,
        metavar="K",
        help="reflect only K evenly spaced tables and extrapolate linearly (default: all)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the source databases")
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="use (and keep) fabric_bench_sync_{tables}x{columns}, created when missing",
    )
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write figures as JSON")
    args = parser.parse_args(argv)
    if args.tables < REFERENCE_TABLES:
        parser.error(f"--tables must be at least {REFERENCE_TABLES} (the reference size)")
    if args.columns < KEY_COLUMNS:
        parser.error(f"--columns must be at least {KEY_COLUMNS}")
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    if args.reflect_sample is not None and args.reflect_sample < 1:
        parser.error("--reflect-sample must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sizes = sorted({REFERENCE_TABLES, args.tables})
    if args.reuse:
        sources = [(f"fabric_bench_sync_{tables}x{args.columns}", tables) for tables in sizes]
    else:
        sources = [(f"fabric_bench_sync_{secrets.token_hex(4)}", tables) for tables in sizes]
    figures: dict[str, Any] = {"sources": [], "paths": {}}
    created = []
    try:
        for database, tables in sources:
            if args.reuse and database_exists(database):
                print(f"reusing {database}", flush=True)
                figures["sources"].append((database, tables, None))
                continue
            print(f"creating {database}: {tables} tables x {args.columns} columns ...", flush=True)
            if not args.reuse:
                created.append(database)
            ddl = create_source_database(database, tables, args.columns)
            figures["sources"].append((database, tables, ddl))
        with psycopg.connect(
            host=PG_HOST, port=PG_PORT, user=PG_USER, dbname=sources[0][0]
        ) as conn:
            figures["server_version"] = conn.execute("SHOW server_version").fetchone()[0]
        reference_db = sources[0][0]
        backends = ("sqlite", "postgresql") if args.metadata == "both" else (args.metadata,)
        figures["reflections"] = []
        for run in range(args.runs):
            # In every run, beside its syncs: on a shared machine the load changes by the minute.
            print(f"run {run + 1}: reflecting with SQLAlchemy Inspector ...", flush=True)
            figures["reflections"].append(reflect(reference_db, args.reflect_sample))
            if args.mode in ("inprocess", "both"):
                by_size = figures["paths"].setdefault("in-process", {})
                for database, tables in sources:
                    print(f"run {run + 1}: in-process, {tables} tables ...", flush=True)
                    with tempfile.TemporaryDirectory(prefix="fabric_bench_") as tmp:
                        result = run_sync_in_child(
                            f"sqlite:///{Path(tmp) / 'metadata.db'}",
                            database,
                            _expected(tables, args.columns),
                        )
                    by_size.setdefault(tables, []).append(result)
            if args.mode in ("service", "both"):
                for backend in backends:
                    print(f"run {run + 1}: services, {backend} metadata ...", flush=True)
                    result = run_service(backend, sources, args.columns, args.page_size)
                    by_size = figures["paths"].setdefault(f"service ({backend})", {})
                    for tables, size in result["sizes"].items():
                        by_size.setdefault(tables, []).append(size)
    finally:
        for database in created:
            if args.keep:
                print(f"kept source database {database}")
            else:
                drop_database(database)
    print()
    print("\n".join(report(args, figures)))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
