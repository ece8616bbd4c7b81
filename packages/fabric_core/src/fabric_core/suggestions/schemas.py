"""Request and answer bodies of the suggestion API."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from fabric_core.schemas import RequestBody

MAX_ACCEPT = 500


class Evidence(BaseModel):
    kind: str = Field(
        description="name, comment, type, context, foreign_key, values, pattern or group."
    )
    detail: str
    weight: float = Field(description="What it added to the score's log-odds (<0: against).")


class ColumnSuggestion(BaseModel):
    column_id: int
    table_id: int
    connection_id: int
    schema_: str = Field(alias="schema", serialization_alias="schema")
    table: str
    column: str
    score: float = Field(ge=0, le=1, description="0.5 or more: accept this.")
    evidence: list[Evidence]

    model_config = {"populate_by_name": True}


class ColumnGroup(BaseModel):
    name: str = Field(description="A proposed unified column name.")
    logical_type: str
    columns: list[ColumnSuggestion]
    score: float = Field(ge=0, le=1)
    evidence: list[Evidence]


class DismissRequest(RequestBody):
    column_id: int


class DismissedColumn(BaseModel):
    column_id: int
    table_id: int
    connection_id: int
    schema_: str = Field(alias="schema", serialization_alias="schema")
    table: str
    column: str
    dismissed_at: datetime

    model_config = {"populate_by_name": True}


class AcceptRequest(RequestBody):
    column_ids: list[int] = Field(min_length=1, max_length=MAX_ACCEPT)
