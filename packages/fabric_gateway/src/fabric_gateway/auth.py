"""Who is calling: bearer tokens, roles, and the rate limit that comes with them.

Every ``/api`` request is authenticated before its body is read or its route runs (a
middleware); each route then names the role it needs (``dependencies=[VIEWER]`` and so on).
"""

from __future__ import annotations

from typing import Annotated

from fabric_core import tokens
from fabric_core.bearer import presented_token
from fabric_core.runtime import Runtime
from fabric_core.tokens import Principal, Role
from fastapi import Depends, FastAPI, HTTPException, Request, Security
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from fabric_gateway.rate_limits import RateLimiter

API_PREFIX = "/api"
_MAX_TOKEN_LENGTH = 256


def _presented_token(request: Request) -> str | None:
    value = presented_token(request.headers.get("authorization"))
    return value if value is not None and len(value) <= _MAX_TOKEN_LENGTH else None


def _client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _lookup(runtime: Runtime, value: str, admin_token: str) -> Principal | None:
    with runtime.read_session_factory() as session:
        return tokens.authenticate(session, value, bootstrap_admin=admin_token)


def _too_many(retry_after: int) -> JSONResponse:
    return JSONResponse(
        {"detail": f"Too many requests; retry in {retry_after} s."},
        status_code=429,
        headers={"Retry-After": str(retry_after)},
    )


def install_authentication(app: FastAPI) -> None:
    """Refuse ``/api`` requests without a valid token (401) or over the rate limit (429)."""

    @app.middleware("http")
    async def _authenticate(request: Request, call_next):
        request.state.principal = None
        if not _is_api(request.url.path):
            return await call_next(request)
        limiter: RateLimiter = request.app.state.rate_limiter
        value = _presented_token(request)
        principal = None
        if value is not None:
            principal = await run_in_threadpool(
                _lookup, request.app.state.runtime, value, request.app.state.admin_token
            )
        if principal is None:
            # Counted per address: guessing tokens is slowed like other anonymous traffic.
            retry_after = await run_in_threadpool(
                limiter.retry_after, f"client:{_client_address(request)}"
            )
            if retry_after is not None:
                return _too_many(retry_after)
            return JSONResponse(
                {"detail": "A valid API token is required: send 'Authorization: Bearer <token>'."},
                status_code=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
        # Keyed by the token's digest: the same on every replica, whatever its id.
        # Off the event loop: a slow store must not stall every other request (even /health).
        retry_after = await run_in_threadpool(
            limiter.retry_after, f"token:{tokens.digest(value)[:32]}"
        )
        if retry_after is not None:
            return _too_many(retry_after)
        request.state.principal = principal
        return await call_next(request)


def _is_api(path: str) -> bool:
    return path == API_PREFIX or path.startswith(API_PREFIX + "/")


def current_principal(request: Request) -> Principal:
    """The caller, as the authentication middleware found it."""
    principal = request.state.principal
    if principal is None:  # a route outside /api asked for a role: a wiring error
        raise HTTPException(status_code=401, headers={"WWW-Authenticate": "Bearer"})
    return principal


PrincipalDep = Annotated[Principal, Depends(current_principal)]


# The middleware has checked the token already; this only tells the OpenAPI description (and
# the "Authorize" button of /docs) that every /api route takes a bearer token.
BearerDoc = Annotated[
    HTTPAuthorizationCredentials | None,
    Security(HTTPBearer(auto_error=False, description="An API token (fabric token create).")),
]


def require(role: Role):
    """A dependency that lets through callers whose role includes ``role`` (else 403)."""

    def check(principal: PrincipalDep, _documented: BearerDoc) -> Principal:
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
