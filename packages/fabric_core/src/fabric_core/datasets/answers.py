"""API answers of a dataset's dry run (``POST /api/datasets/unified/plan``) and of the
difference between two of its versions (``GET /api/datasets/{name}/diff``).

Kept out of fabric_core.schemas, which holds the request bodies several processes share:
only the gateway gives these answers.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

# --- Dry run ---------------------------------------------------------------------------------


class PlannedCast(BaseModel):
    """The conversion a source column's values go through to reach the output type."""

    from_: str = Field(alias="from", description="The source column's type (string once mapped).")
    to: str = Field(description="The output column's type.")
    can_fail: bool = Field(
        description="True when some values may not convert: they become null and are "
        "counted in the build's cast_failures."
    )
    supported: bool = Field(
        default=True,
        description="False when the build cannot convert these types at all: it would fail.",
    )

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)


class PlannedValueMap(BaseModel):
    entries: int = Field(description="Source values the column's value mapping replaces.")


class PlannedSourceColumn(BaseModel):
    column_id: int
    connection: str
    schema_: str = Field(alias="schema")
    table: str
    column: str
    native_type: str
    cast: PlannedCast | None = Field(description="None when the values keep their type.")
    value_map: PlannedValueMap | None = Field(description="None when no value mapping applies.")

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    @property
    def label(self) -> str:
        """``connection.schema.table.column``, as mapping snapshots name source columns."""
        return f"{self.connection}.{self.schema_}.{self.table}.{self.column}"


class PlannedColumn(BaseModel):
    name: str
    type: str
    unified_column_id: int | None = None
    sources: list[PlannedSourceColumn] = Field(
        description="Where the column's values come from (empty for the provenance columns)."
    )


class PlannedSource(BaseModel):
    table_id: int
    connection: str
    schema_: str = Field(alias="schema")
    table: str
    row_estimate: int | None = Field(
        description="The catalog's estimate from the last sync (None: the source gave none)."
    )

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)


class CastThatCanFail(BaseModel):
    column: str = Field(description="The output column.")
    column_id: int = Field(description="The source column (catalog id).")
    source: str = Field(description="``connection.schema.table.column``")
    from_: str = Field(alias="from")
    to: str
    supported: bool = Field(description="False when the build cannot convert these types.")

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)


class AppliedValueMap(BaseModel):
    column: str = Field(description="The output column.")
    column_id: int = Field(description="The source column (catalog id).")
    source: str = Field(description="``connection.schema.table.column``")
    entries: int


class DriftWarning(BaseModel):
    """An open drift item on a column the build would read (see GET /api/drift)."""

    severity: Literal["breaking", "degrading", "info"]
    kind: str
    column_id: int | None = None
    column: str | None = None
    message: str
    datasets: list[str] = Field(default_factory=list)


class SchemaChanges(BaseModel):
    added: list[str] = Field(default_factory=list)
    removed: list[str] = Field(default_factory=list)
    retyped: list[dict[str, str]] = Field(
        default_factory=list, description='``{"name", "from", "to"}`` for each retyped column.'
    )


class ExistingDataset(BaseModel):
    """The dataset the plan would add a version to, and what that version would change."""

    status: str
    storage_type: str
    current_version: int | None
    row_count: int | None
    schema_changes: SchemaChanges | None = Field(
        description="The planned columns against the current version's (None: no version yet)."
    )


class DatasetPlanAnswer(BaseModel):
    name: str
    storage_type: str
    columns: list[PlannedColumn]
    sources: list[PlannedSource]
    casts_that_can_fail: list[CastThatCanFail]
    value_maps: list[AppliedValueMap]
    drift: list[DriftWarning] = Field(
        default_factory=list,
        description="Open drift items on the columns the build would read; a breaking one "
        'refuses the build unless it says "allow_drift": true.',
    )
    estimated_rows: int = Field(description="The sum of the sources' row estimates (known ones).")
    estimated_processing_time: str = Field(
        description="As in the build's queued answer, from estimated_rows."
    )
    estimated_output_bytes: int | None = Field(
        description="Uncompressed size of the rows to write, from row estimates and fixed "
        "per-type widths (None for a virtual dataset, which writes none)."
    )
    existing_dataset: ExistingDataset | None


# --- Version diff ----------------------------------------------------------------------------


class Change(BaseModel):
    """A value in the older version (``from``) and in the newer one (``to``)."""

    from_: Any = Field(alias="from")
    to: Any

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)


class DefinitionChanges(BaseModel):
    changed: dict[str, Change] = Field(
        default_factory=dict, description="Each field of the request that differs."
    )


class ColumnMappingChanges(BaseModel):
    """Column mappings in the snapshots, by source column (``connection.schema.table.column``)."""

    added: list[dict[str, Any]] = Field(default_factory=list)
    removed: list[dict[str, Any]] = Field(default_factory=list)
    changed: list[dict[str, Any]] = Field(default_factory=list)


class ValueMapChange(BaseModel):
    source: str
    added: dict[str, str | None] = Field(default_factory=dict)
    removed: dict[str, str | None] = Field(default_factory=dict)
    changed: dict[str, Change] = Field(default_factory=dict)


class ValueMappingChanges(BaseModel):
    """Value maps in the snapshots, by source column: whole maps added or removed (with their
    entries), and the entries that differ in maps both versions have."""

    added: dict[str, dict[str, str | None]] = Field(default_factory=dict)
    removed: dict[str, dict[str, str | None]] = Field(default_factory=dict)
    changed: list[ValueMapChange] = Field(default_factory=list)


class MappingChanges(BaseModel):
    column_mappings: ColumnMappingChanges = Field(default_factory=ColumnMappingChanges)
    value_mappings: ValueMappingChanges = Field(default_factory=ValueMappingChanges)


class SourceChanges(BaseModel):
    added: list[str] = Field(default_factory=list)
    removed: list[str] = Field(default_factory=list)


class DatasetDiff(BaseModel):
    name: str
    from_: int = Field(alias="from")
    to: int
    schema_: SchemaChanges = Field(alias="schema")
    rows: Change = Field(description="Row counts (None for a virtual version).")
    rows_per_source: Change
    sources: SourceChanges
    definition: DefinitionChanges
    mappings: MappingChanges

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)
