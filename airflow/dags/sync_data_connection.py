"""
### Sync a data connection's catalog

Triggered by the Fabric gateway (`POST /api/data-connections/{id}/sync`) with
`conf = {"job_id": "sync_<id>_<ts>", "connection_id": <id>}`.

One task in pool **`sync_pool`** (3 slots) submits the job to the sync service and waits for
it to end while holding its slot, so the pool bounds the syncs running in the service.
Unreachable services and 5xx answers are retried with exponential backoff; bad input or a
source that refuses the credentials fails at once. A retry never runs a job twice. When the
task finally fails, the Fabric job row is marked failed with the reason.
"""

from __future__ import annotations

import os
from datetime import timedelta

from airflow.sdk import Param, dag, task

POOL = "sync_pool"
RETRIES = int(os.environ.get("FABRIC_TASK_RETRIES", "4"))
RETRY_DELAY = timedelta(seconds=float(os.environ.get("FABRIC_TASK_RETRY_DELAY_SECONDS", "10")))


def _service_url(connection_class, conn_id: str) -> str | None:
    """The service's base URL from an Airflow HTTP connection, if one is set up."""
    try:
        conn = connection_class.get(conn_id)
    except Exception:  # not set up: the FABRIC_*_URL settings decide
        return None
    return f"{conn.schema or 'http'}://{conn.host}:{conn.port}"


def _record_failure(context) -> None:
    from fabric_core.airflow_tasks import mark_job_failed

    job_id = context["params"]["job_id"]
    mark_job_failed(job_id, f"Airflow task failed: {context.get('exception')}")


@dag(
    dag_id="sync_data_connection",
    schedule=None,
    catchup=False,
    is_paused_upon_creation=False,
    max_active_runs=64,
    tags=["fabric"],
    params={
        "job_id": Param(type="string", minLength=1, description="Fabric job id"),
        "connection_id": Param(type="integer", minimum=1, description="Data connection id"),
    },
    doc_md=__doc__,
)
def sync_data_connection():
    @task(
        pool=POOL,
        retries=RETRIES,
        retry_delay=RETRY_DELAY,
        retry_exponential_backoff=True,
        max_retry_delay=timedelta(minutes=5),
        on_failure_callback=_record_failure,
    )
    def sync_catalog(params=None) -> dict:
        """Submit the sync job to the sync service and wait for it to end."""
        from airflow.sdk import Connection
        from airflow.sdk.exceptions import AirflowFailException
        from fabric_core.airflow_tasks import PermanentTaskError, sync_connection_task

        url = _service_url(Connection, "fabric_sync")
        try:
            return sync_connection_task(
                params["job_id"], int(params["connection_id"]), sync_url=url
            )
        except PermanentTaskError as exc:
            raise AirflowFailException(str(exc)) from exc

    sync_catalog()


sync_data_connection()
