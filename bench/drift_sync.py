"""Benchmark: what drift detection adds to a sync's persist step.

Run from the workspace root::

    uv run python bench/drift_sync.py
    uv run python bench/drift_sync.py --tables 1000 --columns 20 --datasets 50 --repeats 5
    uv run python bench/drift_sync.py --tables 1000 --new-columns 9 --unified 300 --repeats 1

What it does:

1. Writes two SQLite sources of N tables x C columns: ``v1``, and ``v2`` where in every table
   the mapped column ``c1`` is dropped, the mapped integer ``c2`` became text (does not cast
   to its integer unified column) and a column ``email`` was added (named like a unified
   column: an info item each), plus ``--new-columns`` more new columns per table named like
   nothing (scored, never an item).
2. For each round, and for drift on and off (off: ``record_sync_drift`` replaced by a no-op,
   what a sync cost before), in a fresh SQLite metadata DB: syncs ``v1``, maps ``c1`` and
   ``c2`` of every table, defines D datasets over the tables, then syncs ``v1`` again (no
   change) and ``v2`` (3 x N drift items), timing each sync's persist step. ``--unified``
   adds that many more unified columns (each new column is scored against every one).
3. Prints medians, the on/off ratios, and PASS/FAIL against the goals (verdicts only: exit
   status is 0 unless something errored).
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

# Goals: drift must not make an unchanged re-sync's persist more than 1.5 times slower, nor a
# sync that breaks every table more than 3 times slower.
GOAL_NO_CHANGE_RATIO = 1.5
GOAL_CHANGE_RATIO = 3.0


def write_source(path: Path, tables: int, columns: int, changed: bool, new_columns: int) -> None:
    with sqlite3.connect(path) as connection:
        for t in range(tables):
            cols = ["id INTEGER PRIMARY KEY"]
            if not changed:
                cols.append("c1 INTEGER")
            cols.append("c2 TEXT" if changed else "c2 INTEGER")
            cols += [f"c{i} TEXT" for i in range(3, columns)]
            if changed:
                cols.append("email TEXT")
                cols += [f"zz{k}_qwx TEXT" for k in range(new_columns)]
            connection.execute(f"CREATE TABLE t{t:05d} ({', '.join(cols)})")
    connection.close()


def one_round(
    work: Path, v1: Path, v2: Path, datasets: int, unified_extra: int, drift_on: bool
) -> dict[str, float]:
    from fabric_core.catalog import change_events
    from fabric_core.catalog.sync import sync_connection
    from fabric_core.connectors.base import ConnectionSpec
    from fabric_core.db import create_metadata_engine, create_session_factory
    from fabric_core.migrate import upgrade_database
    from fabric_core.models import (
        CatalogColumn,
        CatalogTable,
        ColumnMapping,
        Connection,
        Dataset,
        DriftItem,
        UnifiedColumn,
    )
    from fabric_core.source_policy import SourcePolicy
    from sqlalchemy import func, select

    real = change_events.record_sync_drift
    if not drift_on:
        change_events.record_sync_drift = lambda *args, **kwargs: []
    try:
        meta = work / f"meta_{time.monotonic_ns()}.db"
        engine = create_metadata_engine(f"sqlite:///{meta}")
        upgrade_database(engine)
        factory = create_session_factory(engine)
        source = work / "source.db"
        shutil.copy(v1, source)
        with factory.begin() as session:
            row = Connection(name="bench", kind="sqlite", database=str(source))
            session.add(row)
            session.flush()
            connection_id = row.id
        spec = ConnectionSpec(
            kind="sqlite",
            database=str(source),
            policy=SourcePolicy(sqlite_roots=(work.resolve(),)),
        )
        sync_connection(factory, connection_id, spec, timeout=10)
        with factory.begin() as session:
            unified = {}
            for name in ("c1", "c2", "email"):
                unified[name] = UnifiedColumn(name=f"u_{name}", logical_type="integer")
                session.add(unified[name])
            unified["email"].name, unified["email"].logical_type = "email", "string"
            words = ("amount", "region", "status", "created", "owner", "price", "country")
            for i in range(unified_extra):
                session.add(
                    UnifiedColumn(
                        name=f"{words[i % len(words)]}_{i}",
                        logical_type="string",
                        description=f"The {words[(i + 3) % len(words)]} of a record",
                    )
                )
            session.flush()
            for column_id, name in session.execute(
                select(CatalogColumn.id, CatalogColumn.name).where(
                    CatalogColumn.name.in_(["c1", "c2"])
                )
            ):
                session.add(ColumnMapping(column_id=column_id, unified_column_id=unified[name].id))
            table_ids = list(session.scalars(select(CatalogTable.id).order_by(CatalogTable.id)))
            per = max(1, len(table_ids) // datasets)
            for d in range(datasets):
                chosen = table_ids[d * per : (d + 1) * per]
                session.add(
                    Dataset(
                        name=f"d{d}",
                        storage_type="virtual",
                        status="ready",
                        definition={"selection_mode": "tables", "selected_tables": chosen},
                    )
                )
        unchanged = sync_connection(factory, connection_id, spec, timeout=10)
        shutil.copy(v2, source)
        changed = sync_connection(factory, connection_id, spec, timeout=10)
        with factory() as session:
            items = session.scalar(select(func.count()).select_from(DriftItem))
        engine.dispose()
        meta.unlink()
        return {
            "unchanged": unchanged.persist_seconds,
            "changed": changed.persist_seconds,
            "items": items,
        }
    finally:
        change_events.record_sync_drift = real


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tables", type=int, default=1000)
    parser.add_argument("--columns", type=int, default=20)
    parser.add_argument("--datasets", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--new-columns", type=int, default=0)
    parser.add_argument("--unified", type=int, default=0)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="fabric_drift_bench_") as tmp:
        work = Path(tmp)
        v1, v2 = work / "v1.db", work / "v2.db"
        write_source(v1, args.tables, args.columns, changed=False, new_columns=0)
        write_source(v2, args.tables, args.columns, changed=True, new_columns=args.new_columns)
        runs: dict[bool, list[dict[str, float]]] = {True: [], False: []}
        for _ in range(args.repeats):
            for drift_on in (False, True):  # interleaved: machine noise hits both alike
                runs[drift_on].append(
                    one_round(work, v1, v2, args.datasets, args.unified, drift_on)
                )
    print(
        f"{args.tables} tables x {args.columns} columns, {2 * args.tables} mappings, "
        f"{args.datasets} datasets, {args.tables * (1 + args.new_columns)} new columns, "
        f"{3 + args.unified} unified columns, {args.repeats} rounds (medians)"
    )
    ratios = {}
    for step in ("unchanged", "changed"):
        off = statistics.median(r[step] for r in runs[False])
        on = statistics.median(r[step] for r in runs[True])
        ratios[step] = on / off if off else float("inf")
        print(f"persist, {step} re-sync: drift off {off:.3f} s, on {on:.3f} s, x{ratios[step]:.2f}")
    print(f"drift items after the changed sync: {runs[True][0]['items']} (drift on)")
    expected_items = 3 * args.tables
    checks = [
        ("items found", runs[True][0]["items"] == expected_items, f"== {expected_items}")
        if args.new_columns == 0
        else ("items found", runs[True][0]["items"] > 0, "> 0 (new columns capped per sync)"),
        (
            "unchanged ratio",
            ratios["unchanged"] <= GOAL_NO_CHANGE_RATIO,
            f"<= {GOAL_NO_CHANGE_RATIO}",
        ),
        ("changed ratio", ratios["changed"] <= GOAL_CHANGE_RATIO, f"<= {GOAL_CHANGE_RATIO}"),
    ]
    for name, ok, goal in checks:
        print(f"{'PASS' if ok else 'FAIL'} {name} {goal}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
