"""``Authorization: Bearer`` headers: made, read and compared the same way everywhere.

A leaf module (the standard library only): HTTP clients and DAG tasks import it cheaply.
"""

from __future__ import annotations

import hmac


def bearer_header(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def presented_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, if there is one."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    return token


def token_matches(presented: str | None, expected: str | None) -> bool:
    if not presented or not expected:
        return False
    # Constant time: the answer's timing says nothing about how much of a guess was right.
    return hmac.compare_digest(
        presented.encode("utf-8", "surrogatepass"), expected.encode("utf-8", "surrogatepass")
    )
