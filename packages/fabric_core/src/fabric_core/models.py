"""SQLAlchemy 2 models of the metadata DB (see docs/architecture.md for the picture)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timestamps stored in UTC and always read back timezone-aware (SQLite drops the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, datetime: UTCDateTime()}  # noqa: RUF012


class Connection(Base):
    __tablename__ = "connections"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(32))
    host: Mapped[str | None] = mapped_column(String(255))
    port: Mapped[int | None]
    database: Mapped[str | None] = mapped_column(String(1024))
    username: Mapped[str | None] = mapped_column(String(255))
    # The kind's secret (a password, an S3 secret key), encrypted.
    password_encrypted: Mapped[str | None] = mapped_column(Text)
    options: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # Location fields without a column of their own (an S3 bucket, prefix, endpoint...).
    settings: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    last_synced_at: Mapped[datetime | None]
    # The highest catalog column id new-column drift has checked (fabric_core.drift.impact);
    # None until the first harvest stored columns.
    drift_checked_column_id: Mapped[int | None]
    # Id of the sync job that holds this connection; one sync of a connection at a time.
    sync_lock: Mapped[str | None] = mapped_column(String(255))
    sync_locked_at: Mapped[datetime | None]

    schemas: Mapped[list[CatalogSchema]] = relationship(
        back_populates="connection", cascade="all, delete-orphan", passive_deletes=True
    )


class CatalogSchema(Base):
    __tablename__ = "catalog_schemas"
    __table_args__ = (UniqueConstraint("connection_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    connection_id: Mapped[int] = mapped_column(
        ForeignKey("connections.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(255))
    removed_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    connection: Mapped[Connection] = relationship(back_populates="schemas")


class CatalogTable(Base):
    __tablename__ = "catalog_tables"
    __table_args__ = (UniqueConstraint("schema_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    connection_id: Mapped[int] = mapped_column(
        ForeignKey("connections.id", ondelete="CASCADE"), index=True
    )
    schema_id: Mapped[int] = mapped_column(ForeignKey("catalog_schemas.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(16))
    row_estimate: Mapped[int | None] = mapped_column(BigInteger)
    comment: Mapped[str | None] = mapped_column(Text)
    # What the table was harvested from (see HarvestedTable.fingerprint); null for databases.
    fingerprint: Mapped[str | None] = mapped_column(String(64))
    removed_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class CatalogColumn(Base):
    __tablename__ = "catalog_columns"
    __table_args__ = (UniqueConstraint("table_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    # Looked up by table through the (table_id, name) key: no index of its own.
    table_id: Mapped[int] = mapped_column(ForeignKey("catalog_tables.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(255))
    ordinal: Mapped[int] = mapped_column(Integer)
    native_type: Mapped[str] = mapped_column(Text)
    logical_type: Mapped[str] = mapped_column(String(16))
    nullable: Mapped[bool] = mapped_column(Boolean)
    default: Mapped[str | None] = mapped_column(Text)
    primary_key: Mapped[bool] = mapped_column(Boolean, default=False)
    fk_schema: Mapped[str | None] = mapped_column(String(255))
    fk_table: Mapped[str | None] = mapped_column(String(255))
    fk_column: Mapped[str | None] = mapped_column(String(255))
    comment: Mapped[str | None] = mapped_column(Text)
    removed_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class Job(Base):
    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default="queued", index=True)
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    stats: Mapped[dict[str, Any]] = mapped_column(default=dict)
    error: Mapped[str | None] = mapped_column(Text)
    connection_id: Mapped[int | None] = mapped_column(
        ForeignKey("connections.id", ondelete="SET NULL"), index=True
    )
    dataset_name: Mapped[str | None] = mapped_column(String(128), index=True)
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    orchestrator: Mapped[str | None] = mapped_column(String(32))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    # When a service accepted the job; a second hand-over is accepted only once this is older
    # than job_handover_seconds and the job is still queued (its service died before running it).
    handed_over_at: Mapped[datetime | None]
    # Who queued the job: the API token's id (null for the bootstrap admin token) and name.
    requested_by_token_id: Mapped[int | None] = mapped_column(Integer, index=True)
    requested_by: Mapped[str | None] = mapped_column(String(128))
    # The retry policy fixed when the job was queued (fabric_core.retry.RetryPolicy as JSON;
    # null for jobs queued before policies existed: the settings' policy of its kind applies).
    retry_policy: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # One {attempt, error, at} per failed attempt, oldest first (errors redacted).
    attempt_errors: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    # A job put back to queued for a retry is handed over again no earlier than this; cleared
    # when a service accepts that hand-over.
    next_attempt_at: Mapped[datetime | None]


class ApiToken(Base):
    """A bearer token of the gateway; only a digest of its value is stored."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    role: Mapped[str] = mapped_column(String(16))
    token_digest: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(128))
    revoked_at: Mapped[datetime | None]


class AuditEvent(Base):
    """One state-changing request, or one refused (401/403) request, at the gateway."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    token_id: Mapped[int | None] = mapped_column(Integer, index=True)
    token_name: Mapped[str | None] = mapped_column(String(128))
    client: Mapped[str | None] = mapped_column(String(64))
    method: Mapped[str] = mapped_column(String(16))
    route: Mapped[str] = mapped_column(String(255))
    action: Mapped[str] = mapped_column(String(64), index=True)
    object_id: Mapped[str | None] = mapped_column(String(255))
    status: Mapped[int] = mapped_column(Integer)
    request_id: Mapped[str] = mapped_column(String(64))


class OutboxEvent(Base):
    """Something an operator may want to be told of, recorded in the transaction of the change
    itself (see fabric_core.events); the alert dispatcher delivers it to subscribed channels."""

    __tablename__ = "outbox_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(32), index=True)
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    # When the alert dispatcher made its deliveries (one per subscribed channel); null: not yet.
    fanned_out_at: Mapped[datetime | None] = mapped_column(index=True)


class AlertChannel(Base):
    """Where events are sent: a webhook, a Slack incoming webhook or an e-mail address."""

    __tablename__ = "alert_channels"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    # The URL or address, encrypted: a webhook URL (a Slack one above all) is a secret.
    target_encrypted: Mapped[str] = mapped_column(Text)
    # What may be shown of the target: scheme and host of a URL, or the e-mail address.
    target_hint: Mapped[str] = mapped_column(String(320))
    events: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    last_delivered_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    last_error_at: Mapped[datetime | None]


class AlertDelivery(Base):
    """One event to send to one channel, kept until it was sent or given up (at least once)."""

    __tablename__ = "alert_deliveries"
    __table_args__ = (UniqueConstraint("event_id", "channel_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("outbox_events.id", ondelete="CASCADE"))
    channel_id: Mapped[int] = mapped_column(
        ForeignKey("alert_channels.id", ondelete="CASCADE"), index=True
    )
    # pending (to send, perhaps again), delivered, or failed (given up after max attempts).
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    # A dispatcher sending it holds it until then; another takes it only after the lease ends.
    lease_until: Mapped[datetime | None]
    lease_holder: Mapped[str | None] = mapped_column(String(64))
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    delivered_at: Mapped[datetime | None]


class CircuitState(Base):
    """The shared state of one circuit breaker (fabric_core.circuits): every replica and
    process reads and changes it here, so they all agree on whether a dependency is down."""

    __tablename__ = "circuits"

    # "connection:12", "service:sync", "service:dataset", "airflow"
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    state: Mapped[str] = mapped_column(String(16), default="closed")  # closed|open|half_open
    failures: Mapped[int] = mapped_column(Integer, default=0)  # consecutive ones
    opened_at: Mapped[datetime | None]
    # open: when a trial call is let through; half_open: when a trial that never reported
    # (its process died) stops holding the circuit and another caller may try.
    retry_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(String(500))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class UnifiedColumn(Base):
    __tablename__ = "unified_columns"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    logical_type: Mapped[str] = mapped_column(String(16))
    description: Mapped[str | None] = mapped_column(Text)
    # The declared canonical values of a code column (value suggestions map onto them); null:
    # none declared.
    codes: Mapped[list[str] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class ColumnMapping(Base):
    """A source column that means a unified column (at most one per source column)."""

    __tablename__ = "column_mappings"

    id: Mapped[int] = mapped_column(primary_key=True)
    column_id: Mapped[int] = mapped_column(
        ForeignKey("catalog_columns.id", ondelete="CASCADE"), unique=True
    )
    unified_column_id: Mapped[int] = mapped_column(
        ForeignKey("unified_columns.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ValueMapping(Base):
    """A code inside a source column and what it means (values compared as text)."""

    __tablename__ = "value_mappings"
    __table_args__ = (UniqueConstraint("column_id", "source_value"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    column_id: Mapped[int] = mapped_column(
        ForeignKey("catalog_columns.id", ondelete="CASCADE"), index=True
    )
    source_value: Mapped[str] = mapped_column(String(1024))
    target_value: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ColumnSample(Base):
    """A bounded sample of a catalog column's distinct values (as text), read for column
    suggestions; stale once the column's stored fields change (``fingerprint``)."""

    __tablename__ = "column_samples"

    column_id: Mapped[int] = mapped_column(
        ForeignKey("catalog_columns.id", ondelete="CASCADE"), primary_key=True
    )
    fingerprint: Mapped[str] = mapped_column(String(64))
    sample_values: Mapped[list[str]] = mapped_column(JSON)
    truncated: Mapped[bool] = mapped_column(Boolean)
    sampled_at: Mapped[datetime] = mapped_column(default=utcnow)


class DismissedSuggestion(Base):
    """A column that is never suggested again for a unified column."""

    __tablename__ = "dismissed_suggestions"
    __table_args__ = (UniqueConstraint("unified_column_id", "column_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    unified_column_id: Mapped[int] = mapped_column(
        ForeignKey("unified_columns.id", ondelete="CASCADE")
    )
    # Its own index: the unique one leads with unified_column_id, and a column's deletion
    # (cascade) and drift's candidates look rows up by column.
    column_id: Mapped[int] = mapped_column(
        ForeignKey("catalog_columns.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Dataset(Base):
    __tablename__ = "datasets"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    storage_type: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default="building")
    current_version: Mapped[int | None]
    definition: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class DatasetVersion(Base):
    __tablename__ = "dataset_versions"
    __table_args__ = (UniqueConstraint("dataset_id", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default="building")
    storage_type: Mapped[str] = mapped_column(String(32))
    job_id: Mapped[str | None] = mapped_column(String(255))
    location: Mapped[str | None] = mapped_column(Text)
    row_count: Mapped[int | None] = mapped_column(BigInteger)
    columns: Mapped[dict[str, Any]] = mapped_column(default=dict)
    manifest: Mapped[dict[str, Any]] = mapped_column(default=dict)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    completed_at: Mapped[datetime | None]


class DriftItem(Base):
    """What a catalog change means to the mappings and datasets built on the column or table
    (fabric_core.drift): open until its cause goes away (``resolved_at``)."""

    __tablename__ = "drift_items"

    id: Mapped[int] = mapped_column(primary_key=True)
    connection_id: Mapped[int] = mapped_column(
        ForeignKey("connections.id", ondelete="CASCADE"), index=True
    )
    # Indexed: the open items of a sync's tables, of a dataset's tables (GET /api/drift?dataset=,
    # dataset plans and builds) and a table's deletion (cascade) look items up by table.
    table_id: Mapped[int] = mapped_column(
        ForeignKey("catalog_tables.id", ondelete="CASCADE"), index=True
    )
    column_id: Mapped[int | None] = mapped_column(
        ForeignKey("catalog_columns.id", ondelete="CASCADE"), index=True
    )
    severity: Mapped[str] = mapped_column(String(16))  # breaking | degrading | info
    kind: Mapped[str] = mapped_column(String(32))
    # schema.table.column (schema.table for an item about a table)
    column_name: Mapped[str] = mapped_column(Text)
    message: Mapped[str] = mapped_column(Text)
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # Names of the datasets affected when the item was last evaluated.
    datasets: Mapped[list[str]] = mapped_column(JSON, default=list)
    job_id: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    resolved_at: Mapped[datetime | None] = mapped_column(index=True)
