"""The DAG files load in Airflow's DagBag with no errors, and their tasks use the pools."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

DAGS = Path(__file__).resolve().parents[2] / "airflow" / "dags"

_PROBE = """
import json, sys
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder=sys.argv[1], known_pools={"default_pool", "sync_pool", "dataset_pool"})
out = {"errors": {k: str(v) for k, v in bag.import_errors.items()},
       "warnings": [str(w) for w in getattr(bag, "dag_warnings", [])], "dags": {}}
for dag_id, dag in bag.dags.items():
    out["dags"][dag_id] = {
        "schedule": type(dag.timetable).__name__, "max_active_runs": dag.max_active_runs,
        "paused": dag.is_paused_upon_creation, "doc": bool(dag.doc_md),
        "params": sorted(dag.params.keys()),
        "tasks": {t.task_id: {"pool": t.pool, "retries": t.retries,
                              "backoff": t.retry_exponential_backoff,
                              "on_failure": bool(t.on_failure_callback)} for t in dag.tasks},
    }
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def dagbag(tmp_path_factory) -> dict:
    pytest.importorskip("airflow", reason="the airflow dependency group is not installed")
    home = tmp_path_factory.mktemp("airflow_home")
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "True",
    }
    result = subprocess.run(
        [sys.executable, "-c", _PROBE, str(DAGS)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_dags_load_without_errors_or_warnings(dagbag):
    assert dagbag["errors"] == {}
    assert dagbag["warnings"] == []
    assert set(dagbag["dags"]) == {"sync_data_connection", "create_unified_dataset"}


@pytest.mark.parametrize(
    ("dag_id", "task_id", "pool", "params"),
    [
        ("sync_data_connection", "sync_catalog", "sync_pool", ["connection_id", "job_id"]),
        ("create_unified_dataset", "build_dataset", "dataset_pool", ["job_id", "request"]),
    ],
)
def test_dag_settings(dagbag, dag_id, task_id, pool, params):
    dag = dagbag["dags"][dag_id]
    assert dag["schedule"] == "NullTimetable"  # schedule=None: only triggered runs
    assert dag["paused"] is False and dag["doc"] is True
    assert dag["max_active_runs"] >= 16  # the pools, not the DAG, bound concurrency
    assert dag["params"] == params
    assert dag["tasks"] == {
        task_id: {"pool": pool, "retries": 4, "backoff": True, "on_failure": True}
    }


def test_dag_files_are_declarations_of_job_kinds():
    for path in DAGS.glob("*.py"):
        imports = [
            line
            for line in path.read_text().splitlines()
            if line.startswith(("import ", "from ")) and "fabric" in line
        ]
        assert imports == [
            "from fabric_core.airflow_dag import job_dag",
            f"from fabric_core.job_kinds import {'SYNC' if 'sync' in path.name else 'DATASET'}",
        ], path.name


_HEAVY = ("polars", "pyarrow", "duckdb", "connectorx", "fastapi", "s3fs", "psycopg", "pymysql")


def test_parsing_a_dag_file_loads_no_heavy_library():
    """Airflow parses DAG files often: what they import stays light."""
    pytest.importorskip("airflow", reason="the airflow dependency group is not installed")
    probe = (
        "import runpy, sys; runpy.run_path(sys.argv[1]); "
        f"print(sorted(m for m in {_HEAVY!r} if m in sys.modules))"
    )
    for path in DAGS.glob("*.py"):
        result = subprocess.run(
            [sys.executable, "-c", probe, str(path)],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "AIRFLOW__CORE__UNIT_TEST_MODE": "True"},
        )
        assert result.returncode == 0, result.stderr[-2000:]
        assert result.stdout.strip().splitlines()[-1] == "[]", path.name
