"""The dataset storage's S3 goes away in the middle of a multi-part build: the job fails in
bounded time with a reason, the dataset is not left building, and once S3 is back the dead
version's objects are removed and the same build succeeds."""

from __future__ import annotations

import sqlite3
import time

from conftest import seaweedfs
from fabric_web.serving import free_port
from fault_helpers import fabric_processes, fabric_settings, gateway, job_end, numbers_table

ROWS = 2_000_000


def _source_and_s3_folder(tmp_path, rows: int):
    """A sqlite source of ``rows`` numbered rows, a folder for S3's data, and the ports S3 is
    started on again after it was stopped."""
    path = tmp_path / "source.db"
    with sqlite3.connect(path) as connection:
        numbers_table(connection, rows)
    connection.close()
    folder = tmp_path / "s3"
    folder.mkdir()
    ports = {name: free_port() for name in ("s3", "master", "volume", "filer", "admin")}
    return path, folder, ports


def _synced_table(api, path) -> int:
    """The id of the one table of the sqlite file at ``path``, registered and synced."""
    body = {"name": "s", "kind": "sqlite", "database": str(path)}
    source = api.post("/api/data-connections", json=body).json()
    synced = api.post(f"/api/data-connections/{source['id']}/sync").json()
    assert job_end(api, synced["dag_run_id"])["status"] == "success"
    return api.get(f"/api/data-connections/{source['id']}/tables").json()[0]["id"]


def test_a_build_whose_s3_goes_away_fails_and_is_cleaned_up_when_it_is_back(tmp_path):
    path, folder, ports = _source_and_s3_folder(tmp_path, ROWS)
    with seaweedfs(folder, ports) as (s3, weed):
        settings = fabric_settings(
            tmp_path / "home",
            dataset_batch_rows=20_000,
            dataset_part_rows=100_000,
            sweep_seconds=0.5,
            **s3.settings_update("gone"),
        )
        with fabric_processes(settings, tmp_path / "logs"), gateway(settings) as api:
            table_id = _synced_table(api, path)
            request = {"name": "big", "selection_mode": "tables", "selected_tables": [table_id]}
            version_dir = f"{s3.bucket}/gone/datasets/big/v1"

            queued = api.post("/api/datasets/unified", json=request).json()
            fs = s3.filesystem()
            deadline = time.monotonic() + 60
            while not fs.exists(f"{version_dir}/part-00000.parquet"):
                assert time.monotonic() < deadline, "no part written"
                time.sleep(0.05)
            weed.kill()  # S3 is gone
            weed.wait()
            started = time.monotonic()
            failed = job_end(api, queued["dag_run_id"], timeout=120)
            assert failed["status"] == "failed" and failed["error"], failed
            assert time.monotonic() - started < 90
            assert api.get("/api/datasets/big").json()["status"] == "failed"

            with seaweedfs(folder, ports) as (s3_again, _):  # S3 is back, same data
                fs = s3_again.filesystem()
                deadline = time.monotonic() + 60
                while fs.exists(version_dir):
                    assert time.monotonic() < deadline, "the dead version's objects remain"
                    time.sleep(0.2)
                again = api.post("/api/datasets/unified", json=request).json()
                rebuilt = job_end(api, again["dag_run_id"], timeout=120)
                assert rebuilt["status"] == "success", rebuilt["error"]
                dataset = api.get("/api/datasets/big").json()
                assert (dataset["status"], dataset["row_count"]) == ("ready", ROWS)


def test_a_delete_whose_s3_is_away_is_finished_by_the_sweep_once_it_is_back(tmp_path):
    path, folder, ports = _source_and_s3_folder(tmp_path, 1_000)
    with seaweedfs(folder, ports) as (s3, weed):
        settings = fabric_settings(
            tmp_path / "home", sweep_seconds=0.5, **s3.settings_update("deleting")
        )
        with fabric_processes(settings, tmp_path / "logs"), gateway(settings) as api:
            table_id = _synced_table(api, path)
            request = {"name": "small", "selection_mode": "tables", "selected_tables": [table_id]}
            built = api.post("/api/datasets/unified", json=request).json()
            assert job_end(api, built["dag_run_id"])["status"] == "success"
            dataset_dir = f"{s3.bucket}/deleting/datasets/small"
            assert s3.filesystem().exists(f"{dataset_dir}/v1")

            weed.kill()  # S3 is gone
            weed.wait()
            refused = api.delete("/api/datasets/small")
            assert refused.status_code == 503, refused.text
            assert "marked for deletion" in refused.json()["detail"]
            assert api.get("/api/datasets/small").json()["status"] == "deleting"
            rebuild = api.post("/api/datasets/unified", json=request)
            assert rebuild.status_code == 409 and "being deleted" in rebuild.json()["detail"]

            with seaweedfs(folder, ports) as (s3_again, _):  # back: the sweep finishes it
                deadline = time.monotonic() + 60
                while api.get("/api/datasets/small").status_code != 404:
                    assert time.monotonic() < deadline, "the deletion was not finished"
                    time.sleep(0.2)
                assert not s3_again.filesystem().exists(f"{dataset_dir}/v1")
                again = api.post("/api/datasets/unified", json=request).json()
                assert job_end(api, again["dag_run_id"])["status"] == "success"
