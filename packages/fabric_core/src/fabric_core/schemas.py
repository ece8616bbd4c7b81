"""API contracts shared by the gateway, the services and the clients, defined once."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

ConnectionKind = Literal["postgresql", "mysql", "sqlite"]
JobStatus = Literal["queued", "running", "success", "failed", "cancelled"]
TERMINAL_STATUSES: frozenset[str] = frozenset({"success", "failed", "cancelled"})


class ConnectionOptions(BaseModel):
    """Per-connection options; unknown keys are refused so a typo does not pass silently."""

    model_config = ConfigDict(extra="forbid")

    include_schemas: list[str] | None = Field(
        default=None, description="Glob patterns of schemas to harvest (default: all)."
    )
    exclude_schemas: list[str] | None = Field(
        default=None, description="Glob patterns of schemas to leave out."
    )
    sslmode: str | None = Field(default=None, description="PostgreSQL sslmode.")


class ConnectionBase(BaseModel):
    host: str | None = Field(default=None, max_length=255)
    port: int | None = Field(default=None, ge=1, le=65535)
    database: str | None = Field(
        default=None, max_length=1024, description="Database name; for sqlite the file path."
    )
    username: str | None = Field(default=None, max_length=255)


class ConnectionCreate(ConnectionBase):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    kind: ConnectionKind
    password: str | None = Field(default=None, max_length=1024)
    options: ConnectionOptions = Field(default_factory=ConnectionOptions)

    @field_validator("name")
    @classmethod
    def _strip_name(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("name must not be blank")
        return value


class ConnectionUpdate(ConnectionBase):
    """Fields to change; those left out stay as they are (send null to clear one)."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=200)
    kind: ConnectionKind | None = None
    password: str | None = Field(default=None, max_length=1024)
    options: ConnectionOptions | None = None


class ConnectionPublic(ConnectionBase):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    kind: ConnectionKind
    has_password: bool
    options: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    last_synced_at: datetime | None


class ConnectionCheck(BaseModel):
    ok: bool
    reachable: bool
    authenticated: bool
    message: str
    latency_ms: float
    server_version: str | None = None


class ForeignKeyPublic(BaseModel):
    schema_: str = Field(alias="schema", serialization_alias="schema")
    table: str
    column: str

    model_config = ConfigDict(populate_by_name=True)


class ColumnPublic(BaseModel):
    id: int
    name: str
    ordinal: int
    native_type: str
    logical_type: str
    nullable: bool
    default: str | None
    primary_key: bool
    foreign_key: ForeignKeyPublic | None
    comment: str | None
    removed: bool
    removed_at: datetime | None


class TablePublic(BaseModel):
    id: int
    connection_id: int
    schema_: str = Field(alias="schema", serialization_alias="schema")
    name: str
    kind: Literal["table", "view"]
    row_estimate: int | None
    comment: str | None
    removed: bool
    removed_at: datetime | None

    model_config = ConfigDict(populate_by_name=True)


class TableDetail(TablePublic):
    columns: list[ColumnPublic]


class JobPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    kind: str
    status: JobStatus
    progress: float
    stats: dict[str, Any]
    error: str | None
    connection_id: int | None
    attempts: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    updated_at: datetime


class SyncJobRequest(BaseModel):
    """Body of the sync service's ``POST /process-sync``."""

    model_config = ConfigDict(extra="forbid")

    job_id: str = Field(min_length=1, max_length=255)
    connection_id: int


class JobAccepted(BaseModel):
    """A service's answer to a job submission."""

    job_id: str
    status: JobStatus
    accepted: bool = Field(description="False when the job had already been started before.")


class SyncQueued(BaseModel):
    """The gateway's answer to ``POST /api/data-connections/{id}/sync`` (seed contract)."""

    message: str
    dag_run_id: str
    dag_id: str
    airflow_url: str
    connection_id: int
    status: JobStatus
