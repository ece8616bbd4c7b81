"""The demo stops at the first answer that is not a success, with the server's message."""

from __future__ import annotations

import httpx
import pytest
from fabric_core.demo_run import _refuse_errors
from fabric_core.errors import DependencyError


def _answer(method: str, path: str, status: int, body: dict) -> httpx.Response:
    request = httpx.Request(method, f"http://gateway{path}")
    return httpx.Response(status, json=body, request=request)


def test_an_error_answer_stops_the_demo_with_the_servers_message():
    with pytest.raises(DependencyError, match=r"422 to POST /api/data-connections: bad kind"):
        _refuse_errors(_answer("POST", "/api/data-connections", 422, {"detail": "bad kind"}))


def test_successes_and_a_repeated_mapping_pass():
    _refuse_errors(_answer("POST", "/api/data-connections", 201, {}))
    _refuse_errors(_answer("POST", "/api/column-mappings", 409, {"detail": "already mapped"}))
    with pytest.raises(DependencyError, match="409"):
        _refuse_errors(_answer("POST", "/api/unified-columns", 409, {"detail": "exists"}))
