"""Sending one alert to one channel: a webhook (JSON), Slack (incoming-webhook text) or
e-mail (SMTP). Every call has a deadline; a failure raises DeliveryError with a message that
never quotes the target URL (it is a secret)."""

from __future__ import annotations

import json
import smtplib
import ssl
from email.message import EmailMessage

import httpx

from fabric_core.alerts.messages import Alert
from fabric_core.crypto import redact
from fabric_core.settings import Settings

USER_AGENT = "Fabric-alerts/0.1"


class DeliveryError(Exception):
    """The channel did not take the alert; the message says why (no secrets)."""


def send_alert(kind: str, target: str, alert: Alert, settings: Settings) -> None:
    try:
        if kind == "email":
            _send_email(target, alert, settings)
        elif kind == "slack":
            _post(target, {"text": alert.text}, alert, settings)
        elif kind == "webhook":
            _post(target, alert.body(), alert, settings)
        else:
            raise DeliveryError(f"Unknown channel kind {kind!r}.")
    except DeliveryError as exc:
        raise DeliveryError(redact(str(exc), [target, settings.smtp_password])) from None
    except (httpx.HTTPError, smtplib.SMTPException, OSError) as exc:
        message = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        raise DeliveryError(redact(message, [target, settings.smtp_password])) from None


def _post(url: str, body: dict, alert: Alert, settings: Settings) -> None:
    response = httpx.post(
        url,
        json=body,
        headers={"Idempotency-Key": alert.idempotency_key, "User-Agent": USER_AGENT},
        timeout=settings.alert_timeout_seconds,
        follow_redirects=False,  # a redirect could carry the alert (and the URL) elsewhere
    )
    if not response.is_success:
        raise DeliveryError(
            f"The receiver answered HTTP {response.status_code}: {response.text[:200]!r}"
        )


def _send_email(address: str, alert: Alert, settings: Settings) -> None:
    if not settings.smtp_host:
        raise DeliveryError("E-mail channels need an SMTP server: FABRIC_SMTP_HOST is not set.")
    message = EmailMessage()
    message["Subject"] = alert.subject[:200]
    message["From"] = settings.smtp_from
    message["To"] = address
    # The same key on every attempt: a mail system that saw the message already may drop it.
    message["Message-ID"] = f"<{alert.idempotency_key}@fabric>"
    message["X-Fabric-Idempotency-Key"] = alert.idempotency_key
    message["X-Fabric-Event"] = alert.event
    message.set_content(alert.text + "\n\n" + _details(alert) + "\n")
    with smtplib.SMTP(
        settings.smtp_host, settings.smtp_port, timeout=settings.alert_timeout_seconds
    ) as smtp:
        if settings.smtp_starttls:
            smtp.starttls(context=ssl.create_default_context())
        if settings.smtp_username:
            smtp.login(settings.smtp_username, settings.smtp_password or "")
        smtp.send_message(message)


def _details(alert: Alert) -> str:
    return json.dumps(
        {"event": alert.event, "event_id": alert.event_id, "payload": alert.payload},
        indent=2,
        default=str,
    )
