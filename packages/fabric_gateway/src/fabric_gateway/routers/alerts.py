"""Alert channels: where Fabric's events are sent (admin only)."""

from __future__ import annotations

from fabric_core.alerts import channels as alert_channels
from fabric_core.alerts.schemas import (
    AlertChannelCreate,
    AlertChannelPublic,
    AlertChannelUpdate,
    AlertTestResult,
)
from fabric_web.common import ReadSessionDep, RuntimeDep, SessionDep
from fabric_web.paging import PageDep, page_answer
from fastapi import APIRouter, Request, Response

from fabric_gateway.audit_log import AuditNoteDep
from fabric_gateway.auth import ADMIN

router = APIRouter(prefix="/api/alert-channels", dependencies=[ADMIN], tags=["alerts"])


@router.post("", status_code=201, response_model=AlertChannelPublic)
def create_alert_channel(
    body: AlertChannelCreate, session: SessionDep, runtime: RuntimeDep, note: AuditNoteDep
) -> AlertChannelPublic:
    """Create a channel; its target is stored encrypted and shown only as ``target_hint``."""
    channel = alert_channels.create_channel(session, body, runtime.box, runtime.source_policy)
    note.object_id = str(channel.id)
    return alert_channels.to_public(channel)


@router.get("", response_model=list[AlertChannelPublic])
def list_alert_channels(
    session: ReadSessionDep, page: PageDep, response: Response
) -> list[AlertChannelPublic]:
    """Every channel, oldest first."""
    paged = alert_channels.list_channels(session, page)
    return page_answer(response, paged.map(alert_channels.to_public))


@router.get("/{channel_id}", response_model=AlertChannelPublic)
def get_alert_channel(channel_id: int, session: ReadSessionDep) -> AlertChannelPublic:
    """A channel with its last delivery, last error and deliveries by state."""
    channel = alert_channels.get_channel(session, channel_id)
    return alert_channels.to_public(channel, alert_channels.delivery_counts(session, channel_id))


@router.patch("/{channel_id}", response_model=AlertChannelPublic)
def update_alert_channel(
    channel_id: int, body: AlertChannelUpdate, session: SessionDep, runtime: RuntimeDep
) -> AlertChannelPublic:
    """Change the name, target or events; the kind stays."""
    channel = alert_channels.update_channel(
        session, channel_id, body, runtime.box, runtime.source_policy
    )
    return alert_channels.to_public(channel)


@router.delete("/{channel_id}", status_code=204)
def delete_alert_channel(channel_id: int, session: SessionDep) -> Response:
    """Remove the channel and its deliveries, sent or not."""
    alert_channels.delete_channel(session, channel_id)
    return Response(status_code=204)


@router.post("/{channel_id}/test", response_model=AlertTestResult)
def test_alert_channel(channel_id: int, request: Request) -> AlertTestResult:
    """Send a test alert now and answer with the outcome (also kept as the channel's last
    delivery or last error)."""
    return request.app.state.alert_dispatcher.send_test(channel_id)
