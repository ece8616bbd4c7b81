"""Benchmark: the dataset dry run (fabric_core.datasets.dry_run) on a large catalog.

Run from the workspace root (no server needed)::

    uv run python bench/plan_dataset.py
    uv run python bench/plan_dataset.py --tables 200 2000 --columns 30 --runs 5

What it does:

1. Makes a metadata DB (SQLite, in a temporary home) holding one SQLite connection whose
   catalog has ``--columns`` columns in each of the largest ``--tables`` tables (written
   straight into the catalog tables: the dry run reads nothing else). In every table, five
   columns are mapped to five unified columns (one of them text mapped to an integer one, a
   cast that can fail), and one has a value map of ten codes.
2. For each table count, times ``dry_run`` of a ``selection_mode="tables"`` request naming
   that many tables, and ``plan_dataset`` of the same request (the plan the dry run
   describes), paired in each run (medians of ``--runs``, after one warm-up); counts the SQL
   statements the dry run sends to the metadata DB.
3. Prints the figures and PASS/FAIL against the goals (verdicts only; exit status 0):
   dry-run time per table at the largest count at most twice that at the smallest (it grows
   linearly, not faster); statements growing by at most two per 500 columns (mappings and
   value maps are read in bounded IN lists, never one query per table); and the dry run at
   most twice the plan alone (describing the plan costs no more than making it).
"""

from __future__ import annotations

import argparse
import math
import statistics
import tempfile
import time
from pathlib import Path

from fabric_core.connections import create_connection
from fabric_core.datasets.dry_run import dry_run
from fabric_core.datasets.plan import plan_dataset
from fabric_core.models import (
    CatalogColumn,
    CatalogSchema,
    CatalogTable,
    ColumnMapping,
    UnifiedColumn,
    ValueMapping,
)
from fabric_core.runtime import create_runtime
from fabric_core.schemas import ConnectionCreate, DatasetRequest
from fabric_core.settings import Settings
from sqlalchemy import event, insert

UNIFIED = [
    ("customer_id", "integer"),
    ("customer_name", "string"),
    ("country", "string"),
    ("age", "integer"),
    ("balance", "decimal"),
]


def make_catalog(runtime, home: Path, tables: int, columns: int) -> list[int]:
    """The catalog described in the module docstring; returns the table ids."""
    source = home / "source.db"
    source.touch()
    with runtime.session_factory.begin() as session:
        connection = create_connection(
            session,
            ConnectionCreate(name="bench", kind="sqlite", database=str(source)),
            runtime.box,
            runtime.source_policy,
        )
        schema = CatalogSchema(connection_id=connection.id, name="main")
        session.add(schema)
        unified = [UnifiedColumn(name=name, logical_type=kind) for name, kind in UNIFIED]
        session.add_all(unified)
        session.flush()
        table_rows = [
            {
                "connection_id": connection.id,
                "schema_id": schema.id,
                "name": f"t{n:05d}",
                "kind": "table",
                "row_estimate": 10_000 + n,
            }
            for n in range(tables)
        ]
        table_ids = list(
            session.scalars(insert(CatalogTable).returning(CatalogTable.id), table_rows)
        )
        column_rows = [
            {
                "table_id": table_id,
                "name": f"c{ordinal:03d}",
                "ordinal": ordinal,
                "native_type": "TEXT" if ordinal % 3 else "INTEGER",
                "logical_type": "string" if ordinal % 3 else "integer",
                "nullable": True,
            }
            for table_id in table_ids
            for ordinal in range(columns)
        ]
        column_ids = list(
            session.scalars(insert(CatalogColumn).returning(CatalogColumn.id), column_rows)
        )
        mappings, codes = [], []
        for index in range(len(table_ids)):
            first = column_ids[index * columns]
            for offset, target in enumerate(unified):
                mappings.append({"column_id": first + offset, "unified_column_id": target.id})
            codes += [
                {"column_id": first + 2, "source_value": str(code), "target_value": f"C{code}"}
                for code in range(10)
            ]
        session.execute(insert(ColumnMapping), mappings)
        session.execute(insert(ValueMapping), codes)
    return table_ids


def time_plan(runtime, table_ids: list[int], runs: int) -> dict[str, float]:
    """Median seconds of the dry run and of the plan it describes (paired: one of each per
    run), the median of their per-run ratios, the dry run's statements and output columns."""
    request = DatasetRequest(name="bench", selection_mode="tables", selected_tables=table_ids)
    statements = [0]

    def count(*_args) -> None:
        statements[0] += 1

    def timed(work) -> tuple[float, object]:
        with runtime.read_session_factory() as session:
            started = time.perf_counter()
            answer = work(session)
            return time.perf_counter() - started, answer

    dry, plan, ratios = [], [], []
    for run in range(runs + 1):
        plan_seconds, _ = timed(lambda s: plan_dataset(s, request, runtime.box))
        event.listen(runtime.engine, "before_cursor_execute", count)
        statements[0] = 0
        try:
            dry_seconds, answer = timed(lambda s: dry_run(s, request, runtime.box))
        finally:
            event.remove(runtime.engine, "before_cursor_execute", count)
        if run:  # the first is a warm-up
            dry.append(dry_seconds)
            plan.append(plan_seconds)
            ratios.append(dry_seconds / plan_seconds)
    return {
        "dry_run": statistics.median(dry),
        "plan": statistics.median(plan),
        "ratio": statistics.median(ratios),
        "statements": statements[0],
        "outputs": len(answer.columns),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tables", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--columns", type=int, default=20)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    counts = sorted(args.tables)
    with tempfile.TemporaryDirectory(prefix="fabric_bench_plan_") as folder:
        home = Path(folder)
        settings = Settings(
            home=home / "home", sqlite_roots=[home], secret_key="bench-secret-key-0123456789"
        )
        runtime = create_runtime(settings)
        try:
            table_ids = make_catalog(runtime, home, counts[-1], args.columns)
            results = {}
            for count in counts:
                results[count] = r = time_plan(runtime, table_ids[:count], args.runs)
                print(
                    f"{count:>6} tables x {args.columns} columns: dry run "
                    f"{r['dry_run'] * 1000:8.1f} ms ({r['dry_run'] / count * 1e6:6.0f} us/table), "
                    f"plan alone {r['plan'] * 1000:8.1f} ms, dry run / plan x{r['ratio']:.2f}; "
                    f"{r['statements']} statements, {r['outputs']} output columns"
                )
        finally:
            runtime.engine.dispose()
    small, large = counts[0], counts[-1]
    per_table = (results[large]["dry_run"] / large) / (results[small]["dry_run"] / small)
    extra_statements = results[large]["statements"] - results[small]["statements"]
    # Mappings and value maps are read 500 columns at a time; the rest in one statement each.
    allowed = 2 * (math.ceil(large * args.columns / 500) - math.ceil(small * args.columns / 500))
    overhead = max(r["ratio"] for r in results.values())
    print(
        f"dry-run time per table, {large} against {small} tables: x{per_table:.2f} "
        f"(goal <= 2): {'PASS' if per_table <= 2 else 'FAIL'}"
    )
    print(
        f"statements, {large} against {small} tables: +{extra_statements} "
        f"(goal <= {allowed}): {'PASS' if extra_statements <= allowed else 'FAIL'}"
    )
    print(
        f"dry run against the plan it describes, worst median: x{overhead:.2f} "
        f"(goal <= 2): {'PASS' if overhead <= 2 else 'FAIL'}"
    )


if __name__ == "__main__":
    main()
