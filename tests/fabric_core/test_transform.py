"""Casts into the unified types and value mappings: what does not fit becomes null."""

from __future__ import annotations

import polars as pl
import pytest
from fabric_core.datasets.transform import cast_expr, map_values


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


def test_text_datetimes_in_any_iso_spelling_even_mixed():
    values = [
        "2024-02-01 10:00:00+02:00",
        "2024-02-01T10:00:00Z",
        " 2024-02-01 10:00:00.25 ",
        "2024-02-01T10:00",
        "2024-02-01",
        "2024-13-01",
        "01/02/2024",
        None,
    ]
    parsed = _cast(values, pl.String(), pl.Datetime("us", "UTC"))
    assert [v.isoformat() if v else None for v in parsed] == [
        "2024-02-01T08:00:00+00:00",
        "2024-02-01T10:00:00+00:00",
        "2024-02-01T10:00:00.250000+00:00",
        "2024-02-01T10:00:00+00:00",
        "2024-02-01T00:00:00+00:00",
        None,
        None,
        None,
    ]
    # The first value does not decide the spelling of the rest.
    dates = _cast(["2024-02-01 23:00:00", "2024-02-02", "x"], pl.String(), pl.Date())
    assert [str(d) if d else None for d in dates] == ["2024-02-01", "2024-02-02", None]


def test_naive_datetimes_are_taken_as_utc():
    from datetime import datetime

    values = _cast([datetime(2024, 1, 1, 12)], pl.Datetime("us"), pl.Datetime("us", "UTC"))
    assert values[0].isoformat() == "2024-01-01T12:00:00+00:00"


def _map(values, dtype, value_map):
    frame = pl.DataFrame({"x": values}, schema={"x": dtype})
    return frame.select(map_values(pl.col("x"), dtype, value_map).alias("x"))["x"].to_list()


# A few codes are compared one by one, many go through a hash join: both must agree.
FEW = {"1": "M", "2": "F", "01": "never", "3": None}
MANY = {**FEW, **{str(n): f"code {n}" for n in range(10, 30)}}


@pytest.mark.parametrize("value_map", [FEW, MANY], ids=["few", "many"])
def test_codes_match_in_their_text_form(value_map):
    # Integers: 1 matches "1", never "01"; 3 is mapped to null; unmapped 7 keeps its text.
    assert _map([1, 2, 3, 7, None, 1], pl.Int16(), value_map) == ["M", "F", None, "7", None, "M"]
    assert _map(["1", "01", "3", "x", None], pl.String(), value_map) == [
        "M",
        "never",
        None,
        "x",
        None,
    ]
    assert _map([1.0, 2.5], pl.Float64(), value_map) == ["1.0", "2.5"]
    assert _map([True, False], pl.Boolean(), {"true": "yes"}) == ["yes", "false"]


def test_only_non_canonical_codes_leave_integers_as_text():
    assert _map([1, 2], pl.Int64(), {"01": "one", "+2": "two"}) == ["1", "2"]
