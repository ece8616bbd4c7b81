"""Drift items recorded by a sync (fabric_core.drift), in the sync's transaction, and the
value sample after it, on a SQLite source."""

from __future__ import annotations

import sqlite3

import pytest
from catalog_helpers import register, sync, tables_by_name
from fabric_core.connections import connection_spec, get_connection
from fabric_core.drift.kinds import castable
from fabric_core.drift.values import sample_value_drift
from fabric_core.models import (
    ColumnMapping,
    ColumnSample,
    DriftItem,
    OutboxEvent,
    UnifiedColumn,
    ValueMapping,
)
from sqlalchemy import select


@pytest.fixture
def runtime(metadata_url, settings):
    from fabric_core.runtime import create_runtime

    runtime = create_runtime(settings.model_copy(update={"database_url": metadata_url}))
    yield runtime
    runtime.close()


def _write(path, *statements: str) -> None:
    with sqlite3.connect(path) as connection:
        for statement in statements:
            connection.execute(statement)
    connection.close()


def _items(runtime) -> list[DriftItem]:
    with runtime.session_factory() as session:
        return list(session.scalars(select(DriftItem).order_by(DriftItem.id)))


@pytest.fixture
def mapped(runtime, tmp_path):
    """A synced SQLite source whose ``mail`` and ``status`` columns are mapped and whose
    ``status`` holds codes; returns (connection id, path, {column: id})."""
    path = tmp_path / "crm.db"
    _write(
        path,
        "CREATE TABLE customers (id INTEGER PRIMARY KEY, mail TEXT, status TEXT)",
        "INSERT INTO customers VALUES (1, 'a@x', 'A'), (2, 'b@x', 'B')",
    )
    connection_id = register(runtime, name="crm", kind="sqlite", database=str(path))
    sync(runtime, connection_id)
    columns = {
        c.name: c.id for c in tables_by_name(runtime, connection_id)[("main", "customers")].columns
    }
    with runtime.session_factory.begin() as session:
        for name in ("mail", "status"):
            unified = UnifiedColumn(name=f"u_{name}", logical_type="string")
            session.add(unified)
            session.flush()
            session.add(ColumnMapping(column_id=columns[name], unified_column_id=unified.id))
        session.add(ValueMapping(column_id=columns["status"], source_value="A", target_value="a"))
        session.add(ValueMapping(column_id=columns["status"], source_value="B", target_value="b"))
    return connection_id, path, columns


def _sample(runtime, connection_id):
    with runtime.session_factory() as session:
        spec = connection_spec(
            get_connection(session, connection_id), runtime.box, runtime.source_policy
        )
    return sample_value_drift(runtime.session_factory, connection_id, spec, timeout=5)


def test_a_removed_mapped_column_opens_one_breaking_item_and_the_event_carries_it(runtime, mapped):
    connection_id, path, columns = mapped
    _write(path, "ALTER TABLE customers DROP COLUMN mail")
    sync(runtime, connection_id)
    [item] = _items(runtime)
    assert (item.severity, item.kind, item.column_id, item.column_name) == (
        "breaking",
        "column_removed",
        columns["mail"],
        "main.customers.mail",
    )
    with runtime.session_factory() as session:
        changed = session.scalar(
            select(OutboxEvent.payload)
            .where(OutboxEvent.name == "catalog.changed")
            .order_by(OutboxEvent.id.desc())
            .limit(1)
        )
    assert [(d["kind"], d["column"]) for d in changed["drift"]] == [
        ("column_removed", "main.customers.mail")
    ]
    sync(runtime, connection_id)  # still removed: the same item
    assert [i.id for i in _items(runtime)] == [item.id]


def test_new_codes_are_found_by_the_sample_and_a_failed_sample_is_info(runtime, mapped):
    connection_id, path, columns = mapped
    assert _sample(runtime, connection_id).unmapped_codes == 0
    assert _items(runtime) == []
    _write(path, "INSERT INTO customers VALUES (3, 'c@x', 'Z'), (4, 'd@x', 'Y')")
    summary = _sample(runtime, connection_id)
    assert (summary.columns_sampled, summary.unmapped_codes) == (1, 2)
    [item] = _items(runtime)
    assert (item.severity, item.kind, item.details["codes"]) == (
        "degrading",
        "unmapped_codes",
        ["Y", "Z"],
    )
    with runtime.session_factory() as session:
        [event] = session.scalars(
            select(OutboxEvent.payload).where(OutboxEvent.name == "drift.detected")
        )
    assert event["drift"][0]["kind"] == "unmapped_codes"

    # The table goes away behind the catalog's back: the sample fails, the call does not.
    _write(path, "DROP TABLE customers")
    summary = _sample(runtime, connection_id)
    assert (summary.columns_sampled, summary.columns_failed) == (0, 1)
    failed = [i for i in _items(runtime) if i.kind == "value_sample_failed"]
    assert [(i.severity, i.column_id) for i in failed] == [("info", columns["status"])]


@pytest.mark.parametrize(
    ("source", "target", "expected"),
    [
        ("integer", "integer", True),
        ("integer", "decimal", True),
        ("integer", "float", True),
        ("integer", "string", True),
        ("date", "datetime", True),
        ("datetime", "date", True),
        ("string", "integer", False),
        ("float", "integer", False),
        ("decimal", "integer", False),
        ("boolean", "date", False),
        ("json", "integer", False),
    ],
)
def test_castable_follows_the_dataset_casts(source, target, expected):
    assert castable(source, target) is expected


def test_a_removed_table_breaks_until_it_is_back(runtime, mapped):
    connection_id, path, _columns = mapped
    _write(path, "ALTER TABLE customers RENAME TO customers_old")
    sync(runtime, connection_id)
    # The renamed table is new, its columns named like mapped ones: info items for them.
    assert sorted((i.kind, i.column_name) for i in _items(runtime)) == [
        ("new_column", "main.customers_old.mail"),
        ("new_column", "main.customers_old.status"),
        ("table_removed", "main.customers.mail"),
        ("table_removed", "main.customers.status"),
    ]
    _write(path, "ALTER TABLE customers_old RENAME TO customers")
    sync(runtime, connection_id)
    assert all(i.resolved_at is not None for i in _items(runtime))


def test_a_columns_dataset_is_affected_only_by_the_columns_it_reads(runtime, mapped):
    from fabric_core.drift.datasets import attention_reasons

    connection_id, path, columns = mapped
    _write(path, "ALTER TABLE customers DROP COLUMN mail")
    sync(runtime, connection_id)
    [item] = _items(runtime)

    def definition(*names: str, auto: bool = True) -> dict:
        return {
            "selection_mode": "columns",
            "selected_columns": [columns[n] for n in names],
            "auto_include_mapped_columns": auto,
        }

    tables = tables_by_name(runtime, connection_id)[("main", "customers")]
    with runtime.session_factory() as session:
        reasons = attention_reasons(
            session, [definition("mail"), definition("status"), definition("id", "mail")]
        )
        whole_table = {"selection_mode": "tables", "selected_tables": [tables.id]}
        [table_reasons] = attention_reasons(session, [whole_table])
    assert reasons == [[item.message], [], [item.message]]
    assert table_reasons == [item.message]


def test_a_sync_scores_at_most_so_many_new_columns_and_the_next_syncs_the_rest(
    runtime, mapped, monkeypatch, caplog
):
    import fabric_core.drift.impact as impact

    connection_id, path, _columns = mapped
    monkeypatch.setattr(impact, "NEW_COLUMNS_EVALUATED", 2)
    _write(
        path,
        "CREATE TABLE a (id INTEGER PRIMARY KEY, mail TEXT)",
        "CREATE TABLE b (id INTEGER PRIMARY KEY, mail TEXT)",
        "CREATE TABLE c (id INTEGER PRIMARY KEY, mail TEXT)",
    )
    with caplog.at_level("WARNING", logger="fabric_core.drift.impact"):
        sync(runtime, connection_id)
    # Six new columns (id and mail of three tables): the two lowest ids are scored.
    assert _new_column_items(runtime) == ["main.a.mail"]
    assert "4 of 6 new columns left for the next syncs" in caplog.text
    # Syncs that find nothing new go on from there, two columns each, until all are checked.
    caplog.clear()
    with caplog.at_level("WARNING", logger="fabric_core.drift.impact"):
        sync(runtime, connection_id)
        assert "2 of 4 new columns left" in caplog.text
        assert _new_column_items(runtime) == ["main.a.mail", "main.b.mail"]
        sync(runtime, connection_id)
        assert _new_column_items(runtime) == ["main.a.mail", "main.b.mail", "main.c.mail"]
        caplog.clear()
        sync(runtime, connection_id)
    assert "left for the next syncs" not in caplog.text
    assert len(_new_column_items(runtime)) == 3


def test_columns_added_while_nothing_could_be_mapped_are_not_new_later(runtime, tmp_path):
    path = tmp_path / "crm.db"
    _write(path, "CREATE TABLE customers (id INTEGER PRIMARY KEY, mail TEXT)")
    connection_id = register(runtime, name="crm", kind="sqlite", database=str(path))
    sync(runtime, connection_id)
    _write(path, "CREATE TABLE a (id INTEGER PRIMARY KEY, mail TEXT)")
    sync(runtime, connection_id)  # no unified column yet: nothing to check
    mail = tables_by_name(runtime, connection_id)[("main", "customers")].columns
    with runtime.session_factory.begin() as session:
        unified = UnifiedColumn(name="u_mail", logical_type="string")
        session.add(unified)
        session.flush()
        [mail_id] = [c.id for c in mail if c.name == "mail"]
        session.add(ColumnMapping(column_id=mail_id, unified_column_id=unified.id))
    sync(runtime, connection_id)
    assert _new_column_items(runtime) == []
    _write(path, "CREATE TABLE b (id INTEGER PRIMARY KEY, mail TEXT)")
    sync(runtime, connection_id)
    assert _new_column_items(runtime) == ["main.b.mail"]


def _new_column_items(runtime) -> list[str]:
    return [i.column_name for i in _items(runtime) if i.kind == "new_column"]


def test_value_samples_go_round_the_code_columns_over_syncs(runtime, mapped, monkeypatch):
    import fabric_core.drift.values as values

    connection_id, path, columns = mapped
    monkeypatch.setattr(values, "MAX_COLUMNS", 1)
    with runtime.session_factory.begin() as session:
        session.add(ValueMapping(column_id=columns["mail"], source_value="a@x", target_value="a"))
    _write(path, "INSERT INTO customers VALUES (3, 'a@x', 'Z')")
    # One column per sample: mail (never sampled, lowest id), then status, then mail again.
    sampled = []
    for _ in range(3):
        assert _sample(runtime, connection_id).columns_sampled == 1
        with runtime.session_factory() as session:
            sampled.append(
                session.scalar(
                    select(ColumnSample.column_id).order_by(ColumnSample.sampled_at.desc()).limit(1)
                )
            )
    assert sampled == [columns["mail"], columns["status"], columns["mail"]]
    assert sorted(i.column_name for i in _items(runtime) if i.kind == "unmapped_codes") == [
        "main.customers.mail",
        "main.customers.status",
    ]


def test_a_cancelled_value_sample_stops_between_columns(runtime, mapped):
    connection_id, _path, columns = mapped
    with runtime.session_factory.begin() as session:
        session.add(ValueMapping(column_id=columns["mail"], source_value="a@x", target_value="a"))
    with runtime.session_factory() as session:
        spec = connection_spec(
            get_connection(session, connection_id), runtime.box, runtime.source_policy
        )
    checks = []

    def check_stop() -> None:
        checks.append(len(checks))
        if len(checks) > 1:
            raise RuntimeError("cancelled")

    with pytest.raises(RuntimeError, match="cancelled"):
        sample_value_drift(
            runtime.session_factory, connection_id, spec, timeout=5, check_stop=check_stop
        )
    # The first column's sample was recorded before the second check stopped the rest.
    with runtime.session_factory() as session:
        assert list(session.scalars(select(ColumnSample.column_id))) == [columns["mail"]]


def test_a_new_column_counts_with_its_would_be_unified_column_in_plans_and_lists(runtime, mapped):
    from fabric_core.drift.datasets import affected_datasets, request_drift
    from fabric_core.models import Dataset
    from fabric_core.schemas import DatasetRequest

    connection_id, path, columns = mapped
    # A columns-mode dataset reading mail (mapped to u_mail, auto-included).
    definition = {
        "name": "mails",
        "selection_mode": "columns",
        "selected_columns": [columns["mail"]],
        "auto_include_mapped_columns": True,
        "storage_type": "virtual",
    }
    with runtime.session_factory.begin() as session:
        session.add(Dataset(name="mails", storage_type="virtual", definition=definition))
    _write(path, "ALTER TABLE customers ADD COLUMN mail2 TEXT")
    sync(runtime, connection_id)
    [item] = [i for i in _items(runtime) if i.kind == "new_column"]
    assert item.details["unified_column"] == "u_mail"
    with runtime.session_factory() as session:
        item = session.merge(item)
        listed = affected_datasets(session, [item])
        planned = request_drift(session, DatasetRequest.model_validate(definition))
    assert listed == [["mails"]]
    assert [i.id for i in planned] == [item.id]


def test_new_column_scoring_stops_at_its_time_budget(runtime, mapped, monkeypatch, caplog):
    import fabric_core.drift.impact as impact

    connection_id, path, _columns = mapped
    monkeypatch.setattr(impact, "NEW_COLUMNS_SECONDS", 0.0)
    monkeypatch.setattr(impact, "_SCORED_AT_ONCE", 2)
    _write(
        path,
        "CREATE TABLE a (id INTEGER PRIMARY KEY, mail TEXT)",
        "CREATE TABLE b (id INTEGER PRIMARY KEY, mail TEXT)",
    )
    with caplog.at_level("WARNING", logger="fabric_core.drift.impact"):
        sync(runtime, connection_id)
    # Out of time at once: one group of two (a.id, a.mail) is still scored.
    assert _new_column_items(runtime) == ["main.a.mail"]
    assert "2 of 4 new columns left for the next syncs" in caplog.text
