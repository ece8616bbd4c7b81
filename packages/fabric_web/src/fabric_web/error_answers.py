"""Error answers that never echo much of the request and never show internals.

A 422 lists at most ``MAX_ERRORS`` errors, each with at most ``MAX_INPUT_CHARS`` characters of
the input that failed (a 20 MB field comes back as its first 100 characters); values JSON
cannot hold (``inf``, lone surrogates) are shown as text. An unexpected exception answers 500
with a request id that is also in the log, and nothing of the exception.
"""

from __future__ import annotations

import logging
import math
import uuid
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

log = logging.getLogger(__name__)

MAX_ERRORS = 20
MAX_INPUT_CHARS = 100
MAX_TEXT_CHARS = 300


def _text(value: str, limit: int) -> str:
    # Lone surrogates cannot be encoded as UTF-8: replaced rather than failing the answer.
    safe = value.encode("utf-8", "replace").decode("utf-8")
    return safe if len(safe) <= limit else safe[:limit] + "…"


def short_input(value: Any) -> Any:
    """What a 422 may show of an input: short scalars as they are, the rest as a short text."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value if abs(value) < 10**18 else _text(str(value), 40)
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, str):
        return _text(value, MAX_INPUT_CHARS)
    # A dict or list may be huge or deep: repr of a bounded slice, never the whole.
    return _text(_bounded_repr(value), MAX_INPUT_CHARS)


def _bounded_repr(value: Any) -> str:
    if isinstance(value, dict):
        items = list(value.items())[:5]
        inner = ", ".join(f"{_text(repr(k), 30)}: {_shallow(v)}" for k, v in items)
        return "{" + inner + (", …" if len(value) > 5 else "") + "}"
    if isinstance(value, list | tuple):
        inner = ", ".join(_shallow(v) for v in value[:5])
        return "[" + inner + (", …" if len(value) > 5 else "") + "]"
    return _text(repr(value), MAX_INPUT_CHARS)


def _shallow(value: Any) -> str:
    if isinstance(value, dict):
        return "{…}"
    if isinstance(value, list | tuple):
        return "[…]"
    return _text(repr(value), 30)


def short_error(error: dict[str, Any]) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "type": error.get("type"),
        # A loc holds the client's own keys (an unknown field's name): bounded too.
        "loc": [
            item if isinstance(item, int) else _text(str(item), MAX_INPUT_CHARS)
            for item in error.get("loc", ())
        ],
        "msg": _text(str(error.get("msg", "")), MAX_TEXT_CHARS),
    }
    if "input" in error:
        answer["input"] = short_input(error["input"])
    ctx = error.get("ctx")
    if isinstance(ctx, dict):
        answer["ctx"] = {_text(str(k), 40): _ctx_value(v) for k, v in list(ctx.items())[:5]}
    return answer


def _ctx_value(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float):
        return short_input(value)
    # A limit's value, or the ValueError a validator raised: its text, bounded.
    return _text(str(value), MAX_TEXT_CHARS)


def short_errors(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    shown = [short_error(e) for e in errors[:MAX_ERRORS]]
    if len(errors) > MAX_ERRORS:
        left = len(errors) - MAX_ERRORS
        shown.append({"type": "too_many_errors", "loc": [], "msg": f"{left} more errors"})
    return shown


def request_id(request: Request) -> str:
    """The id the request carries in ``request.state`` (set by whoever assigns ids), or a
    new one."""
    return getattr(request.state, "request_id", None) or uuid.uuid4().hex


def install_error_answers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _invalid_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": short_errors(list(exc.errors()))}, status_code=422)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        rid = request_id(request)
        log.error(
            "request %s %s failed: %s",
            rid,
            request.url.path[:200],
            type(exc).__name__,
            exc_info=exc,
        )
        return JSONResponse(
            {"detail": "Internal error", "request_id": rid},
            status_code=500,
            headers={"X-Request-ID": rid},
        )
