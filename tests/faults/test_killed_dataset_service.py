"""`kill -9` of the dataset service in the middle of a multi-part build to S3, with every
process started as `fabric up` starts them: the job ends failed with a reason, the dataset is
not left building, the restarted service removes every object of the dead version, and the
next build of the same name succeeds."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from contextlib import ExitStack

import pytest
from conftest import PG_HOST, PG_USER, pg_execute
from fabric_core.launcher import settings_env, start_services
from fabric_core.polling import wait_for_job_end
from fault_helpers import fabric_settings, gateway

pytestmark = pytest.mark.postgres

ROWS = 2_500_000


def _wait(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(0.1)
    raise AssertionError(f"{what} within {timeout} s")


def test_a_killed_build_is_failed_cleaned_up_and_built_again(tmp_path, pg_database, s3_server):
    database = pg_database()
    pg_execute(
        database,
        f"CREATE TABLE big AS SELECT i AS id, md5(i::text) AS v "
        f"FROM generate_series(1, {ROWS}) AS i; ANALYZE big;",
    )
    settings = fabric_settings(
        tmp_path / "home",
        job_poll_interval=0.1,
        job_heartbeat_seconds=0.5,
        job_stale_seconds=5,
        sweep_seconds=0.5,
        dataset_batch_rows=20_000,
        dataset_part_rows=100_000,
        **s3_server.settings_update("killed-build"),
    )
    env = {**os.environ, **settings_env(settings)}
    services = start_services(settings, env, log_dir=tmp_path / "logs")
    restarted = None
    fs = s3_server.filesystem()
    stack = ExitStack()
    try:
        services.wait_until_ready(timeout=60)
        api = stack.enter_context(gateway(settings))
        body = {
            "name": "pg",
            "kind": "postgresql",
            "host": PG_HOST,
            "database": database,
            "username": PG_USER,
        }
        connection = api.post("/api/data-connections", json=body).json()
        sync = api.post(f"/api/data-connections/{connection['id']}/sync").json()
        job_status = lambda job_id: lambda: api.get(f"/api/jobs/{job_id}").json()  # noqa: E731
        assert wait_for_job_end(job_status(sync["dag_run_id"]), timeout=60)["status"] == "success"
        table_id = api.get(f"/api/data-connections/{connection['id']}/tables").json()[0]["id"]
        request = {"name": "big", "selection_mode": "tables", "selected_tables": [table_id]}

        queued = api.post("/api/datasets/unified", json=request).json()
        version_dir = f"{s3_server.bucket}/killed-build/datasets/big/v1"
        _wait(lambda: fs.exists(f"{version_dir}/part-00000.parquet"), 60, "no part written")
        services.processes["dataset"].send_signal(signal.SIGKILL)
        services.processes["dataset"].wait()

        job = wait_for_job_end(job_status(queued["dag_run_id"]), poll_interval=0.2, timeout=30)
        assert job["status"] == "failed" and job["error"]
        assert api.get("/api/datasets/big").json()["status"] == "failed"

        restarted = subprocess.Popen([sys.executable, "-m", "fabric_dataset"], env=env)
        _wait(lambda: not fs.exists(version_dir), 30, "the dead version's objects remain")
        listing = fs.call_s3(
            "list_multipart_uploads", Bucket=s3_server.bucket, Prefix="killed-build/"
        )
        assert listing.get("Uploads", []) == []

        again = api.post("/api/datasets/unified", json=request).json()
        rebuilt = wait_for_job_end(job_status(again["dag_run_id"]), timeout=120)
        assert rebuilt["status"] == "success", rebuilt["error"]
        dataset = api.get("/api/datasets/big").json()
        assert (dataset["status"], dataset["row_count"]) == ("ready", ROWS)
        assert [v["version"] for v in dataset["versions"]] == [dataset["current_version"]]
    finally:
        stack.close()
        if restarted is not None:
            restarted.terminate()
            restarted.wait(15)
        services.stop()
