"""Retry policy under the local orchestrator: a job whose error may pass is queued again and
handed over at its next attempt's time; other errors fail at once; a request may set its own
number of attempts, within bounds."""

from __future__ import annotations

import sqlite3
import time
from datetime import timedelta

import pytest
from fabric_core.jobs import accept_hand_over, cancel_job, create_job
from fabric_core.models import Job, OutboxEvent, utcnow
from fabric_core.orchestrators import orphaned_jobs
from fabric_core.polling import needs_hand_over
from fabric_core.runtime import create_runtime
from fabric_core.schemas import RetryPolicy
from service_helpers import running_stack, wait_for_job
from sqlalchemy import select
from sqlalchemy.orm import Session


@pytest.fixture
def retry_settings(settings):
    return settings.model_copy(
        update={
            "sync_retry_attempts": 3,
            "sync_retry_backoff_seconds": 1.0,
            "sync_retry_max_delay_seconds": 2.0,
            "dataset_retry_attempts": 4,
        }
    )


@pytest.fixture
def api(retry_settings):
    with running_stack(retry_settings, with_dataset=False) as client:
        yield client


def _source(path) -> None:
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
    connection.close()


def _connection(api, path, name="late") -> int:
    created = api.post(
        "/api/data-connections", json={"name": name, "kind": "sqlite", "database": str(path)}
    )
    assert created.status_code == 201, created.text
    return created.json()["id"]


def _wait_for(api, job_id: str, condition, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        job = api.get(f"/api/jobs/{job_id}").json()
        if condition(job):
            return job
        assert time.monotonic() < deadline, job
        time.sleep(0.05)


def _events(settings, name: str) -> list[dict]:
    runtime = create_runtime(settings, migrate=False)
    try:
        with Session(runtime.engine) as session:
            return [
                e.payload
                for e in session.scalars(select(OutboxEvent).where(OutboxEvent.name == name))
            ]
    finally:
        runtime.close()


def test_a_source_down_then_back_succeeds_on_the_second_attempt(api, retry_settings, tmp_path):
    path = tmp_path / "late.db"
    connection_id = _connection(api, path)
    job_id = api.post(f"/api/data-connections/{connection_id}/sync").json()["dag_run_id"]

    waiting = _wait_for(api, job_id, lambda job: job["attempt_errors"])
    # Back in the queue, not ended, with the time of its next attempt.
    assert waiting["status"] == "queued" and waiting["finished_at"] is None
    assert waiting["attempts"] == 1 and waiting["next_attempt_at"] is not None
    assert waiting["retry_policy"] == {
        "attempts": 3,
        "backoff_seconds": 1.0,
        "max_delay_seconds": 2.0,
    }
    _source(path)  # the source is back before the next attempt

    job = wait_for_job(api, job_id)
    assert job["status"] == "success", job
    assert job["attempts"] == 2 and job["error"] is None and job["next_attempt_at"] is None
    [failed] = job["attempt_errors"]
    assert failed["attempt"] == 1 and "unable to open" in failed["error"]
    assert job["stats"]["tables_added"] == 1
    [event] = _events(retry_settings, "job.retrying")
    assert event["job_id"] == job_id and event["kind"] == "sync" and event["attempt"] == 1
    assert event["connection_id"] == connection_id and "unable to open" in event["error"]
    assert (event["orchestrator"], event["max_attempts"]) == ("local", 3)
    assert event["connection_name"]
    assert event["next_attempt_at"] == waiting["next_attempt_at"].replace("Z", "+00:00")


def test_attempts_run_out_then_the_job_fails(api, retry_settings, tmp_path):
    connection_id = _connection(api, tmp_path / "never.db")
    job_id = api.post(
        f"/api/data-connections/{connection_id}/sync", json={"retry": {"attempts": 2}}
    ).json()["dag_run_id"]
    job = wait_for_job(api, job_id)
    assert job["status"] == "failed" and "unable to open" in job["error"]
    assert job["attempts"] == 2 and job["retry_policy"]["attempts"] == 2
    assert [e["attempt"] for e in job["attempt_errors"]] == [1, 2]
    assert len(_events(retry_settings, "job.retrying")) == 1


def test_an_error_that_cannot_pass_fails_at_once(api, retry_settings, tmp_path):
    path = tmp_path / "garbage.db"
    path.write_bytes(b"this is not a database" * 100)
    connection_id = _connection(api, path)
    job = wait_for_job(
        api, api.post(f"/api/data-connections/{connection_id}/sync").json()["dag_run_id"]
    )
    assert job["status"] == "failed" and job["attempts"] == 1
    assert len(job["attempt_errors"]) == 1 and job["retry_policy"]["attempts"] == 3
    assert _events(retry_settings, "job.retrying") == []


def test_a_request_sets_its_own_attempts_within_bounds(api, tmp_path):
    connection_id = _connection(api, tmp_path / "missing.db")
    url = f"/api/data-connections/{connection_id}/sync"
    for retry in ({"attempts": 0}, {"attempts": 11}, {"attempts": "many"}, {"tries": 2}, {}):
        refused = api.post(url, json={"retry": retry})
        assert refused.status_code == 422, (retry, refused.text)
        assert "retry" in refused.text
    assert api.post(url, json={"unknown": 1}).status_code == 422
    # One attempt asked for: the same error that would be retried fails at once.
    job = wait_for_job(api, api.post(url, json={"retry": {"attempts": 1}}).json()["dag_run_id"])
    assert job["status"] == "failed" and job["attempts"] == 1
    assert job["retry_policy"]["attempts"] == 1 and len(job["attempt_errors"]) == 1
    # Datasets take the same field, bounded the same way.
    refused = api.post(
        "/api/datasets/unified",
        json={
            "name": "d",
            "selection_mode": "tables",
            "selected_tables": [1],
            "retry": {"attempts": 11},
        },
    )
    assert refused.status_code == 422 and "retry" in refused.text


def test_a_job_cancelled_while_it_waits_is_never_tried_again(api, retry_settings, tmp_path):
    slow = retry_settings.model_copy(update={"sync_retry_backoff_seconds": 2.0})
    with running_stack(slow, with_dataset=False) as client:
        connection_id = _connection(client, tmp_path / "gone.db", name="gone")
        job_id = client.post(f"/api/data-connections/{connection_id}/sync").json()["dag_run_id"]
        _wait_for(client, job_id, lambda job: job["attempt_errors"])
        cancelled = client.post(f"/api/jobs/{job_id}/cancel").json()
        assert cancelled["status"] == "cancelled" and cancelled["next_attempt_at"] is None
        _source(tmp_path / "gone.db")
        time.sleep(3)  # past the time the second attempt would have started
        job = client.get(f"/api/jobs/{job_id}").json()
        assert job["status"] == "cancelled" and job["attempts"] == 1


def test_delays_double_up_to_the_maximum():
    policy = RetryPolicy(attempts=10, backoff_seconds=10, max_delay_seconds=300)
    assert [policy.delay_after(n) for n in range(1, 8)] == [10, 20, 40, 80, 160, 300, 300]


def test_a_job_waiting_for_its_next_attempt_is_not_handed_over_or_left_behind(runtime):
    settings = runtime.settings
    with runtime.session_factory.begin() as session:
        job = create_job(session, kind="sync", id_prefix="sync_1", orchestrator="local")
        job_id = job.id
        job.created_at = utcnow() - timedelta(hours=1)
        job.next_attempt_at = utcnow() + timedelta(seconds=30)
    assert not accept_hand_over(runtime.session_factory, job_id, settings.job_handover_seconds)
    assert orphaned_jobs(runtime.session_factory, "local", settings) == []
    with runtime.session_factory.begin() as session:
        session.get_one(Job, job_id).next_attempt_at = utcnow() - timedelta(seconds=1)
    assert accept_hand_over(runtime.session_factory, job_id, settings.job_handover_seconds)
    with runtime.session_factory() as session:
        assert session.get_one(Job, job_id).next_attempt_at is None  # handed over: cleared
    assert cancel_job(runtime.session_factory, job_id).status == "cancelled"


def test_a_task_hands_over_when_the_attempt_is_due_or_the_service_lost_the_job():
    now = time.time()
    later = (utcnow() + timedelta(seconds=30)).isoformat()
    earlier = (utcnow() - timedelta(seconds=1)).isoformat()
    queued = {"status": "queued", "next_attempt_at": None}
    assert not needs_hand_over(queued, now - 10, 60, now)
    assert needs_hand_over(queued, now - 61, 60, now)  # its service died before running it
    assert not needs_hand_over({**queued, "next_attempt_at": later}, now - 600, 60, now)
    assert needs_hand_over({**queued, "next_attempt_at": earlier}, now, 60, now)
    assert not needs_hand_over({"status": "running", "next_attempt_at": None}, now - 600, 60, now)
