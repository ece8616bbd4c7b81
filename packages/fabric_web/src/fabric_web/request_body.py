"""The request body before any app code sees it: at most ``max_body_bytes``, and JSON that
Python's own parser would accept but nothing downstream can hold is refused.

A pure ASGI middleware (no BaseHTTPMiddleware, which would read the body into memory
unbounded first): a declared ``Content-Length`` over the limit is answered 413 without reading
a byte; otherwise the chunks are counted as they arrive and reading stops at the first byte
over the limit, chunked bodies included.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from email.message import Message as MimeMessage
from typing import Any

from pydantic_core import from_json

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class BodyTooLarge(Exception):
    pass


async def _answer(send: Send, status: int, content: dict[str, Any]) -> None:
    body = json.dumps(content).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                # The unread rest of the body makes the connection unusable for another request.
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return value.decode("latin-1")
    return None


def is_json(content_type: str | None) -> bool:
    """Whether FastAPI parses a body of this content type as JSON (it also does without one)."""
    if not content_type:
        return True
    message = MimeMessage()
    message["content-type"] = content_type
    subtype = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (
        subtype == "json" or subtype.endswith("+json")
    )


def json_problem(body: bytes) -> str | None:
    """Why ``body`` is not JSON Fabric accepts, or None. Stricter than ``json.loads``:
    ``NaN``/``Infinity``, lone UTF-16 surrogates (``"\\ud800"``), invalid UTF-8, integers of
    more than 4300 digits and nesting deeper than 200 levels are refused (pydantic-core's
    parser, iterative limits instead of a RecursionError)."""
    try:
        from_json(body, allow_inf_nan=False, cache_strings=False)
    except ValueError as exc:
        return str(exc)[:200]
    return None


class RequestBodyGuard:
    """413 for bodies over ``max_bytes()``; 422 for a JSON body that is not strict JSON."""

    def __init__(self, app: ASGIApp, max_bytes: Callable[[], int]) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_bytes()
        too_large = {"detail": f"The request body is larger than {limit} bytes."}
        declared = _header(scope, b"content-length")
        if declared is not None:
            if not declared.strip().isdigit():
                await _answer(send, 400, {"detail": "Content-Length is not a number."})
                return
            if int(declared) > limit:
                await _answer(send, 413, too_large)
                return
        try:
            body, more = await _read(receive, limit)
        except BodyTooLarge:
            await _answer(send, 413, too_large)
            return
        if body and is_json(_header(scope, b"content-type")):
            problem = json_problem(body)
            if problem is not None:
                error = {
                    "type": "json_invalid",
                    "loc": ["body"],
                    "msg": "The body is not strict JSON (NaN, Infinity, lone surrogates, "
                    "invalid UTF-8 and nesting deeper than 200 levels are refused).",
                }
                await _answer(send, 422, {"detail": [{**error, "ctx": {"error": problem}}]})
                return
        await self.app(scope, _replay(body, more, receive), send)


async def _read(receive: Receive, limit: int) -> tuple[bytes, list[Message]]:
    """The whole body (at most ``limit`` bytes) and any non-body message received with it."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks), [message]  # a disconnect: the app sees it too
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks), []


def _replay(body: bytes, pending: list[Message], receive: Receive) -> Receive:
    """A ``receive`` that hands the app the body already read, then the real one."""
    queue: list[Message] = [{"type": "http.request", "body": body, "more_body": False}]
    queue.extend(pending)

    async def replayed() -> Message:
        if queue:
            return queue.pop(0)
        return await receive()

    return replayed
