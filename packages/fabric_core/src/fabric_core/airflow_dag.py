"""The DAG of a job kind, for Airflow's DAG files: one deferrable task in the kind's pool
(:class:`fabric_core.airflow_operator.FabricJobOperator`) that hands the job to its service and
waits for it on the triggerer.

The job's own attempts follow the retry policy stored on the job; the task's retries
(FABRIC_TASK_RETRIES) are for the orchestration only: the service did not answer.

Imported by Airflow when it parses the DAG files, so it stays light: Airflow's SDK, the job
kinds and the task code, no database drivers or dataframe libraries.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.sdk import Param, dag

from fabric_core.airflow_operator import FabricJobOperator
from fabric_core.job_kinds import JobKind
from fabric_core.job_tasks import record_task_failure
from fabric_core.settings import Settings

MAX_RETRY_DELAY = timedelta(minutes=5)


def record_failure(context: dict[str, Any]) -> None:
    """``on_failure_callback``: the job row says why the task finally failed."""
    record_task_failure(
        context["params"]["job_id"], f"Airflow task failed: {context.get('exception')}"
    )


def job_dag(kind: JobKind, doc_md: str):
    """The DAG ``kind.dag_id``: triggered with ``conf = kind.dag_conf(job_id, params)``."""
    settings = Settings()
    params = {"job_id": Param(type="string", minLength=1, description="Fabric job id")}
    params |= {name: Param(**schema) for name, schema in kind.dag_params.items()}

    @dag(
        dag_id=kind.dag_id,
        schedule=None,
        catchup=False,
        is_paused_upon_creation=False,
        max_active_runs=64,  # the pool, not the DAG, bounds concurrency
        tags=["fabric"],
        params=params,
        doc_md=doc_md,
    )
    def job_runs():
        FabricJobOperator(
            task_id=kind.task_id,
            kind_name=kind.name,
            pool=kind.pool,
            retries=settings.task_retries,
            retry_delay=timedelta(seconds=settings.task_retry_delay_seconds),
            retry_exponential_backoff=True,
            max_retry_delay=MAX_RETRY_DELAY,
            on_failure_callback=record_failure,
        )

    return job_runs()
