"""Bounded samples of columns' distinct values, read from their sources and cached in the
metadata DB (``column_samples``) until a sync changes the column or the sample grows old.

Sources are read outside any metadata-DB transaction, through each connection's circuit,
with the lookup (DISTINCT ... LIMIT) pushed down: never a full scan. A source that fails
is not asked again within the same request; its columns simply have no sample."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from fabric_core.circuits import CircuitBreaker, source_call
from fabric_core.connections import connection_spec
from fabric_core.connectors import get_connector
from fabric_core.crypto import SecretBox
from fabric_core.errors import FabricError, ServiceUnavailableError, SourceUnreachableError
from fabric_core.models import ColumnSample, Connection
from fabric_core.source_policy import SourcePolicy
from fabric_core.suggestions.inventory import ColumnInfo

log = logging.getLogger(__name__)

SAMPLE_ROWS = 200  # distinct values per column
SAMPLE_VALUE_CHARS = 200
SAMPLE_MAX_AGE = timedelta(days=1)  # values change without the schema changing
COLUMN_TIMEOUT = 5.0  # seconds a sample's statement may run
REQUEST_BUDGET = 20.0  # seconds of source calls per request, all columns together
# Values that are not codes or words: never sampled.
_UNSAMPLED = frozenset({"json", "array", "binary", "other"})


@dataclass
class SampleSet:
    """What a request got: each column's sample, and why some columns have none."""

    values: dict[int, tuple[str, ...]] = field(default_factory=dict)
    notes: dict[int, str] = field(default_factory=dict)


def as_text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)[:SAMPLE_VALUE_CHARS]


@dataclass
class Sampler:
    session_factory: sessionmaker[Session]
    read_session_factory: sessionmaker[Session]
    box: SecretBox
    policy: SourcePolicy
    circuits: CircuitBreaker | None = None
    rows: int = SAMPLE_ROWS
    budget: float = REQUEST_BUDGET

    def samples(self, columns: list[ColumnInfo]) -> SampleSet:
        """Samples of ``columns`` (the first ones first, when the time budget runs out)."""
        result = SampleSet()
        wanted = [c for c in dict.fromkeys(columns) if c.logical_type not in _UNSAMPLED]
        if not wanted:
            return result
        fresh_after = datetime.now(UTC) - SAMPLE_MAX_AGE
        with self.read_session_factory() as session:
            stored = {
                row.column_id: row
                for row in session.scalars(
                    select(ColumnSample).where(ColumnSample.column_id.in_([c.id for c in wanted]))
                )
            }
            missing = []
            for column in wanted:
                row = stored.get(column.id)
                if (
                    row is not None
                    and row.fingerprint == column.fingerprint
                    and row.sampled_at >= fresh_after
                ):
                    result.values[column.id] = tuple(row.sample_values)
                else:
                    missing.append(column)
            specs = self._specs(session, {c.connection_id for c in missing}, result, missing)
        read = self._read(missing, specs, result)
        self._store(read)
        return result

    def _specs(self, session: Session, connection_ids, result: SampleSet, missing) -> dict:
        specs = {}
        # A sample's statement is cut off sooner than a read's (the source's statement
        # timeout and the driver's read deadline come from the policy's read_timeout).
        policy = replace(self.policy, read_timeout=min(self.policy.read_timeout, COLUMN_TIMEOUT))
        for connection in session.scalars(
            select(Connection).where(Connection.id.in_(list(connection_ids)))
        ):
            try:
                specs[connection.id] = connection_spec(connection, self.box, policy)
            except FabricError as exc:
                for column in missing:
                    if column.connection_id == connection.id:
                        result.notes[column.id] = f"source not usable: {exc.message}"
        return specs

    def _read(self, missing: list[ColumnInfo], specs: dict, result: SampleSet) -> list:
        read: list[tuple[ColumnInfo, list[str], bool]] = []
        failed: dict[int, str] = {}
        deadline = time.monotonic() + self.budget
        for column in missing:
            spec = specs.get(column.connection_id)
            if spec is None:
                result.notes.setdefault(column.id, "source not usable")
                continue
            if column.connection_id in failed:
                result.notes[column.id] = failed[column.connection_id]
                continue
            left = deadline - time.monotonic()
            if left <= 0.5:
                result.notes[column.id] = "not sampled: the request's sampling time ran out"
                continue
            try:
                with source_call(self.circuits, column.connection_id, spec.secrets):
                    values = get_connector(spec.kind).distinct_values(
                        spec,
                        column.schema,
                        column.table,
                        column.name,
                        limit=self.rows + 1,
                        timeout=min(self.policy.connect_timeout, left),
                    )
            except (SourceUnreachableError, ServiceUnavailableError) as exc:
                # Down or its circuit open: not asked again in this request.
                failed[column.connection_id] = f"source unreachable: {exc.message}"[:300]
                result.notes[column.id] = failed[column.connection_id]
                continue
            except FabricError as exc:  # this column only (e.g. dropped since the last sync)
                result.notes[column.id] = f"values not read: {exc.message}"[:300]
                continue
            texts = [as_text(v) for v in values[: self.rows]]
            result.values[column.id] = tuple(texts)
            read.append((column, texts, len(values) > self.rows))
        return read

    def _store(self, read: list[tuple[ColumnInfo, list[str], bool]]) -> None:
        if not read:
            return
        now = datetime.now(UTC)
        try:
            with self.session_factory.begin() as session:
                for column, texts, truncated in read:
                    session.merge(
                        ColumnSample(
                            column_id=column.id,
                            fingerprint=column.fingerprint,
                            sample_values=texts,
                            truncated=truncated,
                            sampled_at=now,
                        )
                    )
        except SQLAlchemyError as exc:  # a cache: another request may have stored it first
            log.info("column samples not cached: %s", exc)
