"""Alert channels: where events are sent. Targets are validated, encrypted and shown only as a
hint (a webhook URL, a Slack one above all, carries its own credential)."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from fabric_core.alerts.schemas import (
    AlertChannelCreate,
    AlertChannelPublic,
    AlertChannelUpdate,
    DeliveryCounts,
)
from fabric_core.crypto import SecretBox
from fabric_core.errors import InvalidInputError
from fabric_core.models import AlertChannel, AlertDelivery, utcnow
from fabric_core.paging import Page, Paged
from fabric_core.records import flush_unique_name, get_by_id
from fabric_core.source_policy import SourcePolicy


def target_hint(kind: str, target: str, policy: SourcePolicy) -> str:
    """Check ``target`` for ``kind`` and return what may be shown of it."""
    if kind == "email":
        try:
            return validate_email(target, check_deliverability=False).normalized
        except EmailNotValidError as exc:
            raise InvalidInputError(f"target: not an e-mail address: {exc}") from None
    parts = urlsplit(target)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInputError(
            f"target: a {kind} channel needs an http:// or https:// URL with a host."
        )
    if any(ch.isspace() for ch in target):
        raise InvalidInputError("target: a URL has no spaces or line breaks.")
    _check_host(parts.hostname, policy)
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        raise InvalidInputError("target: the URL's port is not a number from 1 to 65535.") from None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{parts.scheme}://{host}{port}"


def _check_host(host: str, policy: SourcePolicy) -> None:
    # Only the deny rules (link-local, cloud metadata...): the allow list is for sources.
    rule = policy.hosts_deny.name_rule(host)
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None  # a name: its addresses are not looked up when the channel is saved
    if rule is None and address is not None:
        rule = policy.hosts_deny.address_rule(address)
    if rule is not None:
        raise InvalidInputError(f"target: host {host!r} is refused by FABRIC_SOURCE_HOSTS_DENY.")


def create_channel(
    session: Session, data: AlertChannelCreate, box: SecretBox, policy: SourcePolicy
) -> AlertChannel:
    hint = target_hint(data.kind, data.target, policy)
    channel = AlertChannel(
        name=data.name,
        kind=data.kind,
        target_encrypted=box.encrypt(data.target),
        target_hint=hint,
        events=list(data.events),
    )
    session.add(channel)
    flush_unique_name(session, "An alert channel", data.name)
    return channel


def update_channel(
    session: Session,
    channel_id: int,
    data: AlertChannelUpdate,
    box: SecretBox,
    policy: SourcePolicy,
) -> AlertChannel:
    channel = get_channel(session, channel_id)
    fields = data.model_dump(exclude_unset=True)
    for field, value in fields.items():
        if value is None:
            raise InvalidInputError(f"{field} cannot be null.")
    if "target" in fields:
        channel.target_hint = target_hint(channel.kind, data.target, policy)
        channel.target_encrypted = box.encrypt(data.target)
    if "events" in fields:
        channel.events = list(data.events)
    if "name" in fields:
        channel.name = data.name
    channel.updated_at = utcnow()
    flush_unique_name(session, "An alert channel", channel.name)
    return channel


def get_channel(session: Session, channel_id: int) -> AlertChannel:
    return get_by_id(session, AlertChannel, channel_id, "alert channel")


def list_channels(session: Session, page: Page = Page()) -> Paged[AlertChannel]:
    query = select(AlertChannel).order_by(AlertChannel.id)
    return Paged(page.scalars(session, query), page.total(session, query))


def delete_channel(session: Session, channel_id: int) -> None:
    """Remove the channel and its deliveries (sent or not)."""
    channel = get_channel(session, channel_id)
    session.execute(delete(AlertDelivery).where(AlertDelivery.channel_id == channel_id))
    session.delete(channel)


def delivery_counts(session: Session, channel_id: int) -> DeliveryCounts:
    counts = dict(
        session.execute(
            select(AlertDelivery.status, func.count())
            .where(AlertDelivery.channel_id == channel_id)
            .group_by(AlertDelivery.status)
        ).all()
    )
    return DeliveryCounts(
        pending=counts.get("pending", 0),
        delivered=counts.get("delivered", 0),
        failed=counts.get("failed", 0),
    )


def to_public(channel: AlertChannel, counts: DeliveryCounts | None = None) -> AlertChannelPublic:
    return AlertChannelPublic(
        id=channel.id,
        name=channel.name,
        kind=channel.kind,
        target_hint=channel.target_hint,
        events=list(channel.events or []),
        created_at=channel.created_at,
        updated_at=channel.updated_at,
        last_delivered_at=channel.last_delivered_at,
        last_error=channel.last_error,
        last_error_at=channel.last_error_at,
        deliveries=counts,
    )
