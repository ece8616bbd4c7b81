"""HTTP clients of Fabric's services and the task code that drives a job through one.

The local orchestrator and the Airflow DAGs call the same :func:`run_sync_task`, so a job
behaves the same whichever orchestrator runs it.
"""

from __future__ import annotations

import time
from typing import Any

import httpx

from fabric_core.errors import (
    ConflictError,
    FabricError,
    InvalidInputError,
    NotFoundError,
    ServiceUnavailableError,
)
from fabric_core.schemas import TERMINAL_STATUSES


class JobFailedError(FabricError):
    """The service ran the job and it ended failed or cancelled."""


class ServiceClient:
    """A thin JSON client of one Fabric service."""

    def __init__(self, base_url: str, *, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ServiceClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise ServiceUnavailableError(
                f"Fabric service at {self.base_url} did not answer ({type(exc).__name__}: {exc})."
            ) from None
        if response.status_code >= 500:
            raise ServiceUnavailableError(
                f"Fabric service at {self.base_url} answered {response.status_code} "
                f"to {method} {path}: {response.text[:500]}"
            )
        if response.status_code >= 400:
            detail = _detail(response)
            error_class = {404: NotFoundError, 409: ConflictError}.get(
                response.status_code, InvalidInputError
            )
            raise error_class(f"{method} {path} refused ({response.status_code}): {detail}")
        return response.json()

    def health(self) -> dict[str, Any]:
        return self.request("GET", "/health")

    def job_status(self, job_id: str) -> dict[str, Any]:
        return self.request("GET", f"/status/{job_id}")

    def wait_for_job(
        self, job_id: str, *, poll_interval: float = 0.5, timeout: float | None = None
    ) -> dict[str, Any]:
        """Poll ``/status/{job_id}`` until the job ends; returns its last status."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            status = self.job_status(job_id)
            if status["status"] in TERMINAL_STATUSES:
                return status
            if deadline is not None and time.monotonic() > deadline:
                raise ServiceUnavailableError(
                    f"Job {job_id} still {status['status']} after {timeout} s."
                )
            time.sleep(poll_interval)


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:500]
    return str(body.get("detail", body)) if isinstance(body, dict) else str(body)


class SyncServiceClient(ServiceClient):
    def submit_sync(self, job_id: str, connection_id: int) -> dict[str, Any]:
        return self.request(
            "POST", "/process-sync", json={"job_id": job_id, "connection_id": connection_id}
        )


class DatasetServiceClient(ServiceClient):
    def submit_dataset(self, job_id: str, request: dict[str, Any]) -> dict[str, Any]:
        return self.request("POST", "/process-dataset-creation", json={**request, "job_id": job_id})

    def preview(self, request: dict[str, Any]) -> dict[str, Any]:
        return self.request("POST", "/preview-dataset-creation", json=request)


def run_dataset_task(
    client: DatasetServiceClient,
    job_id: str,
    request: dict[str, Any],
    *,
    poll_interval: float = 0.5,
    timeout: float | None = None,
) -> dict[str, Any]:
    """Submit a dataset job to the dataset service and wait for its end (see run_sync_task)."""
    client.submit_dataset(job_id, request)
    return _ended_well(client.wait_for_job(job_id, poll_interval=poll_interval, timeout=timeout))


def _ended_well(status: dict[str, Any]) -> dict[str, Any]:
    if status["status"] != "success":
        raise JobFailedError(f"Job {status['id']} {status['status']}: {status.get('error')}")
    return status


def run_sync_task(
    client: SyncServiceClient,
    job_id: str,
    connection_id: int,
    *,
    poll_interval: float = 0.5,
    timeout: float | None = None,
) -> dict[str, Any]:
    """Submit a sync job to the sync service and wait for its end, holding the caller's slot.

    Raises:
        JobFailedError: the job ended failed or cancelled (its message says why).
        ServiceUnavailableError: the service did not answer (retryable).
    """
    client.submit_sync(job_id, connection_id)
    return _ended_well(client.wait_for_job(job_id, poll_interval=poll_interval, timeout=timeout))
