"""A stopping job pool fails the jobs it never started instead of leaving them queued."""

from __future__ import annotations

import threading

from fabric_core.jobs import create_job, get_job
from fabric_core.pools import JobPool


def test_shutdown_fails_waiting_jobs_and_waits_for_running_ones(runtime):
    with runtime.session_factory.begin() as session:
        first = create_job(session, kind="sync", id_prefix="sync_a").id
        second = create_job(session, kind="sync", id_prefix="sync_b").id
    release, started, ran = threading.Event(), threading.Event(), []

    def work(job_id: str) -> None:
        ran.append(job_id)
        started.set()
        release.wait(10)

    pool = JobPool("test_pool", 1, runtime.session_factory)
    pool.submit(first, work, first)
    pool.submit(second, work, second)
    assert started.wait(10)
    stopper = threading.Thread(target=pool.shutdown, args=("stopped before it started",))
    stopper.start()
    stopper.join(0.5)
    assert stopper.is_alive()  # still waiting for the running job
    release.set()
    stopper.join(10)
    assert not stopper.is_alive() and ran == [first]
    with runtime.session_factory() as session:
        assert get_job(session, first).status == "queued"  # its worker decides, not the pool
        waiting = get_job(session, second)
        assert (waiting.status, waiting.error) == ("failed", "stopped before it started")
