"""JSON log lines (FABRIC_LOG_FORMAT=json) from the processes `fabric up` starts: every line is
one JSON object, and each line of a job's work names the job and the request that queued it."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from faults.fault_helpers import fabric_processes, fabric_settings, gateway, job_end, numbers_table


def _lines(log_file: Path) -> list[dict]:
    text = log_file.read_text()
    # Every line is JSON: a line that is not would fail here, naming it.
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_json_lines_carry_the_job_and_request_ids(tmp_path):
    source = tmp_path / "source.db"
    with sqlite3.connect(source) as connection:
        numbers_table(connection, 10)
    connection.close()
    settings = fabric_settings(tmp_path / "home", log_format="json")
    logs = tmp_path / "logs"
    with fabric_processes(settings, logs), gateway(settings) as api:
        body = {"name": "numbers", "kind": "sqlite", "database": str(source)}
        connection_id = api.post("/api/data-connections", json=body).json()["id"]
        answer = api.post(
            f"/api/data-connections/{connection_id}/sync",
            headers={"X-Request-ID": "sync-request-1"},
        )
        assert answer.headers["X-Request-ID"] == "sync-request-1"
        job_id = answer.json()["dag_run_id"]
        assert job_end(api, job_id)["status"] == "success"

        source.unlink()  # the next sync fails: its warning must name the job too
        failing = api.post(f"/api/data-connections/{connection_id}/sync")
        failing_id = failing.json()["dag_run_id"]
        assert job_end(api, failing_id)["status"] == "failed"

    sync_lines = _lines(logs / "sync.log")
    assert {"time", "level", "logger", "message", "service", "request_id", "job_id"} <= set(
        sync_lines[0]
    )
    of_job = [line for line in sync_lines if line["job_id"] == job_id]
    assert [line["message"] for line in of_job if "ended" in line["message"]] == [
        f"sync job {job_id} ended success"
    ]
    assert {line["request_id"] for line in of_job} == {"sync-request-1"}
    assert {line["service"] for line in of_job} == {"sync"}
    assert {line["dag_run_id"] for line in of_job} == {None}  # the local orchestrator

    failed = [line for line in sync_lines if line["job_id"] == failing_id]
    warnings = [line for line in failed if line["level"] == "WARNING"]
    assert warnings and failing_id in warnings[0]["message"]
    assert {line["request_id"] for line in failed} == {failing.headers["X-Request-ID"]}

    gateway_lines = _lines(logs / "gateway.log")
    assert {line["service"] for line in gateway_lines} == {"gateway"}
