"""API contracts shared by the gateway, the services and the clients, defined once."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from fabric_core.catalog.harvest import LogicalType
from fabric_core.source_kinds import CONNECTION_KINDS

# The registered kinds (fabric_core.connectors), so the API's enum follows the registry.
ConnectionKind = Literal[CONNECTION_KINDS]  # type: ignore[valid-type]
JobStatus = Literal["queued", "running", "success", "failed", "cancelled"]
TERMINAL_STATUSES: frozenset[str] = frozenset({"success", "failed", "cancelled"})


class RequestBody(BaseModel):
    """What every request body shares: unknown fields are refused (a typo does not pass
    silently) and floats must be finite (``1e999`` parses as infinity)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


# User-supplied glob patterns are bounded in length and count: matching one (fnmatch, whose
# translation makes each ``*`` an atomic group, so it never backtracks across stars) costs at
# most the pattern's length times the name's, and a filter at most MAX_PATTERNS of those.
MAX_PATTERNS = 100
MAX_PATTERN_CHARS = 256
GlobPattern = Annotated[str, Field(min_length=1, max_length=MAX_PATTERN_CHARS)]
GlobPatterns = Annotated[list[GlobPattern], Field(max_length=MAX_PATTERNS)]


class ConnectionOptions(RequestBody):
    """Options of the database kinds; unknown keys are refused so a typo does not pass
    silently. Each kind's connector names its options model (``options_model``)."""

    include_schemas: GlobPatterns | None = Field(
        default=None, description="Glob patterns of schemas to harvest (default: all)."
    )
    exclude_schemas: GlobPatterns | None = Field(
        default=None, description="Glob patterns of schemas to leave out."
    )
    sslmode: Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"] | None = (
        Field(default=None, description="PostgreSQL sslmode (libpq's values).")
    )


# Options are checked by the kind's options model; this bounds what reaches it.
MAX_OPTIONS = 20


def _no_nul(value: Any) -> Any:
    if isinstance(value, str) and "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


class ConnectionBase(BaseModel):
    @field_validator("*", mode="before")
    @classmethod
    def _refuse_nul(cls, value: Any) -> Any:
        return _no_nul(value)

    host: str | None = Field(default=None, max_length=255)
    port: int | None = Field(default=None, ge=1, le=65535)
    database: str | None = Field(
        default=None, max_length=1024, description="Database name; for sqlite the file path."
    )
    username: str | None = Field(default=None, max_length=255)
    bucket: str | None = Field(default=None, max_length=63, description="s3: the bucket.")
    prefix: str | None = Field(
        default=None, max_length=1024, description="s3: the folder of the bucket to harvest."
    )
    endpoint_url: str | None = Field(
        default=None, max_length=1024, description="s3: an S3-compatible server (default AWS)."
    )
    region: str | None = Field(default=None, max_length=64, description="s3: the region.")
    access_key_id: str | None = Field(default=None, max_length=255)


class ConnectionCreate(ConnectionBase, RequestBody):
    name: str = Field(min_length=1, max_length=200)
    kind: ConnectionKind
    password: str | None = Field(default=None, max_length=1024)
    secret_access_key: str | None = Field(
        default=None, max_length=1024, description="s3: stored encrypted, never returned."
    )
    options: dict[str, Any] = Field(
        default_factory=dict,
        max_length=MAX_OPTIONS,
        description="The kind's options; unknown keys are refused.",
    )

    @field_validator("name")
    @classmethod
    def _strip_name(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("name must not be blank")
        return value


class ConnectionUpdate(ConnectionBase, RequestBody):
    """Fields to change; those left out stay as they are (send null to clear one)."""

    name: str | None = Field(default=None, min_length=1, max_length=200)
    kind: ConnectionKind | None = None
    password: str | None = Field(default=None, max_length=1024)
    secret_access_key: str | None = Field(default=None, max_length=1024)
    options: dict[str, Any] | None = Field(default=None, max_length=MAX_OPTIONS)


class CircuitPublic(BaseModel):
    """A circuit breaker's state (fabric_core.circuits); closed with 0 failures until a call
    fails."""

    state: Literal["closed", "open", "half_open"] = "closed"
    failures: int = Field(default=0, description="Consecutive connection-level failures.")
    opened_at: datetime | None = None
    retry_at: datetime | None = Field(
        default=None, description="When an open circuit lets one trial call through."
    )


class ConnectionPublic(ConnectionBase):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    kind: ConnectionKind
    has_password: bool
    has_secret: bool = Field(description="A password or secret key is stored.")
    options: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    last_synced_at: datetime | None
    circuit: CircuitPublic = Field(
        description="The source's circuit breaker: open after repeated connection failures."
    )


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


MAX_RETRY_ATTEMPTS = 10


class RetryPolicy(BaseModel):
    """How often a job whose error may pass (a source that did not answer) is tried, and how
    long it waits between attempts: ``backoff_seconds * 2**(n-1)`` after attempt n, at most
    ``max_delay_seconds``. Fixed on the job when it is queued."""

    attempts: int = Field(ge=1, le=MAX_RETRY_ATTEMPTS, description="Attempts in all; 1: none.")
    backoff_seconds: float = Field(ge=0, description="Wait before the second attempt.")
    max_delay_seconds: float = Field(ge=0, description="Longest wait between two attempts.")

    def delay_after(self, attempt: int) -> float:
        """Seconds to wait before the attempt after failed attempt ``attempt`` (1-based)."""
        # The exponent is bounded (attempts <= 10), so the power never overflows.
        return min(self.max_delay_seconds, self.backoff_seconds * 2 ** max(0, attempt - 1))


class RetryRequest(RequestBody):
    """A request's own retry policy; what it leaves out comes from the settings of its kind."""

    attempts: int = Field(
        ge=1,
        le=MAX_RETRY_ATTEMPTS,
        description=f"Attempts in all (1 to {MAX_RETRY_ATTEMPTS}); 1: no retry.",
    )


class AttemptError(BaseModel):
    """Why one attempt of a job failed."""

    attempt: int
    error: str
    at: datetime


class JobPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    kind: str
    status: JobStatus
    progress: float
    stats: dict[str, Any]
    error: str | None
    connection_id: int | None
    attempts: int = Field(description="Attempts started so far.")
    attempt_errors: list[AttemptError] = Field(
        default_factory=list, description="Why each failed attempt failed, oldest first."
    )
    retry_policy: RetryPolicy | None = Field(
        default=None, description="The retry policy the job was queued with."
    )
    next_attempt_at: datetime | None = Field(
        default=None,
        description="Set while the job waits to be tried again: not handed over before then.",
    )
    requested_by: str | None = Field(default=None, description="Name of the token that queued it.")
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    updated_at: datetime
    dag_run: dict[str, Any] | None = Field(
        default=None, description="The Airflow DAG run's state, for jobs run through Airflow."
    )

    @field_validator("attempt_errors", mode="before")
    @classmethod
    def _none_is_empty(cls, value: Any) -> Any:
        return [] if value is None else value


class SyncParams(RequestBody):
    """What a sync job works on (the job row's ``params``)."""

    connection_id: int


class SyncRequest(RequestBody):
    """Optional body of the gateway's ``POST /api/data-connections/{id}/sync``."""

    retry: RetryRequest | None = None


class SyncJobRequest(SyncParams):
    """Body of the sync service's ``POST /process-sync``."""

    job_id: str = Field(min_length=1, max_length=255)


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


# --- Mappings -------------------------------------------------------------------------------

# Plain strings in JSON; the one vocabulary is LogicalType.
LogicalTypeName = LogicalType
SAFE_IDENTIFIER = r"^[A-Za-z_][A-Za-z0-9_]*$"
MAX_VALUE_CHARS = 1024  # the source_value column's length
MAX_VALUE_MAPPINGS = 10_000
ScalarValue = Annotated[str, Field(max_length=MAX_VALUE_CHARS)] | int | float | bool


def value_as_text(value: ScalarValue | None) -> str | None:
    """The text form values are compared in: ``1`` matches ``"1"``, ``True`` is ``"true"``."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class ColumnValues(BaseModel):
    """Distinct values of a source column, as text (how value mappings compare them)."""

    column_id: int
    values: list[str]
    truncated: bool = Field(description="The column has more distinct values than listed.")


MAX_CODES = 10_000
Code = Annotated[str, Field(min_length=1, max_length=MAX_VALUE_CHARS)]
CODES_DESCRIPTION = (
    "The canonical values of a code column (unique strings, at most 10,000): value "
    "suggestions map source values onto them. Optional."
)


def _unique_codes(codes: list[str] | None) -> list[str] | None:
    if codes is None:
        return None
    seen: set[str] = set()
    twice: set[str] = set()
    for code in codes:
        (twice if code in seen else seen).add(code)
    if twice:
        raise ValueError(f"codes repeated: {sorted(twice)[:5]}")
    return codes


class UnifiedColumnCreate(RequestBody):
    name: str = Field(
        min_length=1,
        max_length=63,
        pattern=SAFE_IDENTIFIER,
        description="A safe identifier: letters, digits and _, not starting with a digit.",
    )
    logical_type: LogicalTypeName
    description: str | None = Field(default=None, max_length=4000)
    codes: list[Code] | None = Field(
        default=None, max_length=MAX_CODES, description=CODES_DESCRIPTION
    )

    _codes_unique = field_validator("codes")(_unique_codes)


class UnifiedColumnUpdate(RequestBody):
    name: str | None = Field(default=None, min_length=1, max_length=63, pattern=SAFE_IDENTIFIER)
    logical_type: LogicalTypeName | None = None
    description: str | None = Field(default=None, max_length=4000)
    codes: list[Code] | None = Field(
        default=None, max_length=MAX_CODES, description=CODES_DESCRIPTION + " null clears them."
    )

    _codes_unique = field_validator("codes")(_unique_codes)


class UnifiedColumnPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    logical_type: str
    description: str | None
    codes: list[str] | None = None
    mapped_columns: int = 0
    created_at: datetime
    updated_at: datetime


class SourceColumnRef(BaseModel):
    """Where a mapped source column lives."""

    connection_id: int
    table_id: int
    schema_: str = Field(alias="schema", serialization_alias="schema")
    table: str
    column: str

    model_config = ConfigDict(populate_by_name=True)


class ColumnMappingCreate(RequestBody):
    column_id: int
    unified_column_id: int


class ColumnMappingPublic(BaseModel):
    id: int
    column_id: int
    unified_column_id: int
    unified_column: str
    source: SourceColumnRef
    stale: bool = Field(description="The source column (or its table) was removed by a sync.")
    created_at: datetime


class ValuePair(RequestBody):
    source_value: ScalarValue
    target_value: ScalarValue | None


class ValueMappingCreate(RequestBody):
    """One value (``source_value``/``target_value``) or many (``mappings``) of one column."""

    column_id: int
    source_value: ScalarValue | None = None
    target_value: ScalarValue | None = None
    mappings: list[ValuePair] | None = Field(default=None, max_length=MAX_VALUE_MAPPINGS)

    def pairs(self) -> list[tuple[str, str | None]]:
        if self.mappings is not None:
            if self.source_value is not None or self.target_value is not None:
                raise ValueError("send either source_value/target_value or mappings, not both")
            return [
                (value_as_text(p.source_value), value_as_text(p.target_value))
                for p in self.mappings
            ]
        if self.source_value is None:
            raise ValueError("source_value is required (or mappings for many values)")
        return [(value_as_text(self.source_value), value_as_text(self.target_value))]


class ValueMappingPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    column_id: int
    source_value: str
    target_value: str | None
    created_at: datetime


# --- Datasets -------------------------------------------------------------------------------

DATASET_NAME = r"^[A-Za-z0-9_][A-Za-z0-9_-]{0,127}$"
PREVIEW_DEFAULT_ROWS = 100
PREVIEW_MAX_ROWS = 1000


class DatasetRequest(RequestBody):
    """What a unified dataset is made of (the seed's request body)."""

    name: str = Field(
        pattern=DATASET_NAME,
        description="Letters, digits, _ and - (not first); nothing path-like.",
    )
    selection_mode: Literal["tables", "columns"]
    selected_tables: list[int] = Field(default_factory=list, max_length=1000)
    selected_columns: list[int] = Field(default_factory=list, max_length=10_000)
    auto_include_mapped_columns: bool = True
    apply_value_mappings: bool = True
    storage_type: Literal["copy_to_minio", "virtual"] = "copy_to_minio"

    @model_validator(mode="after")
    def _selection_matches_mode(self) -> DatasetRequest:
        if self.selection_mode == "tables" and not self.selected_tables:
            raise ValueError("selection_mode 'tables' needs selected_tables (catalog table ids)")
        if self.selection_mode == "columns" and not self.selected_columns:
            raise ValueError("selection_mode 'columns' needs selected_columns (catalog column ids)")
        return self


class DatasetCreateRequest(DatasetRequest):
    """Body of the gateway's ``POST /api/datasets/unified``: the dataset and, optionally, the
    job's own retry policy (not part of the dataset's definition)."""

    retry: RetryRequest | None = None
    # Build even though columns it reads have breaking drift (not kept in the definition).
    allow_drift: bool = False

    def dataset_request(self) -> DatasetRequest:
        return DatasetRequest.model_validate(self.model_dump(exclude={"retry", "allow_drift"}))


class DatasetPreviewRequest(DatasetRequest):
    name: str = Field(default="preview", pattern=DATASET_NAME)
    limit: int = Field(
        default=PREVIEW_DEFAULT_ROWS,
        ge=1,
        le=PREVIEW_MAX_ROWS,
        description=f"Rows to return, at most {PREVIEW_MAX_ROWS}.",
    )


class DatasetJobRequest(DatasetRequest):
    """Body of the dataset service's ``POST /process-dataset-creation``."""

    job_id: str = Field(min_length=1, max_length=255)


class DatasetQueued(BaseModel):
    """The gateway's answer to ``POST /api/datasets/unified`` (seed contract)."""

    message: str
    dag_run_id: str
    dag_id: str
    airflow_url: str
    dataset_name: str
    selection_mode: str
    status: JobStatus
    estimated_processing_time: str


class DatasetColumn(BaseModel):
    name: str
    type: str


class DatasetPreview(BaseModel):
    columns: list[DatasetColumn]
    rows: list[dict[str, Any]]
    limit: int
    row_count: int
    cast_failures: dict[str, int] = Field(default_factory=dict)


class DatasetVersionPublic(BaseModel):
    version: int
    status: str
    storage_type: str
    job_id: str | None
    location: str | None
    row_count: int | None
    rows_per_source: dict[str, int] = Field(default_factory=dict)
    created_at: datetime
    completed_at: datetime | None


class DatasetPublic(BaseModel):
    name: str
    status: str
    storage_type: str
    current_version: int | None
    location: str | None
    row_count: int | None
    columns: list[DatasetColumn]
    versions: list[DatasetVersionPublic]
    definition: dict[str, Any]
    # Open breaking drift on columns the definition reads (fabric_core.drift): a build is
    # refused until it is fixed, or asked with "allow_drift": true.
    needs_attention: bool = False
    attention_reasons: list[str] = Field(default_factory=list)
    created_at: datetime
    updated_at: datetime
