"""Files on a real S3 server (SeaweedFS) as a source: harvest, incremental re-sync, reads."""

from __future__ import annotations

import json
import time
from decimal import Decimal

import pyarrow as pa
import pytest
from catalog_helpers import columns_of, counters, register, sync, tables_by_name
from fabric_core.connections import connection_spec, get_connection
from fabric_core.connectors import get_connector, s3_formats
from fabric_core.errors import InvalidInputError, SourceError
from fabric_web.serving import free_port
from s3_helpers import parquet_bytes, put, s3_body, unique_prefix

CSV = (
    b"id;name;note;joined\n"
    b'1;Ada;"first line\nsecond; line";2024-01-02\n'
    b'2;"Grace ""Amazing"" Hopper";plain;2024-02-03\n'
    b"3;Alan;;2024-03-04\n"
)
NDJSON = b'{"event": "login", "user": 1, "ok": true}\n{"event": "logout", "user": 2, "ok": false}\n'


def _sales(year: int, ids: list[int]) -> bytes:
    return parquet_bytes(
        pa.table(
            {
                "id": pa.array(ids, pa.int64()),
                "amount": pa.array([Decimal("1.50")] * len(ids), pa.decimal128(10, 2)),
                "region": pa.array(["north" if i % 2 else "south" for i in ids]),
            }
        )
    )


@pytest.fixture
def lake(s3_server, request):
    prefix = unique_prefix(request.node.name)
    put(s3_server, f"{prefix}/sales/year=2023/part-0.parquet", _sales(2023, [1, 2]))
    put(s3_server, f"{prefix}/sales/year=2024/part-0.parquet", _sales(2024, [3, 4, 5]))
    put(s3_server, f"{prefix}/sales/_SUCCESS", b"")
    put(s3_server, f"{prefix}/people.csv", CSV)
    put(s3_server, f"{prefix}/events.ndjson", NDJSON)
    put(s3_server, f"{prefix}/broken.parquet", b"id,name\n1,not parquet at all\n")
    put(s3_server, f"{prefix}/readme.txt", b"not data")
    return prefix


def _register(runtime, s3_server, prefix, **overrides):
    return register(runtime, **s3_body(s3_server, prefix, **overrides))


def _spec(runtime, connection_id):
    with runtime.session_factory() as session:
        return connection_spec(
            get_connection(session, connection_id), runtime.box, runtime.source_policy
        )


def test_harvest_parquet_folder_csv_ndjson_and_a_broken_file(runtime, s3_server, lake):
    connection_id = _register(
        runtime, s3_server, lake, options={"csv_delimiter": ";", "exclude": ["*.tmp"]}
    )
    stats = sync(runtime, connection_id)
    schema = f"{s3_server.bucket}/{lake}"
    assert (stats.schemas, stats.tables) == (1, 3)
    assert [e["object"] for e in stats.errors] == ["broken.parquet"]
    assert "magic" in stats.errors[0]["error"].lower()

    tables = tables_by_name(runtime, connection_id)
    assert set(tables) == {(schema, "sales"), (schema, "people.csv"), (schema, "events.ndjson")}
    sales = tables[(schema, "sales")]
    assert sales.row_estimate == 5 and sales.comment is None
    columns = columns_of(sales)
    assert list(columns) == ["id", "amount", "region", "year"]
    assert (columns["amount"].native_type, columns["amount"].logical_type) == (
        "decimal128(10, 2)",
        "decimal",
    )
    assert columns["year"].logical_type == "integer"  # a Hive partition, typed from its values
    people = columns_of(tables[(schema, "people.csv")])
    assert {n: c.logical_type for n, c in people.items()} == {
        "id": "integer",
        "name": "string",
        "note": "string",
        "joined": "date",
    }
    assert tables[(schema, "people.csv")].row_estimate is None
    events = columns_of(tables[(schema, "events.ndjson")])
    assert {n: c.logical_type for n, c in events.items()} == {
        "event": "string",
        "user": "integer",
        "ok": "boolean",
    }


def test_reads_stream_with_projection_limit_and_partitions(runtime, s3_server, lake):
    connection_id = _register(runtime, s3_server, lake, options={"csv_delimiter": ";"})
    sync(runtime, connection_id)
    spec = _spec(runtime, connection_id)
    connector = get_connector("s3")
    schema = f"{s3_server.bucket}/{lake}"

    def read(table, columns, **options):
        batches = connector.read_batches(
            spec,
            schema,
            table,
            columns,
            **{"limit": None, "batch_rows": 2, "timeout": 5, **options},
        )
        batches = list(batches)
        assert all(b.num_rows <= 2 for b in batches)
        return pa.Table.from_batches(batches)

    sales = read("sales", ["year", "id"])
    assert sales.column_names == ["year", "id"]
    assert sorted(zip(*sales.to_pydict().values(), strict=True)) == [
        (2023, 1),
        (2023, 2),
        (2024, 3),
        (2024, 4),
        (2024, 5),
    ]
    assert read("sales", ["id"], limit=3).num_rows == 3
    assert read("sales", ["amount"], text_columns=["amount"]).column(0).to_pylist()[0] == "1.50"

    people = read("people.csv", ["name", "note", "id"]).to_pydict()
    assert people["note"][0] == "first line\nsecond; line"  # quoted newline and delimiter
    assert people["name"][1] == 'Grace "Amazing" Hopper'
    assert people["id"] == ["1", "2", "3"]  # CSV comes as text; the build casts it

    assert connector.distinct_values(spec, schema, "sales", "region", limit=10, timeout=5) == [
        "north",
        "south",
    ]
    assert connector.distinct_values(
        spec, schema, "events.ndjson", "event", limit=1, timeout=5
    ) in (
        ["login"],
        ["logout"],
    )
    with pytest.raises(SourceError) as caught:
        read("gone.parquet", ["id"])
    assert "gone.parquet" in caught.value.message


def test_unchanged_resync_reads_no_file_and_changes_are_diffed(
    runtime, s3_server, lake, monkeypatch
):
    opened = []
    describe = s3_formats.describe

    def counting(fs, root, table, options):
        opened.append(table.name)
        return describe(fs, root, table, options)

    monkeypatch.setattr(s3_formats, "describe", counting)
    connection_id = _register(runtime, s3_server, lake, options={"csv_delimiter": ";"})
    sync(runtime, connection_id)
    assert sorted(opened) == ["broken.parquet", "events.ndjson", "people.csv", "sales"]
    ids = {key: t.id for key, t in tables_by_name(runtime, connection_id).items()}

    opened.clear()
    again = sync(runtime, connection_id)
    # Only the file that failed is read again: nothing is cached for it.
    assert opened == ["broken.parquet"]
    assert set(counters(again).values()) == {0}
    assert {key: t.id for key, t in tables_by_name(runtime, connection_id).items()} == ids

    opened.clear()
    put(s3_server, f"{lake}/people.csv", b"id;name;note;joined;score\n1;Ada;x;2024-01-02;9.5\n")
    s3_server.filesystem().rm(f"{s3_server.bucket}/{lake}/events.ndjson")
    changed = sync(runtime, connection_id)
    assert sorted(opened) == ["broken.parquet", "people.csv"]
    assert counters(changed) == {
        "tables_added": 0,
        "tables_changed": 0,
        "tables_removed": 1,
        "columns_added": 1,
        "columns_changed": 0,
        "columns_removed": 3,
    }
    tables = tables_by_name(runtime, connection_id)
    schema = f"{s3_server.bucket}/{lake}"
    assert tables[(schema, "events.ndjson")].removed
    assert columns_of(tables[(schema, "people.csv")])["score"].logical_type == "float"
    assert {key: t.id for key, t in tables.items()} == ids


def test_include_patterns_and_folder_files_with_different_schemas(runtime, s3_server, lake):
    put(
        s3_server,
        f"{lake}/mixed/a.parquet",
        parquet_bytes(pa.table({"x": pa.array([1], pa.int64())})),
    )
    put(s3_server, f"{lake}/mixed/b.parquet", parquet_bytes(pa.table({"x": ["one"]})))
    connection_id = _register(runtime, s3_server, lake, options={"include": ["mixed/*", "s*"]})
    stats = sync(runtime, connection_id)
    assert [t for _, t in tables_by_name(runtime, connection_id)] == ["sales"]
    assert [e["object"] for e in stats.errors] == ["mixed"]
    assert "share one schema" in stats.errors[0]["error"]


def test_hidden_folders_and_bad_column_names_are_not_tables(runtime, s3_server, lake):
    # Engine bookkeeping (Delta's log, Spark's temporary output) is not data.
    put(s3_server, f"{lake}/orders/_delta_log/00000.json", b'{"commitInfo": {}}\n')
    put(s3_server, f"{lake}/orders/_temporary/0/part-0.parquet", _sales(2022, [9]))
    put(s3_server, f"{lake}/.hoodie/hoodie.properties.json", b'{"a": 1}\n')
    put(s3_server, f"{lake}/twice.csv", b"id,id\n1,2\n")
    put(s3_server, f"{lake}/wide.csv", b"id," + b"x" * 300 + b"\n1,2\n")
    connection_id = _register(runtime, s3_server, lake)
    stats = sync(runtime, connection_id)
    names = {t for _, t in tables_by_name(runtime, connection_id)}
    assert names == {"sales", "people.csv", "events.ndjson"}
    problems = {e["object"]: e["error"] for e in stats.errors}
    assert set(problems) == {"broken.parquet", "twice.csv", "wide.csv"}
    assert "appear twice" in problems["twice.csv"] and "longer than 255" in problems["wide.csv"]


def test_value_lookup_of_a_partitioned_folder_and_refusal_of_nested_columns(
    runtime, s3_server, lake
):
    from fabric_core.catalog.values import column_values

    put(
        s3_server,
        f"{lake}/nested.parquet",
        parquet_bytes(pa.table({"id": [1], "tags": pa.array([["a", "b"]])})),
    )
    connection_id = _register(runtime, s3_server, lake)
    sync(runtime, connection_id)
    tables = tables_by_name(runtime, connection_id)
    schema = f"{s3_server.bucket}/{lake}"
    region = columns_of(tables[(schema, "sales")])["region"]
    tags = columns_of(tables[(schema, "nested.parquet")])["tags"]
    sessions, box, policy = runtime.session_factory, runtime.box, runtime.source_policy
    found = column_values(sessions, region.id, box, policy, limit=10)
    assert (found.values, found.truncated) == (["north", "south"], False)
    with pytest.raises(InvalidInputError, match="array values, not codes"):
        column_values(sessions, tags.id, box, policy, limit=10)


def test_check_tells_reachable_from_authenticated(runtime, s3_server, lake):
    connector = get_connector("s3")
    good = _spec(runtime, _register(runtime, s3_server, lake))
    result = connector.check(good, timeout=5)
    assert (result.ok, result.reachable, result.authenticated) == (True, True, True)

    wrong = _spec(
        runtime,
        _register(runtime, s3_server, lake, name="wrong", secret_access_key="Wrong-Secret-42"),
    )
    result = connector.check(wrong, timeout=5)
    assert (result.ok, result.reachable, result.authenticated) == (False, True, False)
    assert "Wrong-Secret-42" not in json.dumps(result.model_dump())
    assert s3_server.access_key in result.message

    missing = _spec(runtime, _register(runtime, s3_server, lake, name="m", bucket="no-such-b"))
    result = connector.check(missing, timeout=5)
    assert not result.ok and "does not exist" in result.message

    dead = _spec(
        runtime,
        _register(
            runtime, s3_server, lake, name="dead", endpoint_url=f"http://127.0.0.1:{free_port()}"
        ),
    )
    started = time.monotonic()
    result = connector.check(dead, timeout=1)
    assert (result.ok, result.reachable) == (False, False)
    assert time.monotonic() - started < 15
    with pytest.raises(SourceError) as caught:
        connector.harvest(dead, timeout=1)
    assert "unreachable" in caught.value.message


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"bucket": None}, "bucket"),
        ({"endpoint_url": "ftp://example.com"}, "endpoint_url"),
        ({"endpoint_url": "http://user:pw@example.com"}, "credentials"),
        ({"host": "db.example"}, "host"),
        ({"password": "pw"}, "password"),
        ({"options": {"include_schemas": ["x"]}}, "include_schemas"),
        ({"options": {"csv_delimiter": ";;"}}, "csv_delimiter"),
    ],
)
def test_settings_of_the_kind_are_checked(runtime, s3_server, overrides, reason):
    with pytest.raises(InvalidInputError) as caught:
        _register(runtime, s3_server, "p", **overrides)
    assert reason in caught.value.message
