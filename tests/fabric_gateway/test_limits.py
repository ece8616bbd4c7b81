"""Limits at the boundary: body size, what a 422 echoes, malformed JSON, input sizes, unexpected
errors and metric labels, through the real gateway and services."""

from __future__ import annotations

import asyncio
import json
import random
import re
import string
import time

import httpx
import pytest
from conftest import TEST_ADMIN_TOKEN, TEST_SERVICE_TOKEN
from fabric_core.catalog.harvest import SchemaFilter
from fabric_core.mapping import repeated
from fabric_gateway.app import create_app as create_gateway
from fabric_web.request_body import RequestBodyGuard
from fastapi.testclient import TestClient
from service_helpers import running_stack

AUTH = {"Authorization": f"Bearer {TEST_ADMIN_TOKEN}"}
SERVICE_AUTH = {"Authorization": f"Bearer {TEST_SERVICE_TOKEN}"}
SMALL_LIMIT = 64 * 1024


@pytest.fixture
def api(settings):
    with running_stack(settings) as client:
        client.headers.update(AUTH)
        yield client


@pytest.fixture
def small_api(settings):
    """The stack with a 64 KiB body limit, and the services' base URLs."""
    with running_stack(settings.model_copy(update={"max_body_bytes": SMALL_LIMIT})) as client:
        client.headers.update(AUTH)
        yield client


def _raw(api, method: str, path: str, body: bytes, **headers):
    return api.request(
        method, path, content=body, headers={"content-type": "application/json", **headers}
    )


# --- body size ------------------------------------------------------------------------------


def test_a_body_over_the_limit_is_413_by_content_length(small_api):
    body = json.dumps({"name": "x", "logical_type": "string", "description": "d" * SMALL_LIMIT})
    answer = _raw(small_api, "POST", "/api/unified-columns", body.encode())
    assert answer.status_code == 413
    assert str(SMALL_LIMIT) in answer.json()["detail"]
    assert small_api.get("/api/unified-columns").json() == []


def test_the_default_limit_is_4_mib_and_a_20_mb_field_is_refused(api):
    assert api.app.state.runtime.settings.max_body_bytes == 4 * 1024 * 1024
    body = json.dumps({"name": "a" * 20_000_000, "logical_type": "string"}).encode()
    answer = _raw(api, "POST", "/api/unified-columns", body)
    assert answer.status_code == 413
    assert len(answer.content) < 200


def _stream(total: int, chunk: int = 8192):
    sent = 0
    while sent < total:
        yield b" " * min(chunk, total - sent)
        sent += chunk


@pytest.mark.parametrize("service", ["sync", "dataset"])
def test_the_services_refuse_large_bodies_too_chunked_or_not(small_api, service):
    settings = small_api.app.state.runtime.settings
    url = settings.service_url(service)
    path = "/process-sync" if service == "sync" else "/process-dataset-creation"
    headers = {**SERVICE_AUTH, "content-type": "application/json"}
    with httpx.Client(base_url=url, timeout=30) as client:
        declared = client.post(path, content=b" " * (SMALL_LIMIT + 1), headers=headers)
        assert declared.status_code == 413
        # A generator body goes out chunked, without Content-Length: counted as it arrives.
        chunked = client.post(path, content=_stream(SMALL_LIMIT * 4), headers=headers)
        assert chunked.status_code == 413
        assert "content-length" not in chunked.request.headers
        assert client.post(path, content=b"{}", headers=headers).status_code == 422


def test_the_gateway_refuses_a_chunked_body_over_the_limit(small_api):
    answer = small_api.post(
        "/api/unified-columns",
        content=_stream(SMALL_LIMIT * 2),
        headers={"content-type": "application/json"},
    )
    assert answer.status_code == 413


def test_a_body_is_not_read_past_the_limit():
    """The guard stops reading at the first chunk over the limit, and the app never runs."""
    received = 0
    app_called = False

    async def receive():
        nonlocal received
        received += 1
        return {"type": "http.request", "body": b"x" * 1024, "more_body": True}

    async def app(scope, receive, send):
        nonlocal app_called
        app_called = True

    sent = []

    async def send(message):
        sent.append(message)

    guard = RequestBodyGuard(app, max_bytes=lambda: 10 * 1024)
    scope = {"type": "http", "method": "POST", "path": "/", "headers": []}
    asyncio.run(guard(scope, receive, send))
    assert sent[0]["status"] == 413
    assert received == 11  # 10 KiB fit; the 11th chunk is the first byte over
    assert not app_called


def test_a_content_length_that_is_not_a_number_is_400(api):
    scope_answer = []

    async def app(scope, receive, send):  # never reached
        raise AssertionError

    async def send(message):
        scope_answer.append(message)

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    guard = RequestBodyGuard(app, max_bytes=lambda: 1024)
    scope = {"type": "http", "headers": [(b"content-length", b"12abc")]}
    asyncio.run(guard(scope, receive, send))
    assert scope_answer[0]["status"] == 400


# --- what a 422 echoes ------------------------------------------------------------------------


def test_a_422_shows_only_a_prefix_of_a_large_input(api):
    field = "a" * 3_000_000  # under the body limit: parsed, refused, not echoed
    answer = api.post("/api/unified-columns", json={"name": field, "logical_type": "string"})
    assert answer.status_code == 422
    assert len(answer.content) < 2000
    (error,) = answer.json()["detail"]
    assert error["loc"] == ["body", "name"]
    assert error["input"].startswith("a" * 100)
    assert len(error["input"]) <= 101


def test_a_422_shows_a_short_repr_of_lists_and_objects_and_at_most_20_errors(api):
    body = {
        "name": "ok",
        "logical_type": "string",
        **{f"extra_{i}": [i] * 1000 for i in range(500)},
    }
    answer = api.post("/api/unified-columns", json=body)
    assert answer.status_code == 422
    errors = answer.json()["detail"]
    assert len(errors) == 21
    assert errors[-1] == {"type": "too_many_errors", "loc": [], "msg": "480 more errors"}
    assert all(len(json.dumps(e)) < 400 for e in errors)
    assert errors[0]["input"].startswith("[0, 0, 0, 0, 0, …]")
    listed = api.post("/api/unified-columns", json=[{"deep": [[["x" * 10_000]]]}] * 100)
    assert listed.status_code == 422
    assert len(listed.content) < 1000


def test_a_long_unknown_key_is_not_echoed_whole(api):
    answer = api.post("/api/unified-columns", json={"k" * 100_000: 1, "name": "x"})
    assert answer.status_code == 422
    assert len(answer.content) < 2000


# --- malformed JSON ---------------------------------------------------------------------------

MALFORMED = {
    "lone surrogate": b'{"name": "\\ud800", "logical_type": "string"}',
    "lone low surrogate": b'{"name": "x", "logical_type": "string", "description": "\\udc00"}',
    "NaN": b'{"column_id": NaN, "unified_column_id": 1}',
    "Infinity": b'{"column_id": Infinity, "unified_column_id": 1}',
    "-Infinity": b'{"column_id": -Infinity, "unified_column_id": 1}',
    "huge integer": b'{"column_id": 1' + b"0" * 400 + b', "unified_column_id": 1}',
    "integer over 4300 digits": b'{"column_id": 1' + b"0" * 5000 + b', "unified_column_id": 1}',
    "deep nesting": b"[" * 10_000 + b"]" * 10_000,
    "deep nesting in a field": b'{"name": "x", "logical_type": '
    + b"[" * 10_000
    + b"]" * 10_000
    + b"}",
    "invalid UTF-8": b'{"name": "\xff\xfe", "logical_type": "string"}',
    "a list": b"[1, 2, 3]",
    "a string": b'"unified"',
    "a number": b"42",
    "null": b"null",
    "truncated": b'{"name": ',
}
TARGETS = {
    "lone surrogate": "/api/unified-columns",
    "lone low surrogate": "/api/unified-columns",
    "deep nesting in a field": "/api/unified-columns",
    "invalid UTF-8": "/api/unified-columns",
}


@pytest.mark.parametrize("case", MALFORMED)
def test_malformed_json_is_4xx_and_nothing_is_stored(api, case):
    path = TARGETS.get(case, "/api/column-mappings")
    answer = _raw(api, "POST", path, MALFORMED[case])
    assert 400 <= answer.status_code < 500, answer.text
    assert answer.headers["content-type"] == "application/json"
    assert len(answer.content) < 2000
    assert api.get("/api/unified-columns").json() == []
    assert api.get("/api/column-mappings").json() == []


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/data-connections", {"name": "\ud800", "kind": "sqlite", "database": "x.db"}),
        (
            "/api/data-connections",
            {"name": "pg", "kind": "postgresql", "host": "h", "port": float("nan")},
        ),
        (
            "/api/datasets/unified",
            {"name": "d", "selection_mode": "tables", "selected_tables": [float("inf")]},
        ),
        ("/api/datasets/unified/preview", {"name": "\udfff", "selection_mode": "tables"}),
    ],
)
def test_values_json_cannot_hold_are_refused_on_every_route(api, path, body):
    # Python's json writes NaN, Infinity and lone surrogates (escaped) without complaint.
    answer = _raw(api, "POST", path, json.dumps(body).encode())
    assert 400 <= answer.status_code < 500, answer.text
    assert api.get("/api/data-connections").json() == []


def test_an_infinite_float_is_refused_where_floats_are_allowed(api):
    # 1e999 is valid JSON text that parses as infinity: the models refuse non-finite floats.
    body = b'{"column_id": 1, "source_value": 1e999, "target_value": "x"}'
    answer = _raw(api, "POST", "/api/value-mappings", body)
    assert answer.status_code == 422
    assert answer.json()["detail"][0]["input"] == "inf"


@pytest.mark.parametrize(
    "path",
    [
        "/api/data-connections/1" + "0" * 400,
        "/api/tables/1" + "0" * 400,
        "/api/unified-columns/1" + "0" * 400,
        "/api/column-mappings/-1" + "0" * 400,
        "/api/jobs?limit=1" + "0" * 400,
        "/api/unified-columns?offset=1" + "0" * 400,
        "/api/datasets/x/rows?version=1" + "0" * 400,
    ],
)
def test_huge_numbers_in_paths_and_queries_are_4xx(api, path):
    answer = api.get(path)
    assert 400 <= answer.status_code < 500
    assert len(answer.content) < 1000


# --- unexpected errors ------------------------------------------------------------------------


def test_an_unexpected_error_answers_json_without_internals(settings, monkeypatch):
    from fabric_core import mapping

    def broken(*_args, **_kwargs):
        raise RuntimeError("internal detail: /secret/path password=hunter2")

    monkeypatch.setattr(mapping, "list_unified_columns", broken)
    # The TestClient re-raises server errors by default; a real client sees the answer.
    with TestClient(create_gateway(settings), raise_server_exceptions=False) as client:
        answer = client.get("/api/unified-columns", headers=AUTH)
    assert answer.status_code == 500
    body = answer.json()
    assert body["detail"] == "Internal error"
    assert re.fullmatch(r"[0-9a-f]{32}", body["request_id"])
    assert answer.headers["x-request-id"] == body["request_id"]
    assert "hunter2" not in answer.text and "secret" not in answer.text


# --- input sizes ------------------------------------------------------------------------------


def _pg(name: str, **options):
    return {"name": name, "kind": "postgresql", "host": "127.0.0.1", "database": "d", **options}


@pytest.mark.parametrize(
    "options",
    [
        {"include_schemas": ["s"] * 101},
        {"exclude_schemas": ["s" * 257]},
        {"include_schemas": [""]},
        {"sslmode": "x" * 33},
    ],
)
def test_option_patterns_and_values_are_bounded(api, options):
    answer = api.post("/api/data-connections", json=_pg("bounded", options=options))
    assert answer.status_code == 422, answer.text
    assert api.get("/api/data-connections").json() == []


def test_patterns_within_bounds_are_accepted(api):
    options = {"include_schemas": ["s" * 256] * 100, "exclude_schemas": ["tmp_*"]}
    answer = api.post("/api/data-connections", json=_pg("within", options=options))
    assert answer.status_code == 201, answer.text


def test_s3_key_patterns_are_bounded(api):
    body = {"name": "files", "kind": "s3", "bucket": "b", "options": {"include": ["*"] * 101}}
    assert api.post("/api/data-connections", json=body).status_code == 422


def test_schema_matching_is_linear_even_for_patterns_that_backtrack():
    # A regex built naively from this glob ((.*a){60}b) would backtrack for centuries on a
    # name of a's; fnmatch's atomic groups match it in a pass per star.
    pattern = "*a" * 128 + "b"
    schema_filter = SchemaFilter(include=(pattern,) * 100)
    started = time.perf_counter()
    assert not schema_filter.accepts("a" * 255)
    assert time.perf_counter() - started < 2
    assert SchemaFilter(include=("sales_*",), exclude=("*_tmp",)).accepts("sales_eu")
    assert not SchemaFilter(include=("sales_*",), exclude=("*_tmp",)).accepts("sales_tmp")


def test_duplicates_are_found_in_linear_time():
    values = [str(i) for i in range(200_000)] + ["7", "11"]
    started = time.perf_counter()
    assert repeated(values) == ["11", "7"]
    assert time.perf_counter() - started < 1


def test_a_bulk_value_mapping_request_is_bounded_and_checks_duplicates(api):
    too_many = [{"source_value": str(i), "target_value": "x"} for i in range(10_001)]
    answer = api.post("/api/value-mappings", json={"column_id": 1, "mappings": too_many})
    assert answer.status_code == 422
    assert len(answer.content) < 1000
    long_value = api.post("/api/value-mappings", json={"column_id": 1, "source_value": "v" * 1025})
    assert long_value.status_code == 422


# --- metric labels ----------------------------------------------------------------------------


def _label_sets(metrics_text: str) -> set[str]:
    return {
        line.split("}")[0]
        for line in metrics_text.splitlines()
        if line.startswith("fabric_http_requests_total{")
    }


def test_random_paths_and_methods_create_no_new_metric_labels(api):
    rng = random.Random(9)
    api.get("/health")
    before = _label_sets(api.get("/metrics").text)
    methods = ["GET", "POST", "FOO", "PROPFIND", "BREW", "X" * 30, "DELETE"]
    for _ in range(50):
        path = "/" + "".join(rng.choices(string.ascii_letters + string.digits, k=12))
        api.request(rng.choice(methods), path)
    after = _label_sets(api.get("/metrics").text)
    new = after - before
    # At most one label set per (known method or "other") x status for unmatched paths.
    routes = {re.search(r'route="([^"]*)"', labels).group(1) for labels in new}
    assert routes <= {"unmatched", "/metrics"}
    methods_seen = {re.search(r'method="([^"]*)"', labels).group(1) for labels in new}
    assert methods_seen <= {"GET", "POST", "DELETE", "other"}
    assert "other" in methods_seen
    assert len(new) <= 8
