"""Recording each state-changing request, and each refused one, in the audit log."""

from __future__ import annotations

import logging
from typing import Annotated

from fabric_core.models import AuditEvent
from fabric_core.runtime import Runtime
from fabric_core.tokens import Principal
from fabric_web.error_answers import request_id as request_id_of
from fastapi import Depends, FastAPI, Request
from starlette.concurrency import run_in_threadpool
from starlette.routing import BaseRoute, Match

log = logging.getLogger(__name__)

_CHANGING_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_REFUSED = frozenset({401, 403})
_UNMATCHED = "unmatched"
_CLIENT_LENGTH = 64  # audit_events.client


class AuditNote:
    """What a route adds to its request's audit event: the id of an object it created."""

    object_id: str | None = None


def audit_note(request: Request) -> AuditNote:
    note = AuditNote()
    request.state.audit_note = note
    return note


AuditNoteDep = Annotated[AuditNote, Depends(audit_note)]


def install_audit_log(app: FastAPI) -> None:
    """Record the requests the log keeps, under the id each request was given
    (fabric_web.request_ids)."""

    @app.middleware("http")
    async def _audit(request: Request, call_next):
        request_id = request_id_of(request)
        try:
            response = await call_next(request)
        except Exception:
            # A change that failed unexpectedly is still an attempt the log must show.
            await _record(request, 500, request_id)
            raise
        await _record(request, response.status_code, request_id)
        return response


async def _record(request: Request, status: int, request_id: str) -> None:
    if request.method in _CHANGING_METHODS or status in _REFUSED:
        event = _event(request, status, request_id)
        if event is not None:
            await run_in_threadpool(_store, request.app.state.runtime, event)


def _route(request: Request) -> tuple[BaseRoute | None, dict]:
    """The route that served the request, or would have (authentication refuses before
    routing)."""
    if (route := request.scope.get("route")) is not None:
        return route, request.scope.get("path_params", {})
    for candidate in request.app.router.routes:
        match, child_scope = candidate.matches(request.scope)
        if match is Match.FULL:
            return candidate, child_scope.get("path_params", {})
    return None, {}


def _event(request: Request, status: int, request_id: str) -> AuditEvent | None:
    route, path_params = _route(request)
    if route is None and status not in _REFUSED:
        return None  # no such route: nothing was acted on
    principal: Principal | None = getattr(request.state, "principal", None)
    note: AuditNote | None = getattr(request.state, "audit_note", None)
    path_ids = [str(value) for value in path_params.values()]
    object_id = (note.object_id if note else None) or "/".join(path_ids) or None
    return AuditEvent(
        token_id=principal.token_id if principal else None,
        token_name=principal.name if principal else None,
        client=(request.client.host[:_CLIENT_LENGTH] if request.client else None),
        method=request.method,
        # A refusal on a path no route serves is kept too: probing is worth seeing.
        route=route.path if route is not None else _UNMATCHED,
        action=route.name if route is not None else _UNMATCHED,
        object_id=object_id[:255] if object_id else None,
        status=status,
        request_id=request_id,
    )


def _store(runtime: Runtime, event: AuditEvent) -> None:
    try:
        with runtime.session_factory.begin() as session:
            session.add(event)
    except Exception as exc:
        # The change itself is already committed; a lost audit row is logged, never hidden.
        log.error(
            "audit event not stored (%s %s %s): %s",
            event.method,
            event.route,
            event.status,
            exc,
        )
