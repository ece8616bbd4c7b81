"""suggest_values on its own: what one answer reads from its sources is bounded, in values
and in time."""

from __future__ import annotations

import sqlite3

from catalog_helpers import columns_of, register, sync, tables_by_name
from fabric_core import mapping
from fabric_core.code_suggestions.service import suggest_values
from fabric_core.schemas import ColumnMappingCreate, UnifiedColumnCreate


def test_values_read_in_all_are_bounded(runtime, tmp_path):
    path = tmp_path / "two.db"
    with sqlite3.connect(path) as connection:
        connection.executescript(
            "CREATE TABLE a (code TEXT); INSERT INTO a VALUES ('S'), ('N'), ('sim');"
            "CREATE TABLE b (code TEXT); INSERT INTO b VALUES ('yes'), ('no');"
            "CREATE TABLE c (code TEXT); INSERT INTO c VALUES ('true');"
        )
    connection.close()
    connection_id = register(runtime, name="two", kind="sqlite", database=str(path))
    sync(runtime, connection_id)
    tables = tables_by_name(runtime, connection_id)
    ids = [columns_of(tables[("main", name)])["code"].id for name in ("a", "b", "c")]
    with runtime.session_factory.begin() as session:
        unified = mapping.create_unified_column(
            session, UnifiedColumnCreate(name="flag", logical_type="string")
        )
        for column_id in ids:
            mapping.create_column_mapping(
                session, ColumnMappingCreate(column_id=column_id, unified_column_id=unified.id)
            )
        unified_id = unified.id

    def suggest(max_values: int, read_seconds: float = 60.0):
        return suggest_values(
            runtime.read_session_factory,
            unified_id,
            runtime.box,
            runtime.source_policy,
            limit=10,
            max_values=max_values,
            read_seconds=read_seconds,
        )

    whole = suggest(100)
    assert (len(whole.suggestions), whole.truncated, whole.skipped_columns) == (5, False, [])
    assert [r.column_id for r in whole.already_canonical] == [ids[2]]

    # 4 in all: a's 3 values, one of b's, and c not read at all.
    bounded = suggest(4)
    read = bounded.suggestions + bounded.unmatched + bounded.already_canonical
    assert len(read) == 4 and bounded.truncated is True
    assert {s.column_id for s in bounded.suggestions} == {ids[0], ids[1]}
    assert [s.column_id for s in bounded.skipped_columns] == [ids[2]]
    assert "not read" in bounded.skipped_columns[0].reason

    # Out of time after the first column: the others are named, not read.
    hurried = suggest(100, read_seconds=0)
    assert hurried.truncated is True
    assert {s.column_id for s in hurried.suggestions} == {ids[0]}
    assert [s.column_id for s in hurried.skipped_columns] == ids[1:]
    assert all("s of source reads" in s.reason for s in hurried.skipped_columns)
