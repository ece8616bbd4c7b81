"""The references column suggestions and new-column drift compare candidates with."""

from __future__ import annotations

import sqlite3

import pytest
from catalog_helpers import register
from fabric_core.models import (
    CatalogColumn,
    CatalogSchema,
    CatalogTable,
    ColumnMapping,
    UnifiedColumn,
    utcnow,
)
from fabric_core.suggestions.references import all_references
from sqlalchemy import insert, literal, select

# More mapped columns than a PostgreSQL statement may carry parameters (65,535): the mapped
# columns must not be passed as an IN list.
MAPPED = 66_000


@pytest.fixture
def runtime(metadata_url, settings):
    from fabric_core.runtime import create_runtime

    runtime = create_runtime(settings.model_copy(update={"database_url": metadata_url}))
    yield runtime
    runtime.close()


def test_references_hold_every_mapped_column_of_a_large_catalog(runtime, tmp_path):
    path = tmp_path / "wide.db"
    sqlite3.connect(path).close()
    connection_id = register(runtime, name="wide", kind="sqlite", database=str(path))
    now = utcnow()
    with runtime.session_factory.begin() as session:
        schema = CatalogSchema(connection_id=connection_id, name="main")
        session.add(schema)
        session.flush()
        table = CatalogTable(
            connection_id=connection_id, schema_id=schema.id, name="t", kind="table"
        )
        unified = UnifiedColumn(name="email", logical_type="string")
        session.add_all([table, unified])
        session.flush()
        session.execute(
            insert(CatalogColumn),
            [
                {
                    "table_id": table.id,
                    "name": f"c{n}",
                    "ordinal": n,
                    "native_type": "TEXT",
                    "logical_type": "string",
                    "nullable": True,
                    "created_at": now,
                    "updated_at": now,
                }
                for n in range(MAPPED)
            ],
        )
        session.execute(
            insert(ColumnMapping).from_select(
                ["column_id", "unified_column_id", "created_at"],
                select(CatalogColumn.id, literal(unified.id), literal(now)).where(
                    CatalogColumn.table_id == table.id
                ),
            )
        )
    with runtime.session_factory() as session:
        [(found, reference)] = all_references(session)
    assert found.name == "email"
    assert len(reference.mapped) == MAPPED
    assert {c.table for c in reference.mapped} == {"t"}
