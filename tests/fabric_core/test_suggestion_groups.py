"""Grouping matching column pairs across tables: strongest pairs first, one column of a
table per group, groups merged when their tables do not clash."""

from __future__ import annotations

from datetime import UTC, datetime

from fabric_core.suggestions.groups import group_pairs
from fabric_core.suggestions.inventory import ColumnInfo
from fabric_core.suggestions.scoring import Scored


def _column(column_id: int, table_id: int) -> ColumnInfo:
    return ColumnInfo(
        id=column_id,
        table_id=table_id,
        connection_id=1,
        schema="main",
        table=f"t{table_id}",
        name=f"c{column_id}",
        logical_type="string",
        native_type="TEXT",
        comment=None,
        primary_key=False,
        fk_table=None,
        fk_column=None,
        updated_at=datetime(2026, 1, 1, tzinfo=UTC),
    )


def _members(groups) -> set[frozenset[int]]:
    return {frozenset(m.id for m in members) for members, _, _ in groups}


def test_groups_merge_and_keep_one_column_per_table():
    a1, a2, b3, b4 = _column(1, 1), _column(2, 2), _column(3, 3), _column(4, 4)
    c1, c2, d1, d2 = _column(5, 1), _column(6, 2), _column(7, 1), _column(8, 2)
    e3 = _column(9, 3)
    pairs = [
        (a1, a2, Scored(a2, 5.0)),
        (b3, b4, Scored(b4, 4.9)),
        (c1, c2, Scored(c2, 4.8)),
        (a1, b3, Scored(b3, 4.7)),  # merges the a and b groups (tables 1, 2 and 3, 4)
        (d1, d2, Scored(d2, 4.6)),  # a new group after a merge
        (c1, b4, Scored(b4, 4.5)),  # would put two columns of tables 1 and 2 in one group
        (d2, e3, Scored(e3, 4.4)),
        (c2, e3, Scored(e3, 4.3)),  # e3 is taken already
    ]
    groups = group_pairs(pairs)
    assert _members(groups) == {
        frozenset({1, 2, 3, 4}),
        frozenset({5, 6}),
        frozenset({7, 8, 9}),
    }
    for members, edges, best in groups:
        assert len({m.table_id for m in members}) == len(members)
        assert edges and all(m.id in best for m in members)
    merged = next(g for g in groups if len(g[0]) == 4)
    assert sorted(e.logit for e in merged[1]) == [4.7, 4.9, 5.0]
