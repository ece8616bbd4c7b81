"""Persistent jobs: unique ids, claimed once, first end wins."""

from __future__ import annotations

import threading
import time

import pytest
from fabric_core import jobs
from fabric_core.errors import JobCancelledError, NotFoundError
from fabric_core.job_kinds import SYNC
from fabric_core.job_runner import JobContext
from sqlalchemy.exc import OperationalError


@pytest.fixture
def job_runtime(metadata_url, settings):
    from fabric_core.runtime import create_runtime

    runtime = create_runtime(settings.model_copy(update={"database_url": metadata_url}))
    yield runtime
    runtime.close()


def test_ids_are_unique_within_one_second(job_runtime, monkeypatch):
    monkeypatch.setattr(jobs.time, "time", lambda: 1734567890.4)
    with job_runtime.session_factory.begin() as session:
        ids = [jobs.create_job(session, kind="sync", id_prefix="sync_1").id for _ in range(3)]
    assert ids == ["sync_1_1734567890", "sync_1_1734567890_2", "sync_1_1734567890_3"]
    with job_runtime.session_factory() as session:
        assert [jobs.get_job(session, i).status for i in ids] == ["queued"] * 3


def test_a_job_is_claimed_once_even_by_racing_workers(job_runtime):
    with job_runtime.session_factory.begin() as session:
        job_id = jobs.create_job(session, kind="sync", id_prefix="sync_9").id
    results: list[bool] = []
    barrier = threading.Barrier(4)

    def claim() -> None:
        barrier.wait()
        results.append(jobs.claim_job(job_runtime.session_factory, job_id))

    threads = [threading.Thread(target=claim) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False, False, False, True]
    with job_runtime.session_factory() as session:
        job = jobs.get_job(session, job_id)
        assert (job.status, job.attempts) == ("running", 1)
        assert job.started_at is not None and job.started_at.tzinfo is not None


def test_the_first_end_wins(job_runtime):
    with job_runtime.session_factory.begin() as session:
        job_id = jobs.create_job(session, kind="sync", id_prefix="sync_2").id
    assert jobs.claim_job(job_runtime.session_factory, job_id)
    assert jobs.finish_job(job_runtime.session_factory, job_id, status="failed", error="boom")
    assert not jobs.finish_job(job_runtime.session_factory, job_id, status="success", stats={})
    assert not jobs.claim_job(job_runtime.session_factory, job_id)
    with job_runtime.session_factory() as session:
        job = jobs.get_job(session, job_id)
        assert (job.status, job.error) == ("failed", "boom")
        assert job.finished_at >= job.started_at


def test_unknown_job_is_not_found(job_runtime):
    with job_runtime.session_factory() as session, pytest.raises(NotFoundError):
        jobs.get_job(session, "sync_404_1")


def _age(runtime, job_id: str, seconds: float) -> None:
    from datetime import timedelta

    from fabric_core.models import Job, utcnow
    from sqlalchemy import update

    with runtime.session_factory.begin() as session:
        session.execute(
            update(Job)
            .where(Job.id == job_id)
            .values(updated_at=utcnow() - timedelta(seconds=seconds))
        )


def test_running_jobs_without_a_heartbeat_are_failed(job_runtime):
    with job_runtime.session_factory.begin() as session:
        dead, alive, waiting = (
            jobs.create_job(session, kind="sync", id_prefix=f"sync_{n}").id for n in (1, 2, 3)
        )
    for job_id in (dead, alive):
        assert jobs.claim_job(job_runtime.session_factory, job_id)
    _age(job_runtime, dead, 600)
    _age(job_runtime, waiting, 600)  # queued jobs wait for a slot: not stale
    assert jobs.fail_stale_jobs(job_runtime.session_factory, 120) == 1
    with job_runtime.session_factory() as session:
        statuses = {j: jobs.get_job(session, j).status for j in (dead, alive, waiting)}
        error = jobs.get_job(session, dead).error
    assert statuses == {dead: "failed", alive: "running", waiting: "queued"}
    assert "no heartbeat" in error


def test_heartbeat_keeps_a_long_job_fresh(job_runtime):
    import time

    with job_runtime.session_factory.begin() as session:
        job_id = jobs.create_job(session, kind="sync", id_prefix="sync_7").id
    jobs.claim_job(job_runtime.session_factory, job_id)
    _age(job_runtime, job_id, 600)
    with jobs.heartbeat(job_runtime.session_factory, job_id, 0.05):
        time.sleep(0.4)
        assert jobs.fail_stale_jobs(job_runtime.session_factory, 120) == 0
    with job_runtime.session_factory() as session:
        assert jobs.get_job(session, job_id).status == "running"


class _FlakyFactory:
    """A session factory whose first ``failures`` transactions fail as if the DB were away."""

    def __init__(self, factory, failures: int) -> None:
        self.factory, self.failures = factory, failures

    def begin(self):
        if self.failures:
            self.failures -= 1
            raise OperationalError("UPDATE jobs", {}, Exception("server closed the connection"))
        return self.factory.begin()


def _running_job(runtime) -> str:
    with runtime.session_factory.begin() as session:
        job_id = jobs.create_job(session, kind="sync", id_prefix="beat").id
    assert jobs.claim_job(runtime.session_factory, job_id)
    return job_id


def _updated_at(runtime, job_id):
    with runtime.session_factory() as session:
        return jobs.get_job(session, job_id).updated_at


def test_a_heartbeat_survives_db_errors_and_beats_again(runtime):
    job_id = _running_job(runtime)
    before = _updated_at(runtime, job_id)
    flaky = _FlakyFactory(runtime.session_factory, failures=3)
    with jobs.heartbeat(flaky, job_id, 0.05, give_up_after=5) as lost:
        time.sleep(0.6)
    assert flaky.failures == 0 and not lost.is_set()
    assert _updated_at(runtime, job_id) > before


def test_a_heartbeat_that_cannot_beat_says_so_so_the_work_stops(runtime):
    job_id = _running_job(runtime)
    flaky = _FlakyFactory(runtime.session_factory, failures=10_000)
    with jobs.heartbeat(flaky, job_id, 0.05, give_up_after=0.3) as lost:
        assert lost.wait(5)


class _BlockingFactory:
    """A session factory whose transactions hang (a metadata DB that stopped answering)."""

    def __init__(self) -> None:
        self.release = threading.Event()

    def begin(self):
        self.release.wait(30)
        raise OperationalError("UPDATE jobs", {}, Exception("connection lost"))


def test_a_heartbeat_that_blocks_counts_as_lost(runtime):
    job_id = _running_job(runtime)
    blocked = _BlockingFactory()
    try:
        with jobs.heartbeat(blocked, job_id, 0.05, give_up_after=0.3) as lost:
            assert not lost.is_set()
            assert lost.wait(5)  # no error was ever raised: the silence alone says it
    finally:
        blocked.release.set()


def test_a_worker_whose_job_was_failed_as_stale_stops(runtime):
    job_id = _running_job(runtime)
    context = JobContext(SYNC, runtime, job_id)
    context.raise_if_cancelled()  # running: the work goes on
    jobs.finish_job(runtime.session_factory, job_id, status="failed", error="stale")
    with pytest.raises(JobCancelledError, match=r"ended \(failed\)"):
        context.raise_if_cancelled()
