"""The deferrable operator of Fabric's DAGs: it hands the job to its service, then defers to
:class:`fabric_core.airflow_trigger.FabricJobTrigger`, which waits on the triggerer. A job
that waits (queued, running, or queued again for a later attempt) holds no worker slot; with
pools created with ``include_deferred=True`` it still holds its pool slot, so the pools keep
bounding the jobs in the services.

The job's attempts follow the retry policy stored on the job (the service queues it again and
the trigger says when to hand it over); Airflow's own task retries are left for the
orchestration (the service did not answer).
"""

from __future__ import annotations

import time
from typing import Any

from airflow.sdk import BaseOperator, Connection
from airflow.sdk.exceptions import AirflowFailException

from fabric_core.airflow_trigger import FabricJobTrigger
from fabric_core.clients import ServiceClient
from fabric_core.errors import FabricError, ServiceUnavailableError
from fabric_core.job_kinds import JOB_KINDS, JobKind
from fabric_core.settings import Settings


def service_endpoint(kind: JobKind) -> tuple[str | None, str | None]:
    """The service's base URL and token from its Airflow HTTP connection (the token is the
    connection's password), if one is set up; ``None`` leaves it to the FABRIC_* settings."""
    try:
        conn = Connection.get(kind.airflow_connection_id())
    except Exception:  # not set up: the FABRIC_*_URL and FABRIC_SERVICE_TOKEN settings decide
        return None, None
    return f"{conn.schema or 'http'}://{conn.host}:{conn.port}", conn.password or None


class FabricJobOperator(BaseOperator):
    """Run the Fabric job named by the DAG run's ``job_id`` param, of kind ``kind_name``."""

    ui_color = "#e8f4ff"

    def __init__(self, *, kind_name: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.kind_name = kind_name

    def execute(self, context: Any) -> None:
        self._hand_over(context)

    def resume(self, context: Any, event: dict[str, Any] | None = None) -> dict[str, Any]:
        """Called on a worker when the trigger fired: done, or hand the job over again."""
        job_id = context["params"]["job_id"]
        event = event or {}
        if event.get("event") == "hand_over":
            self._hand_over(context)  # defers again; does not return
        if event.get("event") == "unreachable":
            raise ServiceUnavailableError(event["error"])  # retryable: Airflow's task retry
        status = event.get("status")
        if status != "success":
            raise AirflowFailException(f"Job {job_id} {status}: {event.get('error')}")
        return {"id": job_id, "status": status}

    def _hand_over(self, context: Any) -> None:
        kind = JOB_KINDS[self.kind_name]
        settings = Settings()
        params = context["params"]
        job_id = params["job_id"]
        url, token = service_endpoint(kind)
        url = url or kind.service_url(settings)
        try:
            with ServiceClient(url, token or settings.resolved_service_token()) as client:
                client.submit_job(kind, job_id, kind.params_from_conf(params))
        except FabricError as exc:
            if exc.retryable:
                raise  # Airflow retries the task with exponential backoff
            raise AirflowFailException(exc.message) from exc
        self.defer(
            trigger=FabricJobTrigger(
                job_id=job_id,
                service_url=url,
                connection_id=kind.airflow_connection_id(),
                handed_over_at=time.time(),
                poll_interval=settings.job_poll_interval,
                handover_seconds=settings.job_handover_seconds,
            ),
            method_name="resume",
        )
