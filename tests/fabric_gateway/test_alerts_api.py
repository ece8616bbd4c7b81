"""Alert channels through the gateway, and alerts delivered to real local receivers: an HTTP
server (webhook, Slack) and an SMTP server (aiosmtpd)."""

from __future__ import annotations

import re
import time

import pytest
from alert_helpers import HttpReceiver, SmtpReceiver, wait_until
from fabric_core.events import record_event
from fabric_core.runtime import create_runtime
from fabric_web.serving import free_port
from service_helpers import running_stack, wait_for_job

SECRET_PATH = "/services/T000/B000/XyzSecretHookToken"
PASSWORD = "Very-Secret-pw"


def _fast(settings, **overrides):
    return settings.model_copy(
        update={
            "alert_dispatch_seconds": 0.1,
            "alert_retry_seconds": 0.2,
            "alert_retry_max_seconds": 0.5,
            "alert_timeout_seconds": 3,
            "public_url": "https://fabric.example.com/",
            **overrides,
        }
    )


@pytest.fixture
def api(settings):
    with running_stack(_fast(settings), with_dataset=False) as client:
        yield client


def _channel(api, name, kind, target, events=("job.failed",)) -> dict:
    answer = api.post(
        "/api/alert-channels",
        json={"name": name, "kind": kind, "target": target, "events": list(events)},
    )
    assert answer.status_code == 201, answer.text
    return answer.json()


def _as(api, role: str) -> dict[str, str]:
    token = api.post("/api/tokens", json={"name": f"{role}-t", "role": role}).json()["token"]
    return {"Authorization": f"Bearer {token}"}


def test_channels_crud_hide_the_target(api):
    url = f"https://hooks.example.com{SECRET_PATH}"
    created = _channel(api, "ops", "slack", url, ["job.failed", "job.stuck", "job.failed"])
    assert created["target_hint"] == "https://hooks.example.com"
    assert created["events"] == ["job.failed", "job.stuck"]  # duplicates dropped
    mail = _channel(api, "oncall", "email", "oncall@example.com", ["catalog.changed"])
    assert mail["target_hint"] == "oncall@example.com"

    listed = api.get("/api/alert-channels", params={"limit": 1})
    assert listed.headers["X-Total-Count"] == "2"
    assert [c["name"] for c in listed.json()] == ["ops"]
    one = api.get(f"/api/alert-channels/{created['id']}").json()
    assert one["deliveries"] == {"pending": 0, "delivered": 0, "failed": 0}
    assert one["last_delivered_at"] is None and one["last_error"] is None

    patched = api.patch(
        f"/api/alert-channels/{created['id']}",
        json={"events": ["mapping.broken"], "target": f"https://other.example.com{SECRET_PATH}"},
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["events"] == ["mapping.broken"]
    assert patched.json()["target_hint"] == "https://other.example.com"
    # The secret part of a URL never comes back, whatever the route.
    for answer in (created, one, patched.json(), api.get("/api/alert-channels").json()):
        assert "XyzSecretHookToken" not in str(answer)

    assert (
        api.post(
            "/api/alert-channels",
            json={"name": "ops", "kind": "webhook", "target": url, "events": ["job.failed"]},
        ).status_code
        == 409
    )
    audit = api.get("/api/audit-events", params={"action": "create_alert_channel"}).json()
    assert [(event["object_id"], event["status"]) for event in audit] == [
        (None, 409),
        (str(mail["id"]), 201),
        (str(created["id"]), 201),
    ]
    assert api.delete(f"/api/alert-channels/{created['id']}").status_code == 204
    assert api.get(f"/api/alert-channels/{created['id']}").status_code == 404
    assert api.delete(f"/api/alert-channels/{created['id']}").status_code == 404


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"kind": "webhook", "target": "ftp://example.com/x"}, "http:// or https:// URL"),
        ({"kind": "slack", "target": "not a url"}, "http:// or https:// URL"),
        ({"kind": "webhook", "target": "http://169.254.169.254/latest"}, "FABRIC_SOURCE_HOSTS"),
        ({"kind": "webhook", "target": "http://example.com:99999/x"}, "port"),
        ({"kind": "email", "target": "nobody"}, "not an e-mail address"),
        ({"kind": "email", "target": "a@b.com\r\nBcc: x@y.com"}, "not an e-mail address"),
        ({"kind": "pager", "target": "https://example.com"}, "kind"),
        ({"events": ["job.exploded"]}, "events"),
        ({"events": []}, "events"),
        ({"extra": 1}, "extra"),
    ],
)
def test_bad_channels_are_422_with_a_reason(api, body, message):
    full = {
        "name": "c",
        "kind": "webhook",
        "target": "https://example.com/h",
        "events": ["job.failed"],
    }
    answer = api.post("/api/alert-channels", json={**full, **body})
    assert answer.status_code == 422, answer.text
    assert message in answer.text
    assert api.get("/api/alert-channels").json() == []


def test_bad_patch_is_422(api):
    channel = _channel(api, "c", "email", "ops@example.com")
    for body in ({"target": "https://example.com/x"}, {"events": None}, {"kind": "webhook"}):
        answer = api.patch(f"/api/alert-channels/{channel['id']}", json=body)
        assert answer.status_code == 422, (body, answer.text)
    assert api.get(f"/api/alert-channels/{channel['id']}").json()["target_hint"] == (
        "ops@example.com"
    )


def test_only_admins_manage_channels(api):
    channel = _channel(api, "c", "webhook", "https://example.com/h")
    for role in ("viewer", "editor"):
        headers = _as(api, role)
        calls = [
            ("GET", "/api/alert-channels"),
            ("GET", f"/api/alert-channels/{channel['id']}"),
            ("PATCH", f"/api/alert-channels/{channel['id']}"),
            ("DELETE", f"/api/alert-channels/{channel['id']}"),
            ("POST", f"/api/alert-channels/{channel['id']}/test"),
            ("POST", "/api/alert-channels"),
        ]
        for method, path in calls:
            answer = api.request(method, path, headers=headers, json={})
            assert answer.status_code == 403, (role, method, path, answer.text)
    assert api.get(f"/api/alert-channels/{channel['id']}").status_code == 200


def test_a_failed_sync_reaches_each_subscribed_channel_once(settings):
    hooks, slack, other = HttpReceiver().start(), HttpReceiver().start(), HttpReceiver().start()
    with SmtpReceiver() as smtp:
        fast = _fast(
            settings,
            smtp_host="127.0.0.1",
            smtp_port=smtp.port,
            smtp_starttls=False,
            smtp_from="fabric@example.com",
        )
        with running_stack(fast, with_dataset=False) as api:
            _channel(api, "hooks", "webhook", hooks.url(SECRET_PATH))
            slack_channel = _channel(api, "slack", "slack", slack.url(SECRET_PATH))
            _channel(api, "mail", "email", "oncall@example.com", ["job.failed", "job.stuck"])
            _channel(api, "catalog-only", "webhook", other.url(), ["catalog.changed"])
            connection = api.post(
                "/api/data-connections",
                json={
                    "name": "crm-down",
                    "kind": "postgresql",
                    "host": "127.0.0.1",
                    "port": free_port(),
                    "database": "crm",
                    "username": "fabric",
                    "password": PASSWORD,
                },
            ).json()
            job_id = api.post(f"/api/data-connections/{connection['id']}/sync").json()["dag_run_id"]
            job = wait_for_job(api, job_id)
            assert job["status"] == "failed"

            wait_until(lambda: hooks.received and slack.received and smtp.messages, what="alerts")
            time.sleep(1.0)  # several more dispatcher rounds: nothing is sent twice
            assert len(hooks.received) == len(slack.received) == len(smtp.messages) == 1
            assert other.received == []

            hook = hooks.received[0]
            assert hook.path == SECRET_PATH
            body = hook.json
            assert hook.headers["Idempotency-Key"] == body["idempotency_key"]
            assert re.fullmatch(r"fabric-\d+-\d+", body["idempotency_key"])
            assert body["event"] == "job.failed"
            payload = body["payload"]
            assert payload["job_id"] == job_id and payload["kind"] == "sync"
            assert payload["connection_id"] == connection["id"]
            assert payload["connection_name"] == "crm-down"
            assert payload["error"] == job["error"] and "refused" in payload["error"].lower()
            assert payload["job_url"] == f"https://fabric.example.com/api/jobs/{job_id}"
            assert "dag_run_url" not in payload  # run by the local orchestrator
            assert job_id in body["text"]

            slack_body = slack.received[0].json
            assert set(slack_body) == {"text"}
            assert job_id in slack_body["text"] and "job failed" in slack_body["text"]

            recipients, mail, raw = smtp.messages[0]
            assert recipients == ["oncall@example.com"]
            assert mail["From"] == "fabric@example.com"
            assert job_id in mail["Subject"]
            assert mail["X-Fabric-Event"] == "job.failed"
            assert f"/api/jobs/{job_id}" in raw.decode()

            for raw_body in (hook.raw, slack.received[0].raw, raw):
                assert PASSWORD.encode() not in raw_body

            shown = api.get(f"/api/alert-channels/{slack_channel['id']}").json()
            assert shown["last_delivered_at"] is not None and shown["last_error"] is None
            assert shown["deliveries"] == {"pending": 0, "delivered": 1, "failed": 0}
            metrics = api.get("/metrics").text
            assert 'fabric_alert_deliveries_total{kind="webhook",outcome="delivered"} 1.0' in (
                metrics
            )
            assert 'fabric_alert_deliveries_total{kind="email",outcome="delivered"} 1.0' in metrics
    for receiver in (hooks, slack, other):
        receiver.stop()


def test_a_receiver_down_at_first_gets_the_event_once_back(api, settings):
    receiver = HttpReceiver()  # not started: connections are refused
    channel = _channel(api, "late", "webhook", receiver.url(SECRET_PATH), ["circuit.opened"])
    runtime = create_runtime(settings)
    try:
        with runtime.session_factory.begin() as session:
            record_event(session, "circuit.opened", {"connection_id": 7, "failures": 5})
    finally:
        runtime.close()

    def failing() -> dict | None:
        shown = api.get(f"/api/alert-channels/{channel['id']}").json()
        return shown if shown["last_error"] and shown["deliveries"]["pending"] == 1 else None

    shown = wait_until(failing, what="a failed attempt")
    assert "ConnectError" in shown["last_error"] and "will retry" in shown["last_error"]
    assert "XyzSecretHookToken" not in shown["last_error"]
    assert shown["last_delivered_at"] is None
    wait_until(
        lambda: (
            'fabric_alert_deliveries_total{kind="webhook",outcome="retrying"} 0.0'
            not in api.get("/metrics").text
        ),
        what="the failed attempt in the metrics",
    )

    receiver.start()
    try:
        wait_until(lambda: receiver.received, what="the delivery once the receiver is back")
        time.sleep(1.0)
        assert len(receiver.received) == 1
        assert receiver.received[0].json["event"] == "circuit.opened"
        assert receiver.received[0].json["payload"] == {"connection_id": 7, "failures": 5}
        shown = wait_until(
            lambda: (
                (s := api.get(f"/api/alert-channels/{channel['id']}").json())["last_delivered_at"]
                and s
            ),
            what="the delivery on the channel",
        )
        assert shown["deliveries"] == {"pending": 0, "delivered": 1, "failed": 0}
    finally:
        receiver.stop()


def test_the_test_route_sends_now_and_answers_the_outcome(api):
    receiver = HttpReceiver().start()
    try:
        up = _channel(api, "up", "webhook", receiver.url(SECRET_PATH))
        answer = api.post(f"/api/alert-channels/{up['id']}/test")
        assert answer.status_code == 200, answer.text
        assert answer.json()["delivered"] is True and answer.json()["error"] is None
        assert len(receiver.received) == 1
        sent = receiver.received[0]
        assert sent.json["event"] == "test"
        assert sent.json["text"].startswith("[Fabric] test alert: up\n")
        assert sent.headers["Idempotency-Key"] == answer.json()["idempotency_key"]
        assert api.get(f"/api/alert-channels/{up['id']}").json()["last_delivered_at"]

        receiver.status = 500
        failed = api.post(f"/api/alert-channels/{up['id']}/test").json()
        assert failed["delivered"] is False and "HTTP 500" in failed["error"]
    finally:
        receiver.stop()

    down = _channel(api, "down", "slack", f"http://127.0.0.1:{free_port()}{SECRET_PATH}")
    failed = api.post(f"/api/alert-channels/{down['id']}/test").json()
    assert failed["delivered"] is False and "XyzSecretHookToken" not in failed["error"]
    assert api.get(f"/api/alert-channels/{down['id']}").json()["last_error"].startswith("test:")

    mail = _channel(api, "mail", "email", "ops@example.com")
    failed = api.post(f"/api/alert-channels/{mail['id']}/test").json()
    assert failed["delivered"] is False and "FABRIC_SMTP_HOST" in failed["error"]
    assert api.post("/api/alert-channels/999999/test").status_code == 404


# aiosmtpd warns about a login over plain SMTP: allowed on purpose, on loopback, in this test.
@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")
def test_email_logs_in_when_a_username_is_set_and_never_shows_the_password(settings):
    with SmtpReceiver(login=("fabric", "smtp-Secret-pw")) as smtp:
        smtp_settings = {
            "smtp_host": "127.0.0.1",
            "smtp_port": smtp.port,
            "smtp_starttls": False,
            "smtp_username": "fabric",
        }
        wrong = _fast(settings, **smtp_settings, smtp_password="smtp-Secret-pw-typo")
        with running_stack(wrong, with_sync=False, with_dataset=False) as api:
            channel = _channel(api, "mail", "email", "ops@example.com")
            failed = api.post(f"/api/alert-channels/{channel['id']}/test").json()
            assert failed["delivered"] is False and "535" in failed["error"]
            assert "smtp-Secret-pw" not in failed["error"]
        right = _fast(settings, **smtp_settings, smtp_password="smtp-Secret-pw")
        with running_stack(right, with_sync=False, with_dataset=False) as api:
            sent = api.post(f"/api/alert-channels/{channel['id']}/test").json()
            assert sent["delivered"] is True, sent
        assert smtp.logins[-1] == ("fabric", "smtp-Secret-pw")
        [(recipients, mail, _raw)] = smtp.messages
        assert recipients == ["ops@example.com"] and mail["X-Fabric-Event"] == "test"
