"""API tokens and the audit log (admin only)."""

from __future__ import annotations

from datetime import datetime

from fabric_core import tokens
from fabric_core.access_schemas import AuditEventPublic, TokenCreate, TokenCreated, TokenPublic
from fabric_core.audit import AuditFilter, list_events
from fabric_web.common import ReadSessionDep, SessionDep
from fabric_web.paging import PageDep, page_answer
from fastapi import APIRouter, Query, Response

from fabric_gateway.audit_log import AuditNoteDep
from fabric_gateway.auth import ADMIN, PrincipalDep

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
    paged = tokens.list_tokens(session, page)
    return page_answer(response, paged.map(TokenPublic.model_validate))


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
    paged = list_events(session, where, page)
    return page_answer(response, paged.map(AuditEventPublic.model_validate))
