"""API tokens of the gateway: roles, creation, lookup, revocation.

A token is 256 random bits; only its SHA-256 digest is stored. A slow password hash (argon2)
protects guessable secrets; a random token of this length cannot be guessed from its digest,
and a plain digest lets every request find its token with one indexed lookup.
"""

from __future__ import annotations

import enum
import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from fabric_core.bearer import token_matches
from fabric_core.errors import InvalidInputError, NotFoundError
from fabric_core.models import ApiToken, utcnow
from fabric_core.paging import Page, Paged

TOKEN_PREFIX = "fabric_"
BOOTSTRAP_ADMIN_NAME = "bootstrap-admin"


class Role(enum.StrEnum):
    """What a token may do; each role includes the ones before it."""

    VIEWER = "viewer"
    EDITOR = "editor"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return list(Role).index(self)

    def includes(self, other: Role) -> bool:
        return self.rank >= other.rank


@dataclass(frozen=True)
class Principal:
    """Who sent a request: a stored token (``token_id``) or the bootstrap admin token (None)."""

    token_id: int | None
    name: str
    role: Role


def digest(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()


def new_token_value() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def create_token(
    session: Session, *, name: str, role: Role, created_by: str | None
) -> tuple[ApiToken, str]:
    """Store a new token; its value is returned here once and never again."""
    value = new_token_value()
    token = ApiToken(name=name, role=role.value, token_digest=digest(value), created_by=created_by)
    session.add(token)
    session.flush()
    return token, value


def list_tokens(session: Session, page: Page = Page()) -> Paged[ApiToken]:
    query = select(ApiToken).order_by(ApiToken.id)
    return Paged(page.scalars(session, query), page.total(session, query))


def revoke_token(session: Session, token_id: int) -> ApiToken:
    token = session.get(ApiToken, token_id)
    if token is None:
        raise NotFoundError(f"API token {token_id} not found.")
    if token.revoked_at is None:
        token.revoked_at = utcnow()
    return token


def authenticate(session: Session, value: str, *, bootstrap_admin: str) -> Principal | None:
    """The principal a presented token value stands for, or None (unknown or revoked)."""
    if token_matches(value, bootstrap_admin):
        return Principal(token_id=None, name=BOOTSTRAP_ADMIN_NAME, role=Role.ADMIN)
    token = session.scalar(select(ApiToken).where(ApiToken.token_digest == digest(value)))
    if token is None or token.revoked_at is not None:
        return None
    return Principal(token_id=token.id, name=token.name, role=Role(token.role))


def parse_role(value: str) -> Role:
    try:
        return Role(value)
    except ValueError:
        roles = ", ".join(role.value for role in Role)
        raise InvalidInputError(f"Unknown role {value!r}; one of: {roles}.") from None
