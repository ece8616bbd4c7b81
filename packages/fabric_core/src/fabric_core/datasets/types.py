"""Logical types of the catalog as polars types, and the common supertype of several."""

from __future__ import annotations

import re

import polars as pl

from fabric_core.catalog.harvest import LogicalType

DEFAULT_DECIMAL_SCALE = 6
DECIMAL_PRECISION = 38

_NUMERIC_RANK = {LogicalType.INTEGER: 0, LogicalType.DECIMAL: 1, LogicalType.FLOAT: 2}
_SCALE = re.compile(r"\(\s*\d+\s*,\s*(\d+)\s*\)")
_PRECISION = re.compile(r"\(\s*(\d+)\s*[,)]")


def decimal_scale(native_type: str) -> int | None:
    """The scale of ``numeric(12,2)`` / ``DECIMAL(10, 3)``, or None when the type names none."""
    match = _SCALE.search(native_type)
    return int(match.group(1)) if match else None


def needs_exact_text(logical_type: str, native_type: str) -> bool:
    """A decimal that Arrow readers would turn into a lossy double (or refuse): one without a
    declared scale, or wider than 38 digits. Such columns are read as text and cast here."""
    if logical_type != LogicalType.DECIMAL:
        return False
    precision = _PRECISION.search(native_type)
    return decimal_scale(native_type) is None or precision is None or int(precision.group(1)) > 38


def supertype(types: list[str]) -> LogicalType:
    """The logical type that holds values of all ``types`` (string when nothing narrower does)."""
    distinct = {LogicalType(t) for t in types}
    if len(distinct) == 1:
        return distinct.pop()
    if distinct <= set(_NUMERIC_RANK):
        return max(distinct, key=_NUMERIC_RANK.__getitem__)
    if distinct == {LogicalType.DATE, LogicalType.DATETIME}:
        return LogicalType.DATETIME
    return LogicalType.STRING


def polars_dtype(logical_type: str, decimal_scale: int | None = None) -> pl.DataType:
    """The polars type a column of ``logical_type`` has in a unified dataset."""
    match LogicalType(logical_type):
        case LogicalType.INTEGER:
            return pl.Int64()
        case LogicalType.FLOAT:
            return pl.Float64()
        case LogicalType.DECIMAL:
            scale = DEFAULT_DECIMAL_SCALE if decimal_scale is None else decimal_scale
            return pl.Decimal(DECIMAL_PRECISION, scale)
        case LogicalType.BOOLEAN:
            return pl.Boolean()
        case LogicalType.DATE:
            return pl.Date()
        case LogicalType.DATETIME:
            return pl.Datetime("us", "UTC")
        case LogicalType.TIME:
            return pl.Time()
        case LogicalType.BINARY:
            return pl.Binary()
        case _:  # string, json (as text), array (as JSON text), other
            return pl.String()


def type_label(logical_type: str, dtype: pl.DataType) -> str:
    """How a column's type is named in answers and manifests: ``integer``, ``decimal(38,2)``."""
    if isinstance(dtype, pl.Decimal):
        return f"decimal({dtype.precision},{dtype.scale})"
    return logical_type
