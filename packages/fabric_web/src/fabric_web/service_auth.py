"""The service token: the sync and dataset services answer only callers that present it.

Every request but ``GET /health`` and ``GET /metrics`` (probes and scrapers of the
deployment) needs ``Authorization: Bearer <FABRIC_SERVICE_TOKEN>``. The check is an ASGI
middleware, not a route dependency, so it also covers what no route declares: ``/docs``,
``/openapi.json``, unknown paths (a caller without the token cannot even learn which routes
exist) and any route added later.
"""

from __future__ import annotations

from fabric_core.bearer import presented_token, token_matches
from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

OPEN_PATHS = frozenset({"/health", "/metrics"})
SERVICE_TOKEN_STATE = "service_token"


class ServiceTokenMiddleware:
    """Refuses (401, ``WWW-Authenticate: Bearer``) requests without the service token.

    The token is read from ``app.state.service_token``, set by the app's lifespan once the
    settings are resolved; until then every protected request is refused.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        expected = getattr(scope["app"].state, SERVICE_TOKEN_STATE, None)
        presented = presented_token(Headers(scope=scope).get("authorization"))
        if token_matches(presented, expected):
            await self.app(scope, receive, send)
            return
        detail = (
            "This service needs Authorization: Bearer <service token> (FABRIC_SERVICE_TOKEN)."
            if presented is None
            else "The service token is not valid."
        )
        refusal = JSONResponse(
            {"detail": detail}, status_code=401, headers={"WWW-Authenticate": "Bearer"}
        )
        await refusal(scope, receive, send)
