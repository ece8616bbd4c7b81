"""Value lookup: the distinct values of one catalog column, asked of its source."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from fabric_core.catalog.harvest import LogicalType
from fabric_core.circuits import CircuitBreaker, source_call
from fabric_core.connections import connection_spec
from fabric_core.connectors import get_connector
from fabric_core.crypto import SecretBox
from fabric_core.errors import InvalidInputError, NotFoundError
from fabric_core.models import CatalogColumn, CatalogSchema, CatalogTable, Connection
from fabric_core.schemas import ColumnValues, value_as_text
from fabric_core.source_policy import SourcePolicy

# Values that cannot be codes of a value mapping (nor compared or hashed as such).
_NOT_CODES = frozenset({LogicalType.JSON, LogicalType.ARRAY, LogicalType.BINARY, LogicalType.OTHER})


def column_values(
    session_factory: sessionmaker[Session],
    column_id: int,
    box: SecretBox,
    policy: SourcePolicy,
    *,
    limit: int,
    circuits: CircuitBreaker | None = None,
) -> ColumnValues:
    """Up to ``limit`` distinct non-null values of a column, as text (how value mappings
    compare them), read from the source with the lookup pushed down to it (after the
    metadata-DB session ended: none waits on a source)."""
    with session_factory() as session:
        spec, connection_id, schema, table, column = _column_source(session, column_id, box, policy)
    with source_call(circuits, connection_id, spec.secrets):
        values = get_connector(spec.kind).distinct_values(
            spec, schema, table, column, limit=limit + 1, timeout=policy.connect_timeout
        )
    texts = [v if isinstance(v, str | int | float | bool) else str(v) for v in values]
    return ColumnValues(
        column_id=column_id,
        values=[value_as_text(v) for v in texts[:limit]],
        truncated=len(values) > limit,
    )


def _column_source(session: Session, column_id: int, box: SecretBox, policy: SourcePolicy):
    row = session.execute(
        select(CatalogColumn, CatalogTable, CatalogSchema.name, Connection)
        .join(CatalogTable, CatalogTable.id == CatalogColumn.table_id)
        .join(CatalogSchema, CatalogSchema.id == CatalogTable.schema_id)
        .join(Connection, Connection.id == CatalogTable.connection_id)
        .where(CatalogColumn.id == column_id)
    ).first()
    if row is None:
        raise NotFoundError(f"No catalog column with id {column_id}.")
    column, table, schema, connection = row
    if column.removed_at is not None or table.removed_at is not None:
        raise InvalidInputError(f"Column {column.name} (id {column_id}) was removed by a sync.")
    if column.logical_type in _NOT_CODES:
        raise InvalidInputError(
            f"Column {column.name} (id {column_id}) holds {column.logical_type} values, not "
            "codes: value lookups are for scalar columns."
        )
    spec = connection_spec(connection, box, policy)
    return spec, connection.id, schema, table.name, column.name
