"""Airflow 3 as the orchestrator, for real: the gateway triggers DAG runs, Airflow's pools
bound the work in the services, retries, failures and cancellation reach the job rows.

One Airflow (api-server, scheduler, dag-processor, triggerer; PostgreSQL metadata DB) is
started for the module, with the sync and dataset services and a SeaweedFS S3 server.
"""

from __future__ import annotations

import sqlite3
import time
import uuid
from datetime import datetime, timedelta

import pytest
from catalog_helpers import register, sync, tables_by_name
from conftest import PG_HOST, PG_PORT, PG_USER
from fabric_core.airflow_api import AirflowClient
from fabric_core.airflow_stack import setup_airflow, start_airflow, wait_until_healthy
from fabric_core.models import Job, utcnow
from fabric_core.polling import wait_for_job_end
from fabric_core.runtime import create_runtime
from fabric_core.settings import Settings
from fabric_dataset.app import create_app as create_dataset
from fabric_gateway.app import create_app as create_gateway
from fabric_sync.app import create_app as create_sync
from fabric_web.serving import free_port, serve_in_thread
from fastapi.testclient import TestClient
from service_helpers import bearer
from sqlalchemy import select

pytest.importorskip("airflow", reason="the airflow dependency group is not installed")
pytestmark = [pytest.mark.airflow, pytest.mark.postgres]

SOURCES = 6
SYNCS = 50  # over the SOURCES connections: several wait for their connection's lock
DATASETS = 10


def _database(pg_admin, created: list[str]) -> str:
    name = f"fabric_test_af_{uuid.uuid4().hex[:8]}"
    pg_admin.execute(f'CREATE DATABASE "{name}"')
    created.append(name)
    return name


@pytest.fixture(scope="module")
def stack(pg_admin, s3_server, tmp_path_factory):
    home = tmp_path_factory.mktemp("fabric_airflow")
    created: list[str] = []
    meta, airflow_db = _database(pg_admin, created), _database(pg_admin, created)
    airflow_port, sync_port, dataset_port = free_port(), free_port(), free_port()
    settings = Settings(
        home=home / "fabric",
        sqlite_roots=[home],
        secret_key="airflow-test-secret-key",
        database_url=f"postgresql+psycopg://{PG_USER}@{PG_HOST}:{PG_PORT}/{meta}",
        orchestrator="airflow",
        airflow_url=f"http://127.0.0.1:{airflow_port}",
        airflow_public_url=f"http://127.0.0.1:{airflow_port}",
        airflow_database_url=f"postgresql+psycopg2://{PG_USER}@{PG_HOST}:{PG_PORT}/{airflow_db}",
        sync_url=f"http://127.0.0.1:{sync_port}",
        dataset_url=f"http://127.0.0.1:{dataset_port}",
        job_poll_interval=0.2,
        dataset_batch_rows=2000,
        sync_retry_backoff_seconds=4.0,
        sync_retry_max_delay_seconds=8.0,
        **s3_server.settings_update("airflow"),
    )
    servers = {
        "sync": serve_in_thread(create_sync(settings), port=sync_port),
        "dataset": serve_in_thread(create_dataset(settings), port=dataset_port),
    }
    airflow = start_airflow(
        settings,
        home=home / "airflow",
        port=airflow_port,
        log_dir=home / "airflow" / "logs",
        extra_env={"FABRIC_TASK_RETRIES": "1", "FABRIC_TASK_RETRY_DELAY_SECONDS": "1"},
    )
    client = AirflowClient(settings.airflow_url, "airflow", "airflow")
    try:
        wait_until_healthy(client, airflow)
        setup_airflow(settings, client)
        _wait_for_dags(client)
        with TestClient(create_gateway(settings), headers=bearer(settings)) as gateway:
            yield {
                "settings": settings,
                "gateway": gateway,
                "client": client,
                "servers": servers,
                "home": home,
            }
    finally:
        client.close()
        airflow.stop()
        for server in servers.values():
            server.stop()
        for name in created:
            pg_admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _wait_for_dags(client: AirflowClient, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            for dag_id in ("sync_data_connection", "create_unified_dataset"):
                client.request("GET", f"/api/v2/dags/{dag_id}")
            return
        except Exception:
            time.sleep(1)
    raise AssertionError("Airflow did not load the DAGs")


def _wait_all(gateway, job_ids: list[str], timeout: float = 600) -> dict[str, dict]:
    deadline = time.monotonic() + timeout
    return {
        job_id: wait_for_job_end(
            lambda job_id=job_id: gateway.get(f"/api/jobs/{job_id}").json(),
            poll_interval=1,
            timeout=max(1.0, deadline - time.monotonic()),
        )
        for job_id in job_ids
    }


def _sqlite_source(path, rows: int) -> None:
    with sqlite3.connect(path) as connection:
        connection.executescript(
            f"""
            CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT, code INTEGER);
            WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {rows})
            INSERT INTO customers SELECT i, 'name ' || i, i % 5 FROM n;
            """
        )
    connection.close()


def _max_concurrency(intervals: list[tuple[datetime, datetime]]) -> int:
    events = sorted(
        [(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals],
        key=lambda event: (event[0], event[1]),
    )
    running = peak = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    return peak


def _handed_over_intervals(settings, job_ids: list[str]) -> dict[str, tuple[datetime, datetime]]:
    """From each job's (last) hand-over to its service to its end."""
    runtime = create_runtime(settings, migrate=False)
    try:
        with runtime.session_factory() as session:
            rows = session.execute(
                select(Job.id, Job.handed_over_at, Job.finished_at).where(Job.id.in_(job_ids))
            ).all()
    finally:
        runtime.close()
    return {job_id: (start, end) for job_id, start, end in rows}


def _task_intervals(client: AirflowClient, dag_id: str) -> dict[str, tuple[datetime, datetime]]:
    return {
        ti["dag_run_id"]: (
            datetime.fromisoformat(ti["start_date"]),
            datetime.fromisoformat(ti["end_date"]),
        )
        for ti in client.task_instances(dag_id)
        if ti["start_date"] and ti["end_date"]
    }


def test_pools_bound_concurrent_syncs_and_builds(stack):
    gateway, client, settings = stack["gateway"], stack["client"], stack["settings"]
    home = stack["home"]
    connection_ids = []
    for index in range(SOURCES):
        path = home / f"source_{index}.db"
        _sqlite_source(path, 1000)
        created = gateway.post(
            "/api/data-connections",
            json={"name": f"source_{index}", "kind": "sqlite", "database": str(path)},
        )
        connection_ids.append(created.json()["id"])
    # The dataset builds read a source whose catalog is already there.
    runtime = create_runtime(settings, migrate=False)
    _sqlite_source(home / "dataset_source.db", 20_000)
    dataset_source = register(
        runtime, name="dataset_source", kind="sqlite", database=str(home / "dataset_source.db")
    )
    sync(runtime, dataset_source)
    table_id = tables_by_name(runtime, dataset_source)[("main", "customers")].id
    runtime.close()

    answers = [
        gateway.post(f"/api/data-connections/{connection_ids[n % SOURCES]}/sync")
        for n in range(SYNCS)
    ]
    answers += [
        gateway.post(
            "/api/datasets/unified",
            json={
                "name": f"ds_{index}",
                "selection_mode": "tables",
                "selected_tables": [table_id],
            },
        )
        for index in range(DATASETS)
    ]
    assert [a.status_code for a in answers] == [202] * (SYNCS + DATASETS)
    first = answers[0].json()
    assert first["airflow_url"] == (
        f"{settings.airflow_public_url}/dags/sync_data_connection/runs/{first['dag_run_id']}"
    )
    job_ids = [a.json()["dag_run_id"] for a in answers]
    jobs = _wait_all(gateway, job_ids)
    assert {job_id: job["status"] for job_id, job in jobs.items()} == dict.fromkeys(
        job_ids, "success"
    )
    # The job row ends a moment before the task that waited for it.
    deadline = time.monotonic() + 60
    while True:
        states = {j: gateway.get(f"/api/jobs/{j}").json()["dag_run"]["state"] for j in job_ids}
        if set(states.values()) == {"success"} or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert states == dict.fromkeys(job_ids, "success")

    syncs = _task_intervals(client, "sync_data_connection")
    builds = _task_intervals(client, "create_unified_dataset")
    assert set(job_ids[:SYNCS]) <= set(syncs) and set(job_ids[SYNCS:]) <= set(builds)
    # The pools bound the jobs in the services: from its hand-over to its end, a job's task
    # holds its pool slot (running, then deferred). A deferred task's start_date is reset when
    # it resumes, so task intervals do not show this; the burst test below samples the task
    # states instead and sees the pool full of deferred tasks.
    in_service = _handed_over_intervals(settings, job_ids)
    assert 2 <= _max_concurrency([in_service[j] for j in job_ids[:SYNCS]]) <= 3
    assert _max_concurrency([in_service[j] for j in job_ids[SYNCS:]]) <= 2
    # Each job ran inside its DAG run (a resumed task's start_date is its last resumption).
    for job_id, job in jobs.items():
        run = client.dag_run(job["dag_run"]["dag_id"], job_id)
        start, end = (datetime.fromisoformat(run[k]) for k in ("start_date", "end_date"))
        assert start <= datetime.fromisoformat(job["started_at"]) <= end, job_id
        assert start <= datetime.fromisoformat(job["finished_at"]) <= end, job_id
        assert job["attempts"] == 1
    assert client.pools()["sync_pool"] == 3 and client.pools()["dataset_pool"] == 2


def test_cancel_stops_a_running_build(stack):
    gateway, client, settings = stack["gateway"], stack["client"], stack["settings"]
    home = stack["home"]
    _sqlite_source(home / "big.db", 1_500_000)  # ~750 batches of 2,000 rows: seconds of work
    runtime = create_runtime(settings, migrate=False)
    big = register(runtime, name="big", kind="sqlite", database=str(home / "big.db"))
    sync(runtime, big)
    table_id = tables_by_name(runtime, big)[("main", "customers")].id
    runtime.close()
    answer = gateway.post(
        "/api/datasets/unified",
        json={
            "name": "too_big",
            "selection_mode": "tables",
            "selected_tables": [table_id],
        },
    ).json()
    job_id = answer["dag_run_id"]
    deadline = time.monotonic() + 120
    while gateway.get(f"/api/jobs/{job_id}").json()["status"] != "running":
        assert time.monotonic() < deadline, "the build never started"
        time.sleep(0.2)
    cancelled = gateway.post(f"/api/jobs/{job_id}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert gateway.post(f"/api/jobs/{job_id}/cancel").status_code == 409
    deadline = time.monotonic() + 60
    while client.dag_run("create_unified_dataset", job_id)["state"] != "failed":
        assert time.monotonic() < deadline, "the DAG run was not stopped"
        time.sleep(1)
    time.sleep(3)  # the service stops at its next batch boundary and removes what it wrote
    job = gateway.get(f"/api/jobs/{job_id}").json()
    assert job["status"] == "cancelled" and job["error"] == "Cancelled on request."
    dataset = gateway.get("/api/datasets/too_big").json()
    assert dataset["versions"] == [] and dataset["current_version"] is None


def _sync_of_missing_source(gateway, home, name: str, **body) -> tuple[str, object]:
    path = home / f"{name}.db"
    connection = gateway.post(
        "/api/data-connections", json={"name": name, "kind": "sqlite", "database": str(path)}
    ).json()
    answer = gateway.post(f"/api/data-connections/{connection['id']}/sync", json=body or None)
    assert answer.status_code == 202, answer.text
    return answer.json()["dag_run_id"], path


def test_a_source_down_then_back_succeeds_on_its_second_attempt(stack):
    gateway, client = stack["gateway"], stack["client"]
    job_id, path = _sync_of_missing_source(gateway, stack["home"], "comes_back")
    deadline = time.monotonic() + 120
    while not (job := gateway.get(f"/api/jobs/{job_id}").json())["attempt_errors"]:
        assert time.monotonic() < deadline, job
        time.sleep(0.2)
    assert job["status"] == "queued" and job["next_attempt_at"] is not None
    _sqlite_source(path, 10)
    job = _wait_all(gateway, [job_id], timeout=120)[job_id]
    assert job["status"] == "success", job
    assert job["attempts"] == 2 and len(job["attempt_errors"]) == 1
    assert "unable to open" in job["attempt_errors"][0]["error"]
    assert job["retry_policy"] == {"attempts": 3, "backoff_seconds": 4.0, "max_delay_seconds": 8.0}
    # The job's attempts are not Airflow's task retries: one try of one task instance...
    deadline = time.monotonic() + 60
    while client.dag_run("sync_data_connection", job_id)["state"] != "success":
        assert time.monotonic() < deadline, "the DAG run did not end well"
        time.sleep(1)
    [ti] = client.task_instances("sync_data_connection", job_id)
    assert ti["state"] == "success"
    _assert_no_try_failed_before(client, job_id, ti["try_number"])


def _assert_no_try_failed_before(client, run_id: str, final_try: int) -> None:
    """No try before ``final_try`` was failed by the job: Airflow may have killed a resumed
    try itself (apache/airflow#72716: a deferred task's stale exit event, read after the
    trigger fired, sends it to up_for_retry) or reset one it had lost track of. The task
    retries for orchestration only, so an earlier try Airflow recorded was killed by Airflow,
    never failed by the job. A try it never recorded was not failed by the task either: a
    task's failure always archives its try."""
    for earlier in _recorded_tries(client, run_id):
        if earlier["try_number"] < final_try:
            log = str(_task_log(client, run_id, earlier["try_number"]))
            assert "shouldn't be running anymore" in log, log[-2000:]


def _recorded_tries(client, run_id: str) -> list[dict]:
    path = f"/api/v2/dags/sync_data_connection/dagRuns/{run_id}/taskInstances/sync_catalog/tries"
    return client.request("GET", path)["task_instances"]


def _task_log(client, run_id: str, try_number: int):
    path = (
        f"/api/v2/dags/sync_data_connection/dagRuns/{run_id}/taskInstances/sync_catalog/logs/"
        f"{try_number}"
    )
    return client.request("GET", path, params={"full_content": "true"})


def test_an_error_that_cannot_pass_fails_at_once(stack):
    gateway, client, home = stack["gateway"], stack["client"], stack["home"]
    path = home / "garbage.db"
    path.write_bytes(b"not a database" * 100)
    connection = gateway.post(
        "/api/data-connections", json={"name": "garbage", "kind": "sqlite", "database": str(path)}
    ).json()
    job_id = gateway.post(f"/api/data-connections/{connection['id']}/sync").json()["dag_run_id"]
    job = _wait_all(gateway, [job_id], timeout=120)[job_id]
    assert job["status"] == "failed" and job["attempts"] == 1
    assert len(job["attempt_errors"]) == 1 and "Airflow task failed" not in job["error"]
    deadline = time.monotonic() + 60
    while client.dag_run("sync_data_connection", job_id)["state"] != "failed":
        assert time.monotonic() < deadline, "the DAG run did not fail"
        time.sleep(1)
    # Failed at once: the job's one attempt, and no task retry after a failed try (Airflow
    # may still have restarted a try of its own, as above).
    [ti] = client.task_instances("sync_data_connection", job_id)
    assert ti["state"] == "failed"
    _assert_no_try_failed_before(client, job_id, ti["try_number"])


BURST = 20


def test_a_burst_waits_deferred_within_the_pool(stack):
    """20 syncs whose first attempt fails: they wait for their next attempt deferred, holding
    their pool slot but no worker slot; a task holds a worker only while it hands its job over
    or finishes."""
    gateway, client, settings = stack["gateway"], stack["client"], stack["settings"]
    jobs = dict(
        _sync_of_missing_source(gateway, stack["home"], f"burst_{n}", retry={"attempts": 2})
        for n in range(BURST)
    )
    runtime = create_runtime(settings, migrate=False)
    samples: list[dict[str, str]] = []
    waiting_tasks: list[str] = []  # the task state of each job seen waiting for its attempt
    restored: set[str] = set()
    deadline = time.monotonic() + 600
    try:
        while True:
            states = {
                ti["dag_run_id"]: ti["state"]
                for ti in client.task_instances("sync_data_connection")
                if ti["dag_run_id"] in jobs
            }
            samples.append(states)
            with runtime.session_factory() as session:
                rows = session.execute(
                    select(Job.id, Job.status, Job.attempt_errors, Job.next_attempt_at).where(
                        Job.id.in_(list(jobs))
                    )
                ).all()
            now = utcnow()
            for job_id, status, errors, next_attempt_at in rows:
                if errors and job_id not in restored:  # the source is back for attempt 2
                    _sqlite_source(jobs[job_id], 10)
                    restored.add(job_id)
                # Waiting for its next attempt, well after its task had time to defer.
                failed_at = datetime.fromisoformat(errors[-1]["at"]) if errors else None
                if (
                    status == "queued"
                    and next_attempt_at is not None
                    and next_attempt_at > now
                    and now - failed_at > timedelta(seconds=1.5)
                ):
                    waiting_tasks.append(states.get(job_id, "none"))
            if all(status in ("success", "failed", "cancelled") for _, status, *_ in rows):
                break
            assert time.monotonic() < deadline, "the burst did not end"
            time.sleep(0.25)
    finally:
        runtime.close()
    ended = _wait_all(gateway, list(jobs), timeout=60)
    assert {j["status"] for j in ended.values()} == {"success"}
    assert {(j["attempts"], len(j["attempt_errors"])) for j in ended.values()} == {(2, 1)}

    slots = client.pools()["sync_pool"]
    assert client.request("GET", "/api/v2/pools/sync_pool")["include_deferred"] is True
    holding = [
        sum(s in ("queued", "running", "deferred") for s in states.values()) for states in samples
    ]
    deferred = [sum(s == "deferred" for s in states.values()) for states in samples]
    # The pool still bounds the work: deferred tasks hold their pool slot.
    assert max(holding) <= slots
    assert max(deferred) == slots  # the pool was full of waiting tasks at times
    # A job waiting for its next attempt holds no worker: its task is deferred.
    assert len(waiting_tasks) >= BURST
    assert set(waiting_tasks) == {"deferred"}, waiting_tasks


def test_a_service_down_during_a_run_fails_the_job_after_retries(stack):
    gateway, client = stack["gateway"], stack["client"]
    path = stack["home"] / "late.db"
    _sqlite_source(path, 10)
    connection = gateway.post(
        "/api/data-connections", json={"name": "late", "kind": "sqlite", "database": str(path)}
    ).json()
    stack["servers"]["sync"].stop()
    answer = gateway.post(f"/api/data-connections/{connection['id']}/sync").json()
    job = _wait_all(gateway, [answer["dag_run_id"]], timeout=180)[answer["dag_run_id"]]
    assert job["status"] == "failed"
    assert "did not answer" in job["error"] and "Airflow task failed" in job["error"]
    tries = [
        ti["try_number"]
        for ti in client.task_instances("sync_data_connection", answer["dag_run_id"])
    ]
    assert tries == [2]  # one retry, then the final failure


def test_airflow_down_answers_503_and_fails_the_job(stack):
    down = stack["settings"].model_copy(update={"airflow_url": f"http://127.0.0.1:{free_port()}"})
    path = stack["home"] / "x.db"
    _sqlite_source(path, 1)
    with TestClient(create_gateway(down), headers=bearer(down)) as gateway:
        connection = gateway.post(
            "/api/data-connections",
            json={"name": f"x_{uuid.uuid4().hex[:6]}", "kind": "sqlite", "database": str(path)},
        ).json()
        response = gateway.post(f"/api/data-connections/{connection['id']}/sync")
        assert response.status_code == 503
        assert "Airflow" in response.json()["detail"]
        jobs = gateway.get("/api/jobs", params={"connection_id": connection["id"]}).json()
        assert [(j["status"], "did not answer" in j["error"]) for j in jobs] == [("failed", True)]


def test_an_expired_token_is_replaced(stack):
    client = AirflowClient(stack["settings"].airflow_url, "airflow", "airflow")
    try:
        client._token = "expired-or-rotated"  # what a 24 h old token looks like to Airflow
        assert client.pools()["sync_pool"] == 3
        assert client._token != "expired-or-rotated"
    finally:
        client.close()


def test_setup_command_and_script_are_idempotent(stack):
    import os
    import subprocess
    import sys
    from pathlib import Path

    settings = stack["settings"]
    env = {
        **os.environ,
        "FABRIC_HOME": str(settings.home),
        "FABRIC_AIRFLOW_URL": settings.airflow_url,
        "FABRIC_SYNC_URL": settings.resolved_sync_url,
        "FABRIC_DATASET_URL": settings.resolved_dataset_url,
        "FABRIC_SYNC_POOL_SLOTS": "4",
    }
    script = Path(__file__).resolve().parents[2] / "airflow" / "setup_airflow_pools.py"
    for command in (
        [sys.executable, "-m", "fabric_core.cli", "airflow", "setup"],
        [sys.executable, str(script)],
    ):
        result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        assert "'sync_pool': 4" in result.stdout
    assert stack["client"].pools()["sync_pool"] == 4
    connection = stack["client"].request("GET", "/api/v2/connections/fabric_sync")
    assert (connection["conn_type"], connection["host"]) == ("http", "127.0.0.1")
    # Put the size back for the other tests.
    env["FABRIC_SYNC_POOL_SLOTS"] = "3"
    subprocess.run([sys.executable, str(script)], env=env, check=True, timeout=120)

    wrong = {**env, "FABRIC_AIRFLOW_PASSWORD": "wrong"}
    refused = subprocess.run(
        [sys.executable, str(script)], env=wrong, capture_output=True, text=True, timeout=120
    )
    assert refused.returncode == 1 and "refused the credentials" in refused.stderr
