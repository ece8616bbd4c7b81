"""Value samples for suggestions: bounded, cached in the metadata DB, read again once a sync
changes the column."""

from __future__ import annotations

import sqlite3

from catalog_helpers import register, sync
from fabric_core.models import ColumnSample
from fabric_core.suggestions.inventory import live_columns
from fabric_core.suggestions.samples import Sampler
from sqlalchemy import select


def _sampler(runtime, rows: int = 200) -> Sampler:
    return Sampler(
        runtime.session_factory,
        runtime.read_session_factory,
        runtime.box,
        runtime.source_policy,
        runtime.circuits,
        rows=rows,
    )


def _columns(runtime):
    with runtime.read_session_factory() as session:
        return {c.name: c for c in live_columns(session)}


def test_samples_are_bounded_cached_and_refreshed_after_a_change(runtime, tmp_path):
    path = tmp_path / "src.db"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE t (code TEXT, n INTEGER, doc BLOB)")
        connection.executemany(
            "INSERT INTO t VALUES (?, ?, ?)", [(f"c{i:03}", i % 3, b"x") for i in range(500)]
        )
    connection.close()
    connection_id = register(runtime, name="src", kind="sqlite", database=str(path))
    sync(runtime, connection_id)
    columns = _columns(runtime)

    first = _sampler(runtime, rows=50).samples([columns["code"], columns["n"], columns["doc"]])
    assert len(first.values[columns["code"].id]) == 50  # bounded, of 500 distinct
    assert sorted(first.values[columns["n"].id]) == ["0", "1", "2"]
    assert columns["doc"].id not in first.values  # binary values are never sampled
    with runtime.read_session_factory() as session:
        stored = {row.column_id: row for row in session.scalars(select(ColumnSample))}
    assert stored[columns["code"].id].truncated is True
    assert stored[columns["n"].id].truncated is False

    # Cached: the source changes its rows, the sample stays what was read.
    with sqlite3.connect(path) as connection:
        connection.execute("INSERT INTO t VALUES ('zzz', 7, NULL)")
    connection.close()
    again = _sampler(runtime, rows=50).samples([columns["n"]])
    assert sorted(again.values[columns["n"].id]) == ["0", "1", "2"]

    # A sync that changes the column (its type) makes the cached sample stale.
    with sqlite3.connect(path) as connection:
        connection.executescript(
            "ALTER TABLE t RENAME TO old; CREATE TABLE t (code TEXT, n TEXT, doc BLOB);"
            "INSERT INTO t SELECT code, n, doc FROM old; DROP TABLE old;"
        )
    connection.close()
    sync(runtime, connection_id)
    changed = _columns(runtime)["n"]
    assert changed.id == columns["n"].id and changed.fingerprint != columns["n"].fingerprint
    fresh = _sampler(runtime, rows=50).samples([changed])
    assert sorted(fresh.values[changed.id]) == ["0", "1", "2", "7"]


def test_an_unreachable_source_gives_notes_not_errors(runtime, tmp_path):
    path = tmp_path / "gone.db"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE t (a TEXT, b TEXT)")
    connection.close()
    connection_id = register(runtime, name="gone", kind="sqlite", database=str(path))
    sync(runtime, connection_id)
    columns = _columns(runtime)
    path.unlink()
    found = _sampler(runtime).samples([columns["a"], columns["b"]])
    assert found.values == {}
    assert set(found.notes) == {columns["a"].id, columns["b"].id}


def test_a_column_dropped_since_the_sync_spoils_only_its_own_sample(runtime, tmp_path):
    path = tmp_path / "src.db"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE t (a TEXT, b TEXT)")
        connection.execute("INSERT INTO t VALUES ('x', 'y')")
    connection.close()
    connection_id = register(runtime, name="src", kind="sqlite", database=str(path))
    sync(runtime, connection_id)
    columns = _columns(runtime)
    with sqlite3.connect(path) as connection:
        connection.execute("ALTER TABLE t DROP COLUMN a")
    connection.close()
    found = _sampler(runtime).samples([columns["a"], columns["b"]])
    assert found.values == {columns["b"].id: ("y",)}
    assert "values not read" in found.notes[columns["a"].id]
