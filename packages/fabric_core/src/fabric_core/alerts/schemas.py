"""Request and answer bodies of alert channels."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from fabric_core.events import EventName

ChannelKind = Literal["webhook", "slack", "email"]


def _distinct(events: list[EventName]) -> list[EventName]:
    return list(dict.fromkeys(events))


class AlertChannelCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=128, pattern=r"^[\w .@:-]+$")
    kind: ChannelKind
    target: str = Field(
        min_length=1,
        max_length=2048,
        description="An http(s) URL (webhook, Slack incoming webhook) or an e-mail address. "
        "A URL is a secret: stored encrypted, never shown again.",
    )
    events: list[EventName] = Field(min_length=1, max_length=16)

    _distinct_events = field_validator("events")(_distinct)


class AlertChannelUpdate(BaseModel):
    """Fields to change; the kind stays (delete the channel and create another)."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=128, pattern=r"^[\w .@:-]+$")
    target: str | None = Field(default=None, min_length=1, max_length=2048)
    events: list[EventName] | None = Field(default=None, min_length=1, max_length=16)

    @field_validator("events")
    @classmethod
    def _distinct_events(cls, events: list[EventName] | None) -> list[EventName] | None:
        return _distinct(events) if events is not None else None


class DeliveryCounts(BaseModel):
    pending: int = Field(description="Waiting to be sent, or to be tried again.")
    delivered: int
    failed: int = Field(description="Given up after FABRIC_ALERT_MAX_ATTEMPTS attempts.")


class AlertChannelPublic(BaseModel):
    """A channel as shown: a URL target only as scheme and host."""

    id: int
    name: str
    kind: ChannelKind
    target_hint: str = Field(
        description="The e-mail address, or only the scheme and host of the URL."
    )
    has_target: bool = True
    events: list[str]
    created_at: datetime
    updated_at: datetime
    last_delivered_at: datetime | None
    last_error: str | None
    last_error_at: datetime | None
    deliveries: DeliveryCounts | None = Field(
        default=None, description="Deliveries by state (on GET of one channel)."
    )


class AlertTestResult(BaseModel):
    delivered: bool
    error: str | None = None
    idempotency_key: str
