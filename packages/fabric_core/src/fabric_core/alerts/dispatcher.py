"""Durable alert delivery from the event outbox, at least once.

Each round (a Periodic thread of the gateway):

1. fan-out: outbox events not yet fanned out are marked so with one conditional UPDATE, and
   in the same transaction get one delivery row per channel subscribed to their name; a
   replica whose UPDATE finds the events taken makes none (a unique (event, channel) pair
   backs this up);
2. delivery: due pending deliveries are claimed one by one with a conditional UPDATE that
   sets a lease, sent, and their outcome recorded only by the lease's holder. A dispatcher
   that dies mid-send leaves the lease to run out and another sends again (at least once:
   receivers dedupe on the idempotency key, the same on every attempt). A failed attempt is
   tried again after a delay that doubles up to ``alert_retry_max_seconds``; after
   ``alert_max_attempts`` the delivery is given up. The channel keeps its last delivery time
   and last error.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import delete, exists, insert, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from fabric_core.alerts.channels import get_channel
from fabric_core.alerts.messages import Alert, with_links
from fabric_core.alerts.schemas import AlertTestResult
from fabric_core.alerts.senders import DeliveryError, send_alert
from fabric_core.crypto import SecretBox
from fabric_core.errors import FabricError
from fabric_core.models import AlertChannel, AlertDelivery, OutboxEvent, utcnow
from fabric_core.settings import Settings

log = logging.getLogger(__name__)

# Called with (channel kind, outcome): delivered, retrying (an attempt failed) or failed.
OutcomeHook = Callable[[str, str], None]
BATCH = 100
PURGE_EVERY_SECONDS = 600.0


def idempotency_key(event_id: int, channel_id: int) -> str:
    return f"fabric-{event_id}-{channel_id}"


def retry_delay(settings: Settings, attempts: int) -> float:
    """Seconds before attempt ``attempts + 1``: doubling from ``alert_retry_seconds``."""
    exponent = min(attempts - 1, 30)  # 2**30 s is beyond any cap; bounds the float
    return min(settings.alert_retry_seconds * 2**exponent, settings.alert_retry_max_seconds)


class AlertDispatcher:
    def __init__(
        self,
        settings: Settings,
        session_factory: sessionmaker[Session],
        read_session_factory: sessionmaker[Session],
        box: SecretBox,
        on_outcome: OutcomeHook | None = None,
    ) -> None:
        self.settings, self.session_factory, self.box = settings, session_factory, box
        # Lookups read first, without a write transaction: on SQLite that would queue every
        # round for the write lock behind a sync storing its catalog, with nothing to write.
        self.read_session_factory = read_session_factory
        self.on_outcome = on_outcome or (lambda _kind, _outcome: None)
        self.holder = uuid.uuid4().hex
        # Longer than one send can take (an SMTP conversation is several timed-out steps).
        self.lease = timedelta(seconds=max(60.0, 6 * settings.alert_timeout_seconds))
        self._purged_at: float | None = None

    def run_once(self) -> int:
        """Fan out new events, then send what is due; returns how many sends were tried."""
        while self.fan_out() == BATCH:
            pass
        tried = self.deliver_due()
        if self._purged_at is None or time.monotonic() - self._purged_at > PURGE_EVERY_SECONDS:
            self.purge()
            self._purged_at = time.monotonic()
        return tried

    def purge(self) -> int:
        """Remove events older than ``alert_retention_days`` whose deliveries all ended, with
        those deliveries; returns how many events."""
        cutoff = utcnow() - timedelta(days=self.settings.alert_retention_days)
        pending = exists().where(
            AlertDelivery.event_id == OutboxEvent.id, AlertDelivery.status == "pending"
        )
        old = select(OutboxEvent.id).where(OutboxEvent.fanned_out_at < cutoff, ~pending)
        removed = 0
        while True:
            with self.read_session_factory() as session:
                if session.scalar(old.limit(1)) is None:
                    return removed
            with self.session_factory.begin() as session:
                ids = session.scalars(old.limit(500)).all()
                session.execute(delete(AlertDelivery).where(AlertDelivery.event_id.in_(ids)))
                session.execute(delete(OutboxEvent).where(OutboxEvent.id.in_(ids)))
            removed += len(ids)

    # --- fan-out ------------------------------------------------------------------------

    def fan_out(self) -> int:
        """Make the deliveries of up to BATCH new events; returns how many events it took."""
        new = (
            select(OutboxEvent.id)
            .where(OutboxEvent.fanned_out_at.is_(None))
            .order_by(OutboxEvent.id)
            .limit(BATCH)
        )
        with self.read_session_factory() as session:
            if not session.scalars(new).first():
                return 0
        now = utcnow()
        with self.session_factory.begin() as session:
            ids = session.scalars(new).all()
            if not ids:
                return 0
            taken = session.execute(
                update(OutboxEvent)
                .where(OutboxEvent.id.in_(ids), OutboxEvent.fanned_out_at.is_(None))
                .values(fanned_out_at=now)
                .returning(OutboxEvent.id, OutboxEvent.name)
                .execution_options(synchronize_session=False)
            ).all()
            channels = session.execute(select(AlertChannel.id, AlertChannel.events)).all()
            rows = [
                {
                    "event_id": event.id,
                    "channel_id": channel.id,
                    "status": "pending",
                    "attempts": 0,
                    "next_attempt_at": now,
                    "created_at": now,
                }
                for event in taken
                for channel in channels
                if event.name in (channel.events or [])
            ]
            if rows:
                session.execute(insert(AlertDelivery), rows)
        return len(ids)

    # --- delivery -----------------------------------------------------------------------

    def deliver_due(self) -> int:
        now = utcnow()
        with self.read_session_factory() as session:
            due = session.execute(
                select(AlertDelivery.id, AlertDelivery.channel_id)
                .where(*self._claimable(now))
                .order_by(AlertDelivery.next_attempt_at, AlertDelivery.id)
                .limit(BATCH)
            ).all()
        tried, failing = 0, set()
        for delivery_id, channel_id in due:
            # A channel that just failed is likely down: its other deliveries wait for their
            # next round rather than each spend a timeout holding up the other channels.
            if channel_id in failing or not self._claim(delivery_id):
                continue
            if not self._deliver(delivery_id):
                failing.add(channel_id)
            tried += 1
        return tried

    @staticmethod
    def _claimable(now: datetime) -> tuple:
        return (
            AlertDelivery.status == "pending",
            AlertDelivery.next_attempt_at <= now,
            or_(AlertDelivery.lease_until.is_(None), AlertDelivery.lease_until < now),
        )

    def _claim(self, delivery_id: int) -> bool:
        now = utcnow()
        with self.session_factory.begin() as session:
            return (
                session.execute(
                    update(AlertDelivery)
                    .where(AlertDelivery.id == delivery_id, *self._claimable(now))
                    .values(lease_until=now + self.lease, lease_holder=self.holder)
                    .execution_options(synchronize_session=False)
                ).rowcount
                == 1
            )

    def _deliver(self, delivery_id: int) -> bool:
        """Send a claimed delivery and record the outcome; True when the channel took it."""
        with self.read_session_factory() as session:
            delivery = session.get_one(AlertDelivery, delivery_id)
            event = session.get_one(OutboxEvent, delivery.event_id)
            channel = session.get_one(AlertChannel, delivery.channel_id)
            kind, attempts = channel.kind, delivery.attempts + 1
            alert = Alert(
                event=event.name,
                event_id=event.id,
                created_at=event.created_at,
                payload=with_links(dict(event.payload or {}), self.settings),
                idempotency_key=idempotency_key(event.id, channel.id),
            )
            channel_id, encrypted_target = channel.id, channel.target_encrypted
        error = self._send(kind, encrypted_target, alert)
        self._record(delivery_id, channel_id, kind, attempts, error, alert.event)
        return error is None

    def _send(self, kind: str, encrypted_target: str, alert: Alert) -> str | None:
        """Send; None when the channel took it, else why not."""
        try:
            send_alert(kind, self.box.decrypt(encrypted_target), alert, self.settings)
        except DeliveryError as exc:
            return str(exc)
        except FabricError as exc:  # a secret key that does not open the target
            return exc.message
        return None

    def _record(
        self,
        delivery_id: int,
        channel_id: int,
        kind: str,
        attempts: int,
        error: str | None,
        event_name: str,
    ) -> None:
        now = utcnow()
        mine = (AlertDelivery.id == delivery_id, AlertDelivery.lease_holder == self.holder)
        values: dict = {"attempts": attempts, "lease_until": None, "lease_holder": None}
        if error is None:
            outcome = "delivered"
            values |= {"status": "delivered", "delivered_at": now, "last_error": None}
            channel_values: dict = {"last_delivered_at": now}
        else:
            given_up = attempts >= self.settings.alert_max_attempts
            outcome = "failed" if given_up else "retrying"
            values |= {
                "status": "failed" if given_up else "pending",
                "last_error": error,
                "next_attempt_at": now + timedelta(seconds=retry_delay(self.settings, attempts)),
            }
            suffix = " (given up)" if given_up else f" (attempt {attempts}, will retry)"
            channel_values = {
                "last_error": f"{event_name}: {error}{suffix}",
                "last_error_at": now,
            }
            log.warning("alert delivery %s to channel %s: %s", delivery_id, channel_id, error)
        with self.session_factory.begin() as session:
            recorded = session.execute(
                update(AlertDelivery)
                .where(*mine)
                .values(**values)
                .execution_options(synchronize_session=False)
            ).rowcount
            if recorded:
                session.execute(
                    update(AlertChannel)
                    .where(AlertChannel.id == channel_id)
                    .values(**channel_values)
                    .execution_options(synchronize_session=False)
                )
        self.on_outcome(kind, outcome)

    # --- test ---------------------------------------------------------------------------

    def send_test(self, channel_id: int) -> AlertTestResult:
        """Send a test alert to the channel now (not through the outbox) and record the
        outcome on the channel."""
        with self.read_session_factory() as session:
            channel = get_channel(session, channel_id)
            kind, name, encrypted_target = channel.kind, channel.name, channel.target_encrypted
        key = f"fabric-test-{channel_id}-{uuid.uuid4().hex[:12]}"
        alert = Alert(
            event="test",
            event_id=None,
            created_at=utcnow(),
            payload={"channel": name, "message": "A test alert from Fabric: this channel works."},
            idempotency_key=key,
        )
        error = self._send(kind, encrypted_target, alert)
        now = utcnow()
        values = (
            {"last_delivered_at": now}
            if error is None
            else {"last_error": f"test: {error}", "last_error_at": now}
        )
        with self.session_factory.begin() as session:
            session.execute(
                update(AlertChannel)
                .where(AlertChannel.id == channel_id)
                .values(**values)
                .execution_options(synchronize_session=False)
            )
        self.on_outcome(kind, "delivered" if error is None else "failed")
        return AlertTestResult(delivered=error is None, error=error, idempotency_key=key)
