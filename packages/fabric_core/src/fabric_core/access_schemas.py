"""Request and answer bodies of API tokens and the audit log."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from fabric_core.tokens import Role


class TokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=128, pattern=r"^[\w .@:-]+$")
    role: Role


class TokenPublic(BaseModel):
    """A token as listed: never its value."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    role: Role
    created_at: datetime
    created_by: str | None
    revoked_at: datetime | None


class TokenCreated(TokenPublic):
    token: str = Field(description="The bearer token; shown in this answer only.")


class AuditEventPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    at: datetime
    token_id: int | None
    token_name: str | None
    client: str | None
    method: str
    route: str
    action: str
    object_id: str | None
    status: int
    request_id: str
