"""The dry run's claims about casts (that one cannot fail, that one the build does not have)
hold against the build's own casts."""

from __future__ import annotations

import datetime as dt
import itertools
from decimal import Decimal

import polars as pl
import pytest
from fabric_core.datasets.casts import cast_can_fail, cast_supported
from fabric_core.datasets.plan import OutputColumn
from fabric_core.datasets.transform import cast_expr
from fabric_core.datasets.types import polars_dtype

UTC = dt.UTC
# Each logical type with a polars type as the build reads it and values at its edges.
SAMPLES: dict[str, tuple[pl.DataType, list]] = {
    "integer": (pl.Int64(), [0, 1, -5, 2**62, -(2**62)]),
    "float": (pl.Float64(), [0.0, 1.5, -2.25, 1e300]),
    "decimal": (pl.Decimal(38, 2), [Decimal("1.25"), Decimal("-3.10"), Decimal("0.00")]),
    "boolean": (pl.Boolean(), [True, False]),
    "date": (pl.Date(), [dt.date(2024, 1, 2), dt.date(1, 1, 1)]),
    "datetime": (pl.Datetime("us", "UTC"), [dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)]),
    "time": (pl.Time(), [dt.time(1, 2, 3)]),
    "string": (pl.String(), ["abc", "12", ""]),
    "binary": (pl.Binary(), [b"\x00\x01"]),
}
TARGETS = ["integer", "float", "decimal", "boolean", "date", "datetime", "time", "string"]


def _output(logical: str) -> OutputColumn:
    return OutputColumn("x", logical, polars_dtype(logical, 2 if logical == "decimal" else None))


@pytest.mark.parametrize(("source", "target"), list(itertools.product(SAMPLES, TARGETS)))
def test_a_cast_said_not_to_fail_keeps_every_value(source, target):
    dtype, values = SAMPLES[source]
    output = _output(target)
    if not cast_supported(source, dtype, output) or cast_can_fail(source, dtype, output):
        return  # claimed fallible: the build counts its failures
    frame = pl.DataFrame({"x": values}, schema={"x": dtype})
    cast = frame.select(cast_expr(pl.col("x"), dtype, output.dtype).alias("x"))
    assert cast["x"].null_count() == 0, (source, target, cast["x"].to_list())


@pytest.mark.parametrize(
    ("source", "target"),
    [
        ("string", "integer"),
        ("string", "date"),
        ("float", "integer"),
        ("decimal", "integer"),
        ("float", "decimal"),
        ("date", "time"),
    ],
)
def test_casts_that_can_fail_are_said_to(source, target):
    assert cast_can_fail(source, SAMPLES[source][0], _output(target))


def test_a_decimal_to_a_smaller_scale_can_fail_and_to_a_larger_one_cannot():
    two, four = pl.Decimal(38, 2), pl.Decimal(38, 4)
    assert cast_can_fail("decimal", four, OutputColumn("x", "decimal", two))
    assert not cast_can_fail("decimal", two, OutputColumn("x", "decimal", four))


@pytest.mark.parametrize(("source", "target"), list(itertools.product(SAMPLES, TARGETS)))
def test_a_cast_is_said_unsupported_exactly_when_the_build_refuses_it(source, target):
    dtype, values = SAMPLES[source]
    output = _output(target)
    frame = pl.DataFrame({"x": values}, schema={"x": dtype})
    try:
        frame.select(cast_expr(pl.col("x"), dtype, output.dtype))
        refused = False
    except pl.exceptions.InvalidOperationError:
        refused = True
    assert cast_supported(source, dtype, output) is not refused
