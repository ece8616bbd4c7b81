"""Who is calling: bearer tokens, roles, and the rate limit that comes with them."""

from __future__ import annotations

from typing import Annotated

from fabric_core import tokens
from fabric_core.tokens import Principal, Role
from fabric_web.common import RuntimeDep
from fastapi import Depends, HTTPException, Request

from fabric_gateway.rate_limits import RateLimiter

_CHALLENGE = {"WWW-Authenticate": "Bearer"}
_MAX_TOKEN_LENGTH = 256


def _presented_token(request: Request) -> str | None:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    value = value.strip()
    if scheme.lower() != "bearer" or not value or len(value) > _MAX_TOKEN_LENGTH:
        return None
    return value


def _client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _limit(request: Request, key: str) -> None:
    limiter: RateLimiter = request.app.state.rate_limiter
    if (retry_after := limiter.retry_after(key)) is not None:
        raise HTTPException(
            status_code=429,
            detail=f"Too many requests; retry in {retry_after} s.",
            headers={"Retry-After": str(retry_after)},
        )


def authenticate(request: Request, runtime: RuntimeDep) -> Principal:
    """The caller's principal; 401 without a valid token, 429 over the rate limit."""
    request.state.principal = None
    value = _presented_token(request)
    principal = None
    if value is not None:
        with runtime.read_session_factory() as session:
            principal = tokens.authenticate(
                session, value, bootstrap_admin=request.app.state.admin_token
            )
    if principal is None:
        # Counted per address: guessing tokens is slowed like any other anonymous traffic.
        _limit(request, f"client:{_client_address(request)}")
        raise HTTPException(
            status_code=401,
            detail="A valid API token is required: send 'Authorization: Bearer <token>'.",
            headers=_CHALLENGE,
        )
    request.state.principal = principal
    _limit(request, f"token:{principal.token_id or principal.name}")
    return principal


def require(role: Role):
    """A dependency that lets through callers whose role includes ``role`` (else 403)."""

    def check(principal: Annotated[Principal, Depends(authenticate)]) -> Principal:
        if not principal.role.includes(role):
            raise HTTPException(
                status_code=403,
                detail=f"This needs the {role.value} role; token '{principal.name}' is "
                f"{principal.role.value}.",
            )
        return principal

    check.required_role = role  # read by the route table test and the docs
    return check


VIEWER = Depends(require(Role.VIEWER))
EDITOR = Depends(require(Role.EDITOR))
ADMIN = Depends(require(Role.ADMIN))


def current_principal(request: Request) -> Principal:
    """The principal ``authenticate`` put on the request (routes guarded by a role only)."""
    return request.state.principal


PrincipalDep = Annotated[Principal, Depends(current_principal)]
