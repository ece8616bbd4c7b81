"""Per-table fingerprints of a PostgreSQL catalog, computed by the server alone.

A fingerprint changes whenever anything the catalog stores of a table's columns may have
changed: every DDL that touches a column writes a new version of its catalog rows, with a new
``xmin``. So a fingerprint hashes the ``xmin`` of the rows a table's columns are read from
(``pg_attribute``, ``pg_attrdef``, ``pg_description``, ``pg_constraint``) and of the
rows naming its foreign keys' targets (their table, schema and columns), instead of
spelling out and hashing every value. That costs the server a quarter of reading the columns,
and nothing in Python: a re-sync tells unchanged tables apart by one row a table.

An ``xmin`` also moves when a row is rewritten without a visible change (a column's grant,
say): the table is then read again, which costs time, never correctness. Not covered: a
sequence renamed under a column's default (``nextval('renamed'::regclass)``) shows at the
table's next change, and so does a type renamed under a column; bumping
``FINGERPRINT_VERSION`` forces a full read.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

# Bumped whenever what a fingerprint covers changes, or how columns are read or typed:
# every table is then read again once.
FINGERPRINT_VERSION = "pg2:"

# The tables a harvest reads (``%(schema_oids)s``: the schemas it accepts).
_RELATIONS = """
SELECT c.oid FROM pg_class c
WHERE c.relnamespace = ANY(%(schema_oids)s)
  AND c.relkind IN ('r', 'p', 'v', 'm', 'f') AND NOT c.relispartition
"""

# Sums of 64-bit hashes: no sort of the rows, and each term carries its column's number.
_COLUMNS_PART = f"""
SELECT a.attrelid, count(*),
       sum(hashtextextended(concat_ws('.', a.attnum, a.xmin, a.atttypid), 0))
FROM pg_attribute a
WHERE a.attrelid IN ({_RELATIONS}) AND a.attnum > 0 AND NOT a.attisdropped
GROUP BY a.attrelid
"""
_DEFAULTS_PART = f"""
SELECT adrelid, sum(hashtextextended(concat_ws('.', adnum, xmin), 0))
FROM pg_attrdef WHERE adrelid IN ({_RELATIONS}) GROUP BY adrelid
"""
_COMMENTS_PART = f"""
SELECT objoid, sum(hashtextextended(concat_ws('.', objsubid, xmin), 0))
FROM pg_description
WHERE classoid = 'pg_class'::regclass AND objsubid > 0 AND objoid IN ({_RELATIONS})
GROUP BY objoid
"""
# A foreign key's target is named by its schema, table and columns: a rename of any of them
# changes what the catalog stores of this table. (A primary key has no target: no lookup.)
_KEYS_PART = f"""
SELECT con.conrelid, sum(hashtextextended(concat_ws('.',
         con.conname, con.xmin, fn.xmin, fc.relname, fc.relnamespace,
         CASE WHEN con.contype = 'f' THEN
           (SELECT string_agg(fa.xmin::text, '.' ORDER BY fa.attnum) FROM pg_attribute fa
            WHERE fa.attrelid = con.confrelid AND fa.attnum = ANY(con.confkey)) END), 0))
FROM pg_constraint con
LEFT JOIN pg_class fc ON fc.oid = con.confrelid
LEFT JOIN pg_namespace fn ON fn.oid = fc.relnamespace
WHERE con.contype IN ('p', 'f') AND con.conrelid IN ({_RELATIONS})
GROUP BY con.conrelid
"""

Rows = Callable[[str, dict[str, Any]], list[tuple]]


def table_fingerprints(rows: Rows, schema_oids: list[int]) -> dict[int, tuple[int, str]]:
    """``{relid: (column count, fingerprint)}`` of the tables with columns; ``rows`` runs one
    query on the source and returns its rows.

    Read before the columns are: a change landing between the two then shows as a changed
    fingerprint at the next sync, never as a stale one.
    """
    params = {"schema_oids": schema_oids}
    columns = {relid: (count, total) for relid, count, total in rows(_COLUMNS_PART, params)}
    others = [dict(rows(part, params)) for part in (_DEFAULTS_PART, _COMMENTS_PART, _KEYS_PART)]
    fingerprints: dict[int, tuple[int, str]] = {}
    for relid, (count, total) in columns.items():
        spelled = "|".join((str(count), str(total), *(str(part.get(relid)) for part in others)))
        digest = hashlib.md5(spelled.encode()).hexdigest()
        fingerprints[relid] = (count, FINGERPRINT_VERSION + digest)
    return fingerprints
