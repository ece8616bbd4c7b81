"""The DAG of a job kind, for Airflow's DAG files: one task in the kind's pool that runs
:func:`fabric_core.job_tasks.run_job_task`, retried while its error may pass.

Imported by Airflow when it parses the DAG files, so it stays light: Airflow's SDK, the job
kinds and the task code, no database drivers or dataframe libraries.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.sdk import Connection, Param, dag, task
from airflow.sdk.exceptions import AirflowFailException

from fabric_core.errors import FabricError
from fabric_core.job_kinds import JobKind
from fabric_core.job_tasks import record_task_failure, run_job_task
from fabric_core.settings import Settings

MAX_RETRY_DELAY = timedelta(minutes=5)


def service_endpoint(kind: JobKind) -> tuple[str | None, str | None]:
    """The service's base URL and token from its Airflow HTTP connection (the token is the
    connection's password), if one is set up; ``None`` leaves it to the FABRIC_* settings."""
    try:
        conn = Connection.get(kind.airflow_connection_id())
    except Exception:  # not set up: the FABRIC_*_URL and FABRIC_SERVICE_TOKEN settings decide
        return None, None
    return f"{conn.schema or 'http'}://{conn.host}:{conn.port}", conn.password or None


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
        @task(
            task_id=kind.task_id,
            pool=kind.pool,
            retries=settings.task_retries,
            retry_delay=timedelta(seconds=settings.task_retry_delay_seconds),
            retry_exponential_backoff=True,
            max_retry_delay=MAX_RETRY_DELAY,
            on_failure_callback=record_failure,
        )
        def run(params=None) -> dict:
            url, token = service_endpoint(kind)
            try:
                return run_job_task(
                    kind,
                    params["job_id"],
                    kind.params_from_conf(params),
                    settings=settings,
                    service_url=url,
                    service_token=token,
                )
            except FabricError as exc:
                if exc.retryable:
                    raise  # Airflow retries with exponential backoff
                raise AirflowFailException(exc.message) from exc

        run()

    return job_runs()
