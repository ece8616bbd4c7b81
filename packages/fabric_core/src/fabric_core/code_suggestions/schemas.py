"""The answer of ``GET /api/unified-columns/{id}/value-suggestions``."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from fabric_core.schemas import ValuePair

VALUE_SUGGESTIONS_DEFAULT_LIMIT = 1000
VALUE_SUGGESTIONS_MAX_LIMIT = 10_000


class TargetSetPublic(BaseModel):
    source: Literal["value_mappings", "codes", "vocabulary"] | None = Field(
        description="Where the canonical values come from; null: none was found (every "
        "value is unmatched)."
    )
    vocabulary: Literal["iso3166", "iso4217", "boolean", "gender"] | None = Field(
        description="The built-in vocabulary the canonical values are read in, if any."
    )
    values_count: int


class ValueSuggestion(BaseModel):
    column_id: int
    source_value: str
    target_value: str
    score: float = Field(ge=0, le=1)
    reason: str


class SourceValueRef(BaseModel):
    column_id: int
    source_value: str


class SkippedColumn(BaseModel):
    column_id: int
    reason: str


class ValueMappingRequest(BaseModel):
    """A body for ``POST /api/value-mappings`` as it is (accepts one column's suggestions)."""

    column_id: int
    mappings: list[ValuePair]


class ValueSuggestions(BaseModel):
    unified_column_id: int
    target_set: TargetSetPublic
    suggestions: list[ValueSuggestion] = Field(description="Best score first, per column.")
    unmatched: list[SourceValueRef]
    already_canonical: list[SourceValueRef] = Field(
        description="Source values equal to a canonical value: nothing to map."
    )
    skipped_columns: list[SkippedColumn] = Field(
        description="Mapped columns whose values could not be read (removed, not scalar, "
        "source unreachable)."
    )
    value_mapping_requests: list[ValueMappingRequest] = Field(
        description="The suggestions grouped by column, each a body for POST "
        "/api/value-mappings: posting them accepts every suggestion."
    )
    truncated: bool = Field(
        description="A column has more distinct values than were read (raise limit)."
    )
