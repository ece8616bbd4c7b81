"""A dataset's dry run: what a build of a request would produce, from the metadata DB alone.

No source is reached and no job is made: the plan (fabric_core.datasets.plan) is described
with the conversions it implies, the catalog's row estimates from the last sync, and an
estimate of the output's size.

Size model: each source contributes ``row_estimate`` rows of the widths of the output columns
it fills (fixed bytes per type, below; text takes its declared length when shorter than
``STRING_WIDTH``). Columns a source does not fill are nulls and the provenance columns are
constants per source: Parquet stores both in next to nothing, so they count zero. The figure
is the uncompressed size of the values; the Parquet files (dictionary encoding, zstd) are
usually smaller.
"""

from __future__ import annotations

import re
from collections import defaultdict

from sqlalchemy import select
from sqlalchemy.orm import Session

from fabric_core.catalog.harvest import LogicalType
from fabric_core.crypto import SecretBox
from fabric_core.dataset_jobs import estimate_text
from fabric_core.datasets.answers import (
    AppliedValueMap,
    CastThatCanFail,
    DatasetPlanAnswer,
    DriftWarning,
    ExistingDataset,
    PlannedColumn,
    PlannedSource,
    PlannedSourceColumn,
    PlannedValueMap,
)
from fabric_core.datasets.casts import planned_cast
from fabric_core.datasets.diff import schema_changes
from fabric_core.datasets.plan import (
    DatasetPlan,
    OutputColumn,
    SourceColumn,
    SourceTable,
    plan_dataset,
)
from fabric_core.datasets.types import type_label
from fabric_core.drift.datasets import affected_datasets, request_drift
from fabric_core.models import Dataset, DatasetVersion
from fabric_core.schemas import DatasetRequest

# Bytes per value, uncompressed.
TYPE_WIDTHS: dict[str, int] = {
    LogicalType.INTEGER: 8,
    LogicalType.FLOAT: 8,
    LogicalType.DECIMAL: 16,
    LogicalType.BOOLEAN: 1,
    LogicalType.DATE: 4,
    LogicalType.DATETIME: 8,
    LogicalType.TIME: 8,
    LogicalType.BINARY: 32,
}
STRING_WIDTH = 16  # text, JSON, arrays and other types, all written as text
_DECLARED_LENGTH = re.compile(r"\(\s*(\d+)\s*\)")


def dry_run(session: Session, request: DatasetRequest, box: SecretBox) -> DatasetPlanAnswer:
    """What building ``request`` would produce, read from the catalog and the mappings.

    Raises:
        InvalidInputError: as the build does (unknown or removed tables or columns, names that
        collide).
    """
    plan = plan_dataset(session, request, box)
    members: dict[str, list[tuple[SourceTable, SourceColumn]]] = defaultdict(list)
    for source in plan.sources:
        for column in source.columns:
            members[column.output_name].append((source, column))
    columns = [_planned_column(output, members[output.name]) for output in plan.output]
    casts = [
        CastThatCanFail(
            column=column.name,
            column_id=member.column_id,
            source=member.label,
            supported=member.cast.supported,
            **{"from": member.cast.from_, "to": member.cast.to},
        )
        for column in columns
        for member in column.sources
        if member.cast is not None and member.cast.can_fail
    ]
    value_maps = [
        AppliedValueMap(
            column=column.name,
            column_id=member.column_id,
            source=member.label,
            entries=member.value_map.entries,
        )
        for column in columns
        for member in column.sources
        if member.value_map is not None
    ]
    return DatasetPlanAnswer(
        name=plan.name,
        storage_type=request.storage_type,
        columns=columns,
        sources=[
            PlannedSource(
                table_id=s.table_id,
                connection=s.connection_name,
                schema=s.schema,
                table=s.name,
                row_estimate=s.row_estimate,
            )
            for s in plan.sources
        ],
        casts_that_can_fail=casts,
        value_maps=value_maps,
        drift=_drift_warnings(session, request),
        estimated_rows=plan.estimated_rows,
        estimated_processing_time=estimate_text(plan.estimated_rows),
        estimated_output_bytes=(
            None if request.storage_type == "virtual" else estimated_output_bytes(plan)
        ),
        existing_dataset=_existing(session, plan),
    )


def _drift_warnings(session: Session, request: DatasetRequest) -> list[DriftWarning]:
    """Open drift on the columns the build would read (breaking ones refuse the build unless
    it allows drift)."""
    items = request_drift(session, request)
    return [
        DriftWarning(
            severity=item.severity,
            kind=item.kind,
            column_id=item.column_id,
            column=item.column_name,
            message=item.message,
            datasets=datasets,
        )
        for item, datasets in zip(items, affected_datasets(session, items), strict=True)
    ]


def estimated_output_bytes(plan: DatasetPlan) -> int:
    """The uncompressed size of the rows a build writes (see the module's size model)."""
    types = {output.name: output for output in plan.output}
    total = 0
    for source in plan.sources:
        row_width = sum(_width(types[c.output_name], c) for c in source.columns)
        total += (source.row_estimate or 0) * row_width
    return total


def _width(output: OutputColumn, column: SourceColumn) -> int:
    width = TYPE_WIDTHS.get(output.logical_type)
    if width is not None:
        return width
    declared = _DECLARED_LENGTH.search(column.native_type) if not column.value_map else None
    return min(int(declared.group(1)), STRING_WIDTH) if declared else STRING_WIDTH


def _planned_column(
    output: OutputColumn, members: list[tuple[SourceTable, SourceColumn]]
) -> PlannedColumn:
    return PlannedColumn(
        name=output.name,
        type=type_label(output.logical_type, output.dtype),
        unified_column_id=output.unified_column_id,
        sources=[
            PlannedSourceColumn(
                column_id=column.column_id,
                connection=source.connection_name,
                schema=source.schema,
                table=source.name,
                column=column.source_name,
                native_type=column.native_type,
                cast=planned_cast(column, output),
                value_map=PlannedValueMap(entries=len(column.value_map))
                if column.value_map
                else None,
            )
            for source, column in members
        ],
    )


def _existing(session: Session, plan: DatasetPlan) -> ExistingDataset | None:
    dataset = session.scalar(select(Dataset).where(Dataset.name == plan.name))
    if dataset is None:
        return None
    current = session.scalar(
        select(DatasetVersion).where(
            DatasetVersion.dataset_id == dataset.id,
            DatasetVersion.version == dataset.current_version,
        )
    )
    return ExistingDataset(
        status=dataset.status,
        storage_type=dataset.storage_type,
        current_version=dataset.current_version,
        row_count=current.row_count if current else None,
        schema_changes=(
            schema_changes(current.columns.get("columns", []), plan.columns_public())
            if current
            else None
        ),
    )
