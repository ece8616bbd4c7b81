"""Every list of the gateway pages (``?limit=&offset=``, the total in ``X-Total-Count``) and
costs the same number of SQL statements whatever the number of items listed."""

from __future__ import annotations

import threading
import uuid
from contextlib import contextmanager

import pytest
from conftest import TEST_ADMIN_TOKEN
from fabric_core.models import (
    CatalogColumn,
    CatalogSchema,
    CatalogTable,
    ColumnMapping,
    Connection,
    Dataset,
    DatasetVersion,
    DriftItem,
    Job,
    UnifiedColumn,
    ValueMapping,
)
from fabric_gateway.app import create_app as create_gateway
from fastapi.testclient import TestClient
from sqlalchemy import event

AUTH = {"Authorization": f"Bearer {TEST_ADMIN_TOKEN}"}
LISTS = [
    "/api/data-connections",
    "/api/data-connections/{first}/tables",
    "/api/unified-columns",
    "/api/column-mappings",
    "/api/value-mappings",
    "/api/jobs",
    "/api/datasets",
    "/api/drift",
]
# Best-first answers bounded by their own limit (suggestions: 1..100), not pages of a list.
RANKINGS = {"/api/unified-columns/{unified_column_id}/suggestions", "/api/column-suggestions"}


@pytest.fixture
def api(settings):
    # No periodic sweep or alert dispatch while statements are counted.
    quiet = settings.model_copy(update={"sweep_seconds": 3600, "alert_dispatch_seconds": 3600})
    with TestClient(create_gateway(quiet), headers=AUTH) as client:
        yield client


def seed(api, count: int) -> int:
    """``count`` items of every listed kind, written straight to the metadata DB; returns the
    id of the connection that holds the tables."""
    runtime = api.app.state.runtime
    tag = uuid.uuid4().hex[:6]
    with runtime.session_factory() as session:
        first = None
        for i in range(count):
            connection = Connection(name=f"c{tag}{i}", kind="sqlite", database=f"/x/{i}.db")
            session.add(connection)
            session.flush()
            first = first or connection
            schema = CatalogSchema(connection_id=first.id, name=f"s{tag}{i}")
            session.add(schema)
            session.flush()
            table = CatalogTable(
                connection_id=first.id, schema_id=schema.id, name=f"t{i}", kind="table"
            )
            session.add(table)
            session.flush()
            column = CatalogColumn(
                table_id=table.id,
                name="code",
                ordinal=1,
                native_type="TEXT",
                logical_type="string",
                nullable=True,
            )
            unified = UnifiedColumn(name=f"u{tag}{i}", logical_type="string")
            session.add_all([column, unified])
            session.flush()
            session.add(ColumnMapping(column_id=column.id, unified_column_id=unified.id))
            session.add(ValueMapping(column_id=column.id, source_value=str(i), target_value="x"))
            session.add(Job(id=f"job-{tag}-{i}", kind="sync", status="success"))
            session.add(
                DriftItem(
                    connection_id=first.id,
                    table_id=table.id,
                    column_id=column.id,
                    severity="breaking",
                    kind="column_removed",
                    column_name=f"s{tag}{i}.t{i}.code",
                    message="removed",
                    details={},
                    datasets=[],
                )
            )
            dataset = Dataset(
                name=f"d{tag}{i}",
                storage_type="virtual",
                status="ready",
                definition={"selection_mode": "tables", "selected_tables": [table.id]},
            )
            session.add(dataset)
            session.flush()
            for version in (1, 2):
                session.add(
                    DatasetVersion(
                        dataset_id=dataset.id,
                        version=version,
                        status="complete",
                        storage_type="virtual",
                    )
                )
            dataset.current_version = 2
        session.commit()
        return first.id


BACKGROUND_THREADS = {"gateway-sweep", "alert-dispatcher"}  # Periodic threads, by name


@contextmanager
def counted_statements(api):
    engine = api.app.state.runtime.engine
    statements: list[str] = []

    def count(_conn, _cursor, statement, *_args):
        # The gateway's own periodic work (its first rounds run at start) is not the request's.
        if threading.current_thread().name not in BACKGROUND_THREADS:
            statements.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", count)


def test_every_list_route_of_the_openapi_pages(api):
    """A list route added without paging fails here."""
    spec = api.get("/openapi.json").json()
    list_routes = []
    for path, operations in spec["paths"].items():
        get = operations.get("get")
        if not get:
            continue
        schema = get["responses"].get("200", {}).get("content", {}).get("application/json", {})
        if schema.get("schema", {}).get("type") != "array" or path in RANKINGS:
            continue
        list_routes.append(path)
        params = {p["name"]: p for p in get.get("parameters", [])}
        assert {"limit", "offset"} <= set(params), path
        assert params["limit"]["schema"]["maximum"] == 10_000, path
        assert params["limit"]["schema"]["default"] == 1000, path
    # Tokens, the audit log and alert channels page too (their own tests read pages).
    expected = [p.replace("{first}", "{connection_id}") for p in LISTS]
    extra = [
        "/api/tokens",
        "/api/audit-events",
        "/api/alert-channels",
        "/api/unified-columns/{unified_column_id}/suggestions/dismissed",
    ]
    assert sorted(list_routes) == sorted([*expected, *extra])


@pytest.mark.parametrize("route", LISTS)
def test_pages_and_the_total(api, route):
    first = seed(api, 5)
    path = route.format(first=first)
    whole = api.get(path)
    assert whole.status_code == 200
    assert whole.headers["x-total-count"] == "5"
    assert len(whole.json()) == 5
    page = api.get(path, params={"limit": 2, "offset": 1})
    assert page.headers["x-total-count"] == "5"
    assert page.json() == whole.json()[1:3]
    assert api.get(path, params={"offset": 5}).json() == []
    for bad in ({"limit": 0}, {"limit": 10_001}, {"offset": -1}, {"limit": "x"}):
        assert api.get(path, params=bad).status_code == 422, bad


def test_filters_count_the_same_rows_as_the_page(api):
    seed(api, 4)
    runtime = api.app.state.runtime
    with runtime.session_factory() as session:
        column = session.query(CatalogColumn).order_by(CatalogColumn.id).first()
        column.removed_at = column.created_at
        session.commit()
    stale = api.get("/api/column-mappings", params={"stale": True})
    assert stale.headers["x-total-count"] == "1"
    fresh = api.get("/api/column-mappings", params={"stale": False, "limit": 2})
    assert fresh.headers["x-total-count"] == "3"
    assert len(fresh.json()) == 2


@pytest.mark.parametrize("route", LISTS)
def test_a_list_costs_the_same_statements_for_3_or_30_items(api, route):
    def statements_for(count: int) -> int:
        first = seed(api, count)
        path = route.format(first=first)
        api.get(path)  # warm: the first request of a route may load more (e.g. a dialect check)
        with counted_statements(api) as statements:
            answer = api.get(path)
        assert answer.status_code == 200
        return len(statements)

    few = statements_for(3)
    many = statements_for(27)  # 30 items in all
    assert few == many
    # Datasets also read the open breaking drift on their tables; drift items the datasets
    # they affect and their columns' mappings.
    assert many <= (5 if route in ("/api/datasets", "/api/drift") else 4)
