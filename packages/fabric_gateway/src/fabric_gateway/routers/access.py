"""API tokens and the audit log (admin only)."""

from __future__ import annotations

from datetime import datetime

from fabric_core import tokens
from fabric_core.access_schemas import AuditEventPublic, TokenCreate, TokenCreated, TokenPublic
from fabric_core.audit import AuditFilter, list_events
from fabric_web.common import ReadSessionDep, SessionDep
from fastapi import APIRouter, Query, Response

from fabric_gateway.audit_log import AuditNoteDep
from fabric_gateway.auth import ADMIN, PrincipalDep
from fabric_gateway.paging import PageDep

router = APIRouter(prefix="/api", dependencies=[ADMIN])


@router.post("/tokens", status_code=201, response_model=TokenCreated, tags=["tokens"])
def create_token(
    body: TokenCreate, session: SessionDep, principal: PrincipalDep, note: AuditNoteDep
) -> TokenCreated:
    """Create an API token; its value is in this answer only (store it now)."""
    token, value = tokens.create_token(
        session, name=body.name, role=body.role, created_by=principal.name
    )
    note.object_id = str(token.id)
    return TokenCreated(**TokenPublic.model_validate(token).model_dump(), token=value)


@router.get("/tokens", response_model=list[TokenPublic], tags=["tokens"])
def list_tokens(session: ReadSessionDep, page: PageDep, response: Response) -> list[TokenPublic]:
    """Every token, revoked ones included (never their values)."""
    rows, total = tokens.list_tokens(session, limit=page.limit, offset=page.offset)
    page.announce(response, total)
    return [TokenPublic.model_validate(row) for row in rows]


@router.delete("/tokens/{token_id}", status_code=204, tags=["tokens"])
def revoke_token(token_id: int, session: SessionDep) -> Response:
    """Revoke a token: the next request that presents it gets 401."""
    tokens.revoke_token(session, token_id)
    return Response(status_code=204)


@router.get("/audit-events", response_model=list[AuditEventPublic], tags=["audit"])
def list_audit_events(
    session: ReadSessionDep,
    page: PageDep,
    response: Response,
    token_id: int | None = Query(default=None, description="Only this token's events."),
    action: str | None = Query(default=None, max_length=64, description="e.g. create_connection"),
    since: datetime | None = Query(default=None, description="Only events at or after this."),
) -> list[AuditEventPublic]:
    """Audit events, newest first."""
    where = AuditFilter(token_id=token_id, action=action, since=since)
    rows, total = list_events(session, where, limit=page.limit, offset=page.offset)
    page.announce(response, total)
    return [AuditEventPublic.model_validate(row) for row in rows]
