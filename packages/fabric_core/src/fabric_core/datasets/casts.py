"""Which conversions a build makes between a source column's type and its output's: the ones
it cannot make at all, and the ones where some values may not fit (the build nulls and counts
those). Mirrors fabric_core.datasets.transform.cast_expr."""

from __future__ import annotations

from typing import TYPE_CHECKING

import polars as pl

from fabric_core.catalog.harvest import LogicalType
from fabric_core.datasets.answers import PlannedCast
from fabric_core.datasets.types import decimal_scale, polars_dtype, type_label
from fabric_core.errors import InvalidInputError

if TYPE_CHECKING:
    from fabric_core.datasets.plan import DatasetPlan, OutputColumn, SourceColumn

# Conversions that take every value of the source type (beyond these, some values may not fit
# and become null). Text to anything but text can always fail: it is parsed.
_SAFE = {
    (LogicalType.INTEGER, LogicalType.FLOAT),
    (LogicalType.INTEGER, LogicalType.DECIMAL),  # 19 digits fit in decimal(38, s<=19)
    (LogicalType.INTEGER, LogicalType.BOOLEAN),
    (LogicalType.DECIMAL, LogicalType.FLOAT),
    (LogicalType.FLOAT, LogicalType.BOOLEAN),
    (LogicalType.BOOLEAN, LogicalType.INTEGER),
    (LogicalType.BOOLEAN, LogicalType.FLOAT),
    (LogicalType.DATE, LogicalType.DATETIME),
    (LogicalType.DATETIME, LogicalType.DATE),
}
# Conversions the build's casts (fabric_core.datasets.transform.cast_expr) do not have: a
# build that needs one is refused (refuse_unsupported_casts). Binary converts to text only.
_UNSUPPORTED = {
    LogicalType.BOOLEAN: {LogicalType.DECIMAL},
    LogicalType.DECIMAL: {LogicalType.DATE, LogicalType.DATETIME, LogicalType.TIME},
    LogicalType.DATE: {LogicalType.DECIMAL, LogicalType.BOOLEAN, LogicalType.TIME},
    LogicalType.DATETIME: {LogicalType.DECIMAL, LogicalType.BOOLEAN},
    LogicalType.TIME: {
        LogicalType.DECIMAL,
        LogicalType.BOOLEAN,
        LogicalType.DATE,
        LogicalType.DATETIME,
    },
}


def planned_cast(column: SourceColumn, output: OutputColumn) -> PlannedCast | None:
    """The conversion of ``column``'s values to ``output``'s type (None: they keep theirs).

    A value-mapped column is text once mapped, so its conversion starts from text.
    """
    if column.value_map:
        source_logical, source_dtype = LogicalType.STRING, pl.String()
    else:
        source_logical = LogicalType(column.logical_type)
        source_dtype = polars_dtype(source_logical, decimal_scale(column.native_type))
    source_label = type_label(source_logical, source_dtype)
    target_label = type_label(output.logical_type, output.dtype)
    if source_label == target_label:
        return None
    supported = cast_supported(source_logical, source_dtype, output)
    return PlannedCast(
        **{"from": source_label, "to": target_label},
        can_fail=not supported or cast_can_fail(source_logical, source_dtype, output),
        supported=supported,
    )


def cast_supported(source_logical: str, source_dtype: pl.DataType, output: OutputColumn) -> bool:
    """Whether the build can convert the source type to the output's at all."""
    if isinstance(output.dtype, pl.String) or source_dtype == output.dtype:
        return True
    if isinstance(source_dtype, pl.Binary):
        return False
    return output.logical_type not in _UNSUPPORTED.get(LogicalType(source_logical), set())


def cast_can_fail(source_logical: str, source_dtype: pl.DataType, output: OutputColumn) -> bool:
    """Whether some values of the source type may not fit the output's (the build nulls and
    counts them); mirrors fabric_core.datasets.transform.cast_expr."""
    target = output.dtype
    if isinstance(target, pl.String):
        return False  # everything has a text form
    if source_dtype == target:
        return False
    if isinstance(source_dtype, pl.String):
        return True  # parsed
    if isinstance(source_dtype, pl.Decimal) and isinstance(target, pl.Decimal):
        return (source_dtype.scale or 0) > (target.scale or 0)
    return (source_logical, output.logical_type) not in _SAFE


def refuse_unsupported_casts(plan: DatasetPlan) -> None:
    """A build that would need a conversion the build does not have (a date into a boolean,
    bytes into a number) is refused before it reads anything, naming every such column.

    Raises:
        InvalidInputError: at least one column cannot be converted to its output's type.
    """
    outputs = {output.name: output for output in plan.output}
    refused = [
        f"{source.label}.{column.source_name} ({cast.from_} to {cast.to})"
        for source in plan.sources
        for column in source.columns
        if (cast := planned_cast(column, outputs[column.output_name])) and not cast.supported
    ]
    if refused:
        raise InvalidInputError(
            "The build cannot convert these columns to their unified columns' types: "
            + ", ".join(refused)
            + ". Map them to a unified column of a type they convert to (text takes any),"
            " or leave them out."
        )
