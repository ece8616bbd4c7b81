"""Every request gets an id: the caller's ``X-Request-ID`` when it is a sane one, else a new
one. The id is answered in ``X-Request-ID``, kept in ``request.state.request_id`` (the audit
log and error answers use it) and bound to the log context, so each log line of the request's
work, and of the jobs it queues, carries it. The gateway forwards it to the services."""

from __future__ import annotations

import re
import uuid

from fabric_core.log_context import bound
from fastapi import FastAPI
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUEST_ID_HEADER = "X-Request-ID"
_SANE_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def request_id_from(offered: str) -> str:
    """``offered`` if it is a sane id (it is logged and stored), else a new one."""
    return offered if _SANE_ID.match(offered) else uuid.uuid4().hex


class RequestIdMiddleware:
    """Pure ASGI, so the id is bound before any other middleware runs and reaches the threads
    that sync handlers run on (they copy the context)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        offered = ""
        for name, value in scope.get("headers", []):
            if name == b"x-request-id":
                offered = value.decode("latin-1")
                break
        request_id = request_id_from(offered)
        scope.setdefault("state", {})["request_id"] = request_id

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = request_id
            await send(message)

        with bound(request_id=request_id):
            await self.app(scope, receive, send_with_id)


def install_request_ids(app: FastAPI) -> None:
    """Call last when making an app: the middleware added last runs first, so every other
    middleware (authentication, the audit log, request metrics) sees the id."""
    app.add_middleware(RequestIdMiddleware)
