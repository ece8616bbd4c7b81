"""Casts into the unified types: what does not fit becomes null, never something else."""

from __future__ import annotations

import polars as pl
from fabric_core.datasets.transform import cast_expr


def _cast(values, source, target):
    frame = pl.DataFrame({"x": values}, schema={"x": source})
    return frame.select(cast_expr(pl.col("x"), source, target).alias("x"))["x"].to_list()


def test_non_integral_numbers_do_not_become_integers():
    assert _cast([1.0, 1.5, None, -2.0], pl.Float64(), pl.Int64()) == [1, None, None, -2]


def test_text_casts():
    assert _cast(["1", " 2 ", "x"], pl.String(), pl.Int64()) == [1, 2, None]
    assert _cast(["yes", "F", "maybe"], pl.String(), pl.Boolean()) == [True, False, None]
    assert [
        str(d) if d else None for d in _cast(["2024-01-02", "nope"], pl.String(), pl.Date())
    ] == [
        "2024-01-02",
        None,
    ]


def test_naive_datetimes_are_taken_as_utc():
    from datetime import datetime

    values = _cast([datetime(2024, 1, 1, 12)], pl.Datetime("us"), pl.Datetime("us", "UTC"))
    assert values[0].isoformat() == "2024-01-01T12:00:00+00:00"
