"""Value drift: codes a source now holds that its column's value mappings do not map.

Run by the sync job after the catalog is stored, outside any metadata-DB transaction while
the source answers: each code column (a live column with value mappings) gets one bounded
``SELECT DISTINCT ... LIMIT`` through the connection's circuit breaker. A sample that fails
does not fail the sync: it is logged and kept as an ``info`` item on the column.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from fabric_core.catalog.harvest import LogicalType
from fabric_core.circuits import CircuitBreaker, source_call
from fabric_core.connectors import get_connector
from fabric_core.connectors.base import ConnectionSpec
from fabric_core.crypto import redact
from fabric_core.drift.impact import Finding, item_summary, record_findings
from fabric_core.drift.kinds import (
    DEGRADING,
    INFO,
    MAX_CODES_SHOWN,
    UNMAPPED_CODES,
    VALUE_SAMPLE_FAILED,
)
from fabric_core.drift.resolve import reevaluate
from fabric_core.events import record_event
from fabric_core.models import (
    CatalogColumn,
    CatalogSchema,
    CatalogTable,
    ColumnSample,
    Connection,
    DriftItem,
    ValueMapping,
    utcnow,
)
from fabric_core.schemas import value_as_text
from fabric_core.suggestions.inventory import columns_by_id
from fabric_core.suggestions.samples import SAMPLE_ROWS, as_text

log = logging.getLogger(__name__)

# Types whose values are not codes (as fabric_core.catalog.values refuses to look them up).
_NOT_CODES = (LogicalType.JSON, LogicalType.ARRAY, LogicalType.BINARY, LogicalType.OTHER)

# Distinct values read per code column: code lists are short; a column with more distinct
# values than this is not a code column, and its sample is marked truncated.
SAMPLE_VALUES = 1000
# Code columns sampled per sync at most: those sampled longest ago (or never) first, so a
# connection with more code columns goes round them over several syncs. When a column was
# last sampled is kept in the value-sample cache of column suggestions (``column_samples``),
# which each sample also fills.
MAX_COLUMNS = 200


@dataclass(slots=True)
class _CodeColumn:
    column_id: int
    table_id: int
    schema: str
    table: str
    column: str

    @property
    def name(self) -> str:
        return f"{self.schema}.{self.table}.{self.column}"


@dataclass(slots=True)
class ValueDriftSummary:
    columns_sampled: int = 0
    columns_failed: int = 0
    unmapped_codes: int = 0
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "columns_sampled": self.columns_sampled,
            "columns_failed": self.columns_failed,
            "unmapped_codes": self.unmapped_codes,
        }


def sample_value_drift(
    session_factory: sessionmaker[Session],
    connection_id: int,
    spec: ConnectionSpec,
    *,
    timeout: float,
    circuits: CircuitBreaker | None = None,
    job_id: str | None = None,
    sample_values: int = SAMPLE_VALUES,
    check_stop: Callable[[], None] | None = None,
) -> ValueDriftSummary:
    """Sample each code column of the connection and open, update or resolve its
    ``unmapped_codes`` item; never raises for a source that fails to answer. ``check_stop``
    is called before each column (a cancelled job raises there; what is recorded stays)."""
    summary = ValueDriftSummary()
    with session_factory() as session:
        code_columns = _code_columns(session, connection_id)
    connector = get_connector(spec.kind)
    for code_column in code_columns:
        if check_stop is not None:
            check_stop()
        try:
            with source_call(circuits, connection_id, spec.secrets):
                values = connector.distinct_values(
                    spec,
                    code_column.schema,
                    code_column.table,
                    code_column.column,
                    limit=sample_values + 1,
                    timeout=timeout,
                )
        except Exception as exc:  # any failure is the sample's alone, never the sync's
            summary.columns_failed += 1
            error = redact(f"{type(exc).__name__}: {exc}", spec.secrets)[:500]
            log.warning("Value sample of %s failed: %s", code_column.name, error)
            with session_factory.begin() as session:
                record_findings(session, connection_id, [_failed(code_column, error)], job_id)
            _remember_sampled(session_factory, code_column.column_id, None)
            continue
        summary.columns_sampled += 1
        truncated = len(values) > sample_values
        texts = [value_as_text(v) for v in values[:sample_values]]
        with session_factory.begin() as session:
            _record_sample(session, connection_id, code_column, texts, truncated, job_id, summary)
        _remember_sampled(session_factory, code_column.column_id, values)
    return summary


def _remember_sampled(
    session_factory: sessionmaker[Session], column_id: int, values: list | None
) -> None:
    """Store the sample in the suggestions' cache, which also says when the column was last
    sampled (the order of the next syncs). A failed sample stores an empty one that never
    counts as fresh (its fingerprint matches no column), so the column still goes to the end."""
    try:
        with session_factory.begin() as session:
            infos = columns_by_id(session, [column_id])
            if not infos:
                return
            session.merge(
                ColumnSample(
                    column_id=column_id,
                    fingerprint=infos[0].fingerprint if values is not None else "",
                    sample_values=[as_text(v) for v in (values or [])[:SAMPLE_ROWS]],
                    truncated=values is not None and len(values) > SAMPLE_ROWS,
                    sampled_at=utcnow(),
                )
            )
    except SQLAlchemyError as exc:  # a cache: a suggestion request may have stored it first
        log.info("Value sample of column %s not cached: %s", column_id, exc)


def _code_columns(session: Session, connection_id: int) -> list[_CodeColumn]:
    with_mappings = select(ValueMapping.column_id).distinct().scalar_subquery()
    rows = session.execute(
        select(CatalogColumn.id, CatalogTable.id, CatalogSchema.name, CatalogTable.name)
        .add_columns(CatalogColumn.name)
        .join(CatalogTable, CatalogTable.id == CatalogColumn.table_id)
        .join(CatalogSchema, CatalogSchema.id == CatalogTable.schema_id)
        .where(
            CatalogTable.connection_id == connection_id,
            CatalogColumn.id.in_(with_mappings),
            CatalogColumn.removed_at.is_(None),
            CatalogTable.removed_at.is_(None),
            CatalogColumn.logical_type.not_in([str(t) for t in _NOT_CODES]),
        )
        .outerjoin(ColumnSample, ColumnSample.column_id == CatalogColumn.id)
        .order_by(ColumnSample.sampled_at.asc().nulls_first(), CatalogColumn.id)
        .limit(MAX_COLUMNS)
    )
    return [_CodeColumn(*row) for row in rows]


def _failed(code_column: _CodeColumn, error: str) -> Finding:
    return Finding(
        INFO,
        VALUE_SAMPLE_FAILED,
        code_column.table_id,
        code_column.column_id,
        code_column.name,
        f"The values of code column {code_column.name} could not be sampled: {error}",
        {"error": error},
    )


def _record_sample(
    session: Session,
    connection_id: int,
    code_column: _CodeColumn,
    values: list[str],
    truncated: bool,
    job_id: str | None,
    summary: ValueDriftSummary,
) -> None:
    _resolve_failed_sample(session, code_column.column_id)
    mapped = set(
        session.scalars(
            select(ValueMapping.source_value).where(ValueMapping.column_id == code_column.column_id)
        )
    )
    unmapped = [v for v in values if v not in mapped]
    if not unmapped:
        reevaluate(session, column_ids=[code_column.column_id])
        return
    summary.unmapped_codes += len(unmapped)
    shown = unmapped[:MAX_CODES_SHOWN]
    finding = Finding(
        DEGRADING,
        UNMAPPED_CODES,
        code_column.table_id,
        code_column.column_id,
        code_column.name,
        # No codes in the message: it reaches viewers (lists, dataset plans, alerts), and
        # source values are for editors (``details.codes``).
        f"Code column {code_column.name} holds {len(unmapped)} value(s) without a value mapping.",
        {
            "codes": shown,
            "unmapped": len(unmapped),
            "sampled": len(values),
            "sample_truncated": truncated,
        },
    )
    reported = record_findings(session, connection_id, [finding], job_id)
    if reported:
        record_event(
            session,
            "drift.detected",
            {
                "connection_id": connection_id,
                "connection_name": session.scalar(
                    select(Connection.name).where(Connection.id == connection_id)
                ),
                "source_column": code_column.name,
                "message": finding.message,
                "drift": [item_summary(item) for item in reported],
                **({"job_id": job_id, "kind": "sync"} if job_id else {}),
            },
        )


def _resolve_failed_sample(session: Session, column_id: int) -> None:
    now = utcnow()
    for item in session.scalars(
        select(DriftItem).where(
            DriftItem.column_id == column_id,
            DriftItem.kind == VALUE_SAMPLE_FAILED,
            DriftItem.resolved_at.is_(None),
        )
    ):
        item.resolved_at = now
        item.updated_at = now
