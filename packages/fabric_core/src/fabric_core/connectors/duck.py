"""DuckDB as a fast Arrow reader of PostgreSQL and SQLite sources.

Extensions come from the ``duckdb-extension-*`` wheels and are loaded by path: DuckDB never
downloads anything at run time here.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pyarrow as pa

STREAMING_BUFFER = "32MB"


def extension_path(name: str) -> Path:
    """The ``.duckdb_extension`` file shipped in the ``duckdb-extension-<name>`` wheel."""
    spec = importlib.util.find_spec(f"duckdb_extension_{name}")
    if spec is None or spec.origin is None:
        raise RuntimeError(f"duckdb-extension-{name.replace('_', '-')} is not installed")
    folder = Path(spec.origin).parent / "extensions" / f"v{duckdb.__version__}"
    return folder / f"{name}.duckdb_extension"


def connect(*extensions: str, threads: int = 2) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with the given extensions loaded, UTC, bounded memory."""
    connection = duckdb.connect(config={"threads": threads, "memory_limit": "512MB"})
    connection.execute("SET autoinstall_known_extensions = false")
    connection.execute("SET autoload_known_extensions = false")
    # Else timestamptz values come out in the host's zone.
    connection.execute("SET TimeZone = 'UTC'")
    # The default (under 1 MB) is smaller than one Arrow batch, so a streamed scan stops and
    # restarts its pipeline many times per batch: a quarter more CPU (docs/benchmarks.md).
    connection.execute(f"SET streaming_buffer_size = '{STREAMING_BUFFER}'")
    for name in extensions:
        connection.execute(f"LOAD '{extension_path(name)}'")
    return connection


def quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def quote_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def stream(
    connection: duckdb.DuckDBPyConnection, sql: str, batch_rows: int
) -> Iterator[pa.RecordBatch]:
    """Run ``sql`` and yield its result as Arrow batches of at most ``batch_rows`` rows."""
    try:
        reader = connection.execute(sql).to_arrow_reader(batch_rows)
        for batch in reader:
            if batch.num_rows:
                yield batch
    finally:
        connection.close()
