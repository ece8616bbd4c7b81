"""The recovery sweeps: a job queued by a gateway that stopped before handing it over is
handed over by the next gateway; a build whose service died is failed and its files removed
by the dataset service, without anyone looking at the job."""

from __future__ import annotations

import sqlite3
import time
from datetime import timedelta
from pathlib import Path

from catalog_helpers import half_written_version, register, sync, tables_by_name
from fabric_core.dataset_jobs import queue_dataset
from fabric_core.jobs import get_job
from fabric_core.models import Dataset, DatasetVersion, Job, utcnow
from fabric_core.runtime import create_runtime
from fabric_core.schemas import DatasetRequest
from fabric_core.sync_jobs import queue_sync
from service_helpers import running_stack, wait_for_job
from sqlalchemy import select, update


def _source(path: Path) -> None:
    with sqlite3.connect(path) as connection:
        connection.executescript(
            "CREATE TABLE t (id INTEGER PRIMARY KEY); INSERT INTO t VALUES (1);"
        )
    connection.close()


def _age(runtime, job_id: str, seconds: float) -> None:
    with runtime.session_factory.begin() as session:
        past = utcnow() - timedelta(seconds=seconds)
        session.execute(
            update(Job).where(Job.id == job_id).values(created_at=past, updated_at=past)
        )


def test_a_job_queued_but_never_handed_over_is_handed_over_by_the_next_gateway(settings, tmp_path):
    settings = settings.model_copy(update={"job_handover_seconds": 1, "sweep_seconds": 0.2})
    _source(tmp_path / "s.db")
    runtime = create_runtime(settings)
    connection_id = register(runtime, name="s", kind="sqlite", database=str(tmp_path / "s.db"))
    with runtime.session_factory.begin() as session:  # the gateway died right after this
        job, _ = queue_sync(session, connection_id, orchestrator="local")
        job_id = job.id
    _age(runtime, job_id, 5)
    runtime.close()

    with running_stack(settings) as api:
        ended = wait_for_job(api, job_id, timeout=30)
    assert ended["status"] == "success" and ended["stats"]["tables"] == 1


def test_the_dataset_service_fails_a_dead_build_and_removes_its_files(settings, tmp_path):
    settings = settings.model_copy(update={"sweep_seconds": 0.2, "job_stale_seconds": 60})
    _source(tmp_path / "s.db")
    runtime = create_runtime(settings)
    connection_id = register(runtime, name="s", kind="sqlite", database=str(tmp_path / "s.db"))
    sync(runtime, connection_id)
    table_id = tables_by_name(runtime, connection_id)[("main", "t")].id
    request = DatasetRequest(name="d", selection_mode="tables", selected_tables=[table_id])
    with runtime.session_factory.begin() as session:
        job, _ = queue_dataset(session, request, runtime.box, orchestrator="test")
        job_id = job.id
    folder = half_written_version(runtime, "d", job_id)
    with runtime.session_factory() as session:
        dataset_id = session.scalar(select(Dataset.id).where(Dataset.name == "d"))
    _age(runtime, job_id, 600)  # its service was killed ten minutes ago

    with running_stack(settings, with_sync=False):
        deadline = time.monotonic() + 20
        while folder.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
    assert not folder.exists()
    with runtime.session_factory() as session:
        job = get_job(session, job_id)
        assert job.status == "failed" and "no heartbeat" in job.error
        assert session.get(Dataset, dataset_id).status == "failed"
        versions = session.execute(
            select(DatasetVersion.version, DatasetVersion.status).where(
                DatasetVersion.dataset_id == dataset_id
            )
        ).all()
        assert [tuple(v) for v in versions] == [(1, "removed")]
    runtime.close()
