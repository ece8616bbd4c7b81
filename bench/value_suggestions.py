"""Benchmark: value suggestions of a country column, their cost and their quality.

Run from the workspace root (PostgreSQL on 127.0.0.1:5432, user ``postgres``, trust auth)::

    uv run python bench/value_suggestions.py
    uv run python bench/value_suggestions.py --rows 500000 --noise 600 --runs 3
    uv run python bench/value_suggestions.py --codes --noise 8800

What it does:

1. Creates a throw-away database ``fabric_bench_vs_<random>`` with table ``public.t`` of
   ``--rows`` rows whose ``country`` column holds, spread over the rows, each ISO 3166-1
   country spelled as its alpha-3 code, its English name, its Portuguese and Spanish names
   (pycountry's translations), its English name upper-cased, and its English name with one
   letter dropped (a typo, names of 8 letters or more), plus ``--noise`` random words of 6 to
   10 letters that are no country (the worst case of the matching: each is looked up near
   spellings for, in vain). Every spelling's true alpha-2 is known to the script. The
   vocabulary is detected only where at least 60 % of the distinct values are its spellings:
   keep ``--noise`` under about 800, or pass ``--codes`` (the alpha-2 codes declared on the
   unified column: the vocabulary is then read in them, whatever the noise).
2. Sets Fabric up as a user would (SQLite metadata DB in a temporary home): the source
   registered and synced, a unified column ``country`` with ``t.country`` mapped to it.
3. Each run times, in this process: **read**, ``column_values`` with ``limit=10000`` (the
   distinct-value lookup pushed down to PostgreSQL), and **suggest**, ``suggest_values`` with
   the same limit (the same read, then the matching).
4. Prints medians, the matching's own time (suggest minus read) per value, and the quality of the
   answer against the known truth: precision (suggestions whose target is the true alpha-2,
   among all suggestions, noise included), recall (true spellings suggested correctly, alpha-2
   spellings being already canonical count as found), and PASS/FAIL against the goals
   (verdicts only: the exit status is 0 unless something errored).
5. Drops the database and removes the temporary folder.

Goals: matching at most 1 ms per distinct value (median), precision at least 0.99 and recall
at least 0.95.
"""

from __future__ import annotations

import argparse
import gettext
import random
import secrets
import statistics
import string
import sys
import tempfile
import time
from pathlib import Path

import psycopg
import pycountry

PG_HOST, PG_PORT, PG_USER = "127.0.0.1", 5432, "postgres"
LIMIT = 10_000
GOAL_MS_PER_VALUE = 1.0
GOAL_PRECISION = 0.99
GOAL_RECALL = 0.95


def spellings(noise: int, seed: int) -> dict[str, str | None]:
    """{spelling: its true alpha-2, or None for a noise word}."""
    rng = random.Random(seed)
    pt = gettext.translation("iso3166-1", pycountry.LOCALES_DIR, languages=["pt_BR"])
    es = gettext.translation("iso3166-1", pycountry.LOCALES_DIR, languages=["es"])
    truth: dict[str, str | None] = {}
    for country in pycountry.countries:
        name = country.name
        forms = [country.alpha_3, name, pt.gettext(name), es.gettext(name), name.upper()]
        if len(name) >= 8:
            cut = rng.randrange(2, len(name) - 2)
            forms.append(name[:cut] + name[cut + 1 :])
        for form in forms:
            truth.setdefault(form, country.alpha_2)
    added = 0
    while added < noise:
        word = "".join(rng.choices(string.ascii_lowercase, k=rng.randint(6, 10)))
        if word not in truth:
            truth[word] = None
            added += 1
    return truth


def create_source(database: str, truth: dict[str, str | None], rows: int) -> None:
    with psycopg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{database}"')
    values = list(truth)
    with psycopg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname=database) as conn:
        conn.execute("CREATE TABLE t (id bigint PRIMARY KEY, country text)")
        with conn.cursor().copy("COPY t (id, country) FROM STDIN") as copy:
            for i in range(rows):
                copy.write_row((i, values[i % len(values)]))
        conn.commit()
        conn.execute("ANALYZE t")


def drop_source(database: str) -> None:
    with psycopg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


def set_up_fabric(home: Path, database: str, codes: list[str] | None):
    from fabric_core import mapping
    from fabric_core.catalog.browse import get_table, list_tables
    from fabric_core.catalog.sync import sync_connection
    from fabric_core.connections import connection_spec, create_connection
    from fabric_core.runtime import create_runtime
    from fabric_core.schemas import ColumnMappingCreate, ConnectionCreate, UnifiedColumnCreate
    from fabric_core.settings import Settings

    settings = Settings(home=home, secret_key="bench-secret-key-0123456789", admin_token="x" * 32)
    runtime = create_runtime(settings)
    with runtime.session_factory.begin() as session:
        body = ConnectionCreate(
            name="bench", kind="postgresql", host=PG_HOST, database=database, username=PG_USER
        )
        connection = create_connection(session, body, runtime.box, runtime.source_policy)
        spec = connection_spec(connection, runtime.box, runtime.source_policy)
        connection_id = connection.id
    sync_connection(runtime.session_factory, connection_id, spec, timeout=30)
    with runtime.session_factory.begin() as session:
        table = next(t for t in list_tables(session, connection_id).items if t.name == "t")
        column_id = next(c.id for c in get_table(session, table.id).columns if c.name == "country")
        unified = mapping.create_unified_column(
            session, UnifiedColumnCreate(name="country", logical_type="string", codes=codes)
        )
        mapping.create_column_mapping(
            session, ColumnMappingCreate(column_id=column_id, unified_column_id=unified.id)
        )
        unified_id = unified.id
    return runtime, column_id, unified_id


def quality(answer, truth: dict[str, str | None]) -> tuple[float, float]:
    suggested = {s.source_value: s.target_value for s in answer.suggestions}
    correct = sum(1 for value, target in suggested.items() if truth.get(value) == target)
    canonical = {r.source_value for r in answer.already_canonical}
    true_spellings = [v for v, code in truth.items() if code is not None]
    found = sum(1 for v in true_spellings if suggested.get(v) == truth[v] or v in canonical)
    precision = correct / len(suggested) if suggested else 1.0
    return precision, found / len(true_spellings)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--noise", type=int, default=300)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--codes",
        action="store_true",
        help="declare the alpha-2 codes on the unified column (then any amount of noise is "
        "matched against them: the matching's worst case at --noise 8800)",
    )
    args = parser.parse_args(argv)

    from fabric_core.catalog.values import column_values
    from fabric_core.code_suggestions.service import suggest_values

    truth = spellings(args.noise, args.seed)
    database = f"fabric_bench_vs_{secrets.token_hex(4)}"
    print(f"source: {args.rows} rows, {len(truth)} distinct values ({args.noise} noise)")
    create_source(database, truth, args.rows)
    try:
        with tempfile.TemporaryDirectory() as folder:
            codes = [c.alpha_2 for c in pycountry.countries] if args.codes else None
            home = Path(folder) / "home"
            runtime, column_id, unified_id = set_up_fabric(home, database, codes)
            reads, suggests = [], []
            answer = None
            for run in range(args.runs):
                started = time.perf_counter()
                read = column_values(
                    runtime.read_session_factory,
                    column_id,
                    runtime.box,
                    runtime.source_policy,
                    limit=LIMIT,
                )
                reads.append(time.perf_counter() - started)
                started = time.perf_counter()
                answer = suggest_values(
                    runtime.read_session_factory,
                    unified_id,
                    runtime.box,
                    runtime.source_policy,
                    limit=LIMIT,
                )
                suggests.append(time.perf_counter() - started)
                print(
                    f"run {run + 1}: read {reads[-1]:.3f} s, suggest {suggests[-1]:.3f} s "
                    f"({len(read.values)} values)"
                )
            runtime.close()
    finally:
        drop_source(database)

    assert answer is not None
    read_median, suggest_median = statistics.median(reads), statistics.median(suggests)
    values = len(answer.suggestions) + len(answer.unmatched) + len(answer.already_canonical)
    ms_per_value = max(suggest_median - read_median, 0.0) * 1000 / values
    precision, recall = quality(answer, truth)
    print(
        f"median read {read_median:.3f} s, median suggest {suggest_median:.3f} s, "
        f"ratio suggest/read {suggest_median / read_median:.2f}"
    )
    print(
        f"target set {answer.target_set.source}/{answer.target_set.vocabulary}: "
        f"{len(answer.suggestions)} suggested, {len(answer.unmatched)} unmatched, "
        f"{len(answer.already_canonical)} already canonical, truncated {answer.truncated}"
    )
    checks = [
        (
            f"matching {ms_per_value:.3f} ms per value <= {GOAL_MS_PER_VALUE}",
            ms_per_value <= GOAL_MS_PER_VALUE,
        ),
        (f"precision {precision:.4f} >= {GOAL_PRECISION}", precision >= GOAL_PRECISION),
        (f"recall {recall:.4f} >= {GOAL_RECALL}", recall >= GOAL_RECALL),
    ]
    for text, ok in checks:
        print(f"{'PASS' if ok else 'FAIL'}: {text}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
