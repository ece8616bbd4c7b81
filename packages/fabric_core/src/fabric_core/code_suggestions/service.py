"""Value suggestions of a unified column: its source columns' codes mapped onto one canonical
set (the targets of its value mappings, its declared codes, or a built-in vocabulary)."""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from fabric_core.catalog.values import column_values
from fabric_core.circuits import CircuitBreaker
from fabric_core.code_suggestions.matching import TargetSet, detect_vocabulary
from fabric_core.code_suggestions.schemas import (
    SkippedColumn,
    SourceValueRef,
    TargetSetPublic,
    ValueMappingRequest,
    ValueSuggestion,
    ValueSuggestions,
)
from fabric_core.crypto import SecretBox
from fabric_core.errors import (
    InvalidInputError,
    NotFoundError,
    ServiceUnavailableError,
    SourceError,
)
from fabric_core.mapping import get_unified_column
from fabric_core.models import ColumnMapping, ValueMapping
from fabric_core.schemas import MAX_CODES, MAX_VALUE_CHARS, ColumnValues, ValuePair
from fabric_core.source_policy import SourcePolicy

_IN_CHUNK = 500  # bounded IN lists
# Distinct values read in all, over every mapped column: what one answer holds in memory.
MAX_VALUES_READ = 100_000
# Seconds one answer spends reading its sources: the columns after that are skipped (named),
# so a request over many slow sources answers instead of running into the client's timeout.
READ_SECONDS = 60.0


@dataclass
class _Plan:
    column_ids: list[int]
    mapped_targets: list[str]
    codes: list[str] | None


def suggest_values(
    session_factory: sessionmaker[Session],
    unified_column_id: int,
    box: SecretBox,
    policy: SourcePolicy,
    *,
    limit: int,
    circuits: CircuitBreaker | None = None,
    max_values: int = MAX_VALUES_READ,
    read_seconds: float = READ_SECONDS,
) -> ValueSuggestions:
    """Read up to ``limit`` distinct values of each mapped source column (each read pushed
    down to its source, outside any metadata-DB transaction; ``max_values`` in all, the
    first column always and the others while ``read_seconds`` last) and suggest a canonical
    value for each one not mapped yet."""
    with session_factory() as session:
        plan = _plan(session, unified_column_id)
    read: list[ColumnValues] = []
    skipped: list[SkippedColumn] = []
    budget = max_values
    left_unread = False
    deadline = time.monotonic() + read_seconds
    for index, column_id in enumerate(plan.column_ids):
        reason = None
        if budget <= 0:
            reason = f"not read: {max_values} values were read from the columns before it"
        elif index > 0 and time.monotonic() >= deadline:
            reason = f"not read: the answer's {read_seconds:g} s of source reads were spent"
        if reason is not None:
            left_unread = True
            skipped.append(SkippedColumn(column_id=column_id, reason=reason))
            continue
        try:
            values = column_values(
                session_factory, column_id, box, policy, limit=min(limit, budget), circuits=circuits
            )
        except (InvalidInputError, NotFoundError, SourceError, ServiceUnavailableError) as exc:
            # A column removed by a sync or a connection deleted meanwhile: the rest answers.
            skipped.append(SkippedColumn(column_id=column_id, reason=exc.message))
            continue
        read.append(values)
        budget -= len(values.values)
    with session_factory() as session:
        mapped = {c.column_id: _mapped_sources(session, c.column_id, c.values) for c in read}

    targets, target_public = _target_set(plan, [v for c in read for v in c.values])
    answer = ValueSuggestions(
        unified_column_id=unified_column_id,
        target_set=target_public,
        suggestions=[],
        unmatched=[],
        already_canonical=[],
        skipped_columns=skipped,
        value_mapping_requests=[],
        truncated=left_unread or any(c.truncated for c in read),
    )
    for column in read:
        _suggest_column(column, mapped[column.column_id], targets, answer)
    return answer


def _plan(session: Session, unified_column_id: int) -> _Plan:
    unified = get_unified_column(session, unified_column_id)
    column_ids = list(
        session.scalars(
            select(ColumnMapping.column_id)
            .where(ColumnMapping.unified_column_id == unified_column_id)
            .order_by(ColumnMapping.column_id)
        )
    )
    if not column_ids:
        raise InvalidInputError(
            f"Unified column {unified.name} (id {unified_column_id}) has no column mappings: "
            "map source columns to it first (POST /api/column-mappings)."
        )
    targets = session.scalars(
        select(ValueMapping.target_value)
        .where(
            ValueMapping.column_id.in_(
                select(ColumnMapping.column_id).where(
                    ColumnMapping.unified_column_id == unified_column_id
                )
            ),
            ValueMapping.target_value.is_not(None),
        )
        .distinct()
        .order_by(ValueMapping.target_value)
        .limit(MAX_CODES)
    )
    return _Plan(column_ids, list(targets), unified.codes)


def _mapped_sources(session: Session, column_id: int, values: list[str]) -> set[str]:
    """Which of ``values`` the column's value mappings already map."""
    mapped: set[str] = set()
    for start in range(0, len(values), _IN_CHUNK):
        mapped.update(
            session.scalars(
                select(ValueMapping.source_value).where(
                    ValueMapping.column_id == column_id,
                    ValueMapping.source_value.in_(values[start : start + _IN_CHUNK]),
                )
            )
        )
    return mapped


def _target_set(plan: _Plan, source_values: list[str]) -> tuple[TargetSet | None, TargetSetPublic]:
    """The first canonical set there is: value mappings' targets, codes, a vocabulary that
    the source values clearly are."""
    for source, values in (("value_mappings", plan.mapped_targets), ("codes", plan.codes)):
        if values:
            vocabulary = detect_vocabulary(values)
            public = TargetSetPublic(
                source=source,
                vocabulary=vocabulary.name if vocabulary else None,
                values_count=len(values),
            )
            return TargetSet(values, vocabulary), public
    vocabulary = detect_vocabulary(source_values)
    if vocabulary is None:
        return None, TargetSetPublic(source=None, vocabulary=None, values_count=0)
    public = TargetSetPublic(
        source="vocabulary",
        vocabulary=vocabulary.name,
        values_count=len(vocabulary.canonical_values),
    )
    return TargetSet.of_vocabulary(vocabulary), public


def _suggest_column(
    column: ColumnValues, mapped: set[str], targets: TargetSet | None, answer: ValueSuggestions
) -> None:
    suggestions: list[ValueSuggestion] = []
    reading = targets.reading(column.values) if targets else {}
    for value in column.values:
        if value in mapped:
            continue
        ref = SourceValueRef(column_id=column.column_id, source_value=value)
        if targets is not None and targets.is_canonical(value, reading):
            answer.already_canonical.append(ref)
            continue
        # A value longer than a value mapping's source_value can hold cannot be mapped.
        mappable = targets is not None and len(value) <= MAX_VALUE_CHARS
        match = targets.match(value, reading) if mappable else None
        if match is None:
            answer.unmatched.append(ref)
            continue
        suggestions.append(
            ValueSuggestion(
                column_id=column.column_id,
                source_value=value,
                target_value=match.target_value,
                score=match.score,
                reason=match.reason,
            )
        )
    suggestions.sort(key=lambda s: (-s.score, s.source_value))
    answer.suggestions.extend(suggestions)
    if suggestions:
        answer.value_mapping_requests.append(
            ValueMappingRequest(
                column_id=column.column_id,
                mappings=[
                    ValuePair(source_value=s.source_value, target_value=s.target_value)
                    for s in suggestions
                ],
            )
        )
