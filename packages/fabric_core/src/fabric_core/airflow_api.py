"""A thin client of Airflow 3's REST API v2: JWT auth, DAG runs, pools, connections."""

from __future__ import annotations

import threading
from typing import Any
from urllib.parse import quote

import httpx
from tenacity import (
    retry,
    retry_if_exception_type,
    retry_if_not_exception_type,
    stop_after_attempt,
    wait_exponential,
)

from fabric_core.circuits import Circuit, guarded
from fabric_core.errors import (
    CircuitOpenError,
    ConflictError,
    DependencyError,
    NotFoundError,
    ServiceUnavailableError,
    ServiceUnreachableError,
)

_retry_unavailable = retry(
    # An open circuit answers at once and for a while: trying again at once cannot help.
    retry=retry_if_exception_type(ServiceUnavailableError)
    & retry_if_not_exception_type(CircuitOpenError),
    stop=stop_after_attempt(3),
    wait=wait_exponential(multiplier=0.2, max=2),
    reraise=True,
)


def _token_refused(response: httpx.Response) -> bool:
    # Airflow 3 answers 401 for a missing token and 403 "Invalid JWT token" for an expired one.
    return response.status_code == 401 or (
        response.status_code == 403 and "jwt" in response.text.lower()
    )


def _q(value: str) -> str:
    return quote(value, safe="")


class AirflowClient:
    """Calls Airflow's API with a cached JWT, fetching a new one when Airflow says 401."""

    def __init__(
        self,
        base_url: str,
        username: str,
        password: str,
        *,
        timeout: float = 10.0,
        circuit: Circuit | None = None,
    ) -> None:
        """``circuit``: Airflow's circuit breaker, if the calls go through one."""
        self.base_url = base_url.rstrip("/")
        self.circuit = circuit
        self._credentials = {"username": username, "password": password}
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout)
        self._token: str | None = None
        self._lock = threading.Lock()

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> AirflowClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        # Silence (or a proxy's 502/503/504) counts against the circuit; any other answer,
        # even a refusal, shows Airflow is there.
        with guarded(
            self.circuit,
            counts=ServiceUnreachableError,
            answered=(),
            secrets=[self._credentials["password"]],
        ):
            try:
                response = self._http.request(method, path, **kwargs)
            except httpx.TransportError as exc:
                raise ServiceUnreachableError(
                    f"Airflow at {self.base_url} did not answer ({type(exc).__name__}: {exc})."
                ) from None
            if response.status_code in (502, 503, 504):
                raise ServiceUnreachableError(
                    f"Airflow at {self.base_url} answered {response.status_code} to "
                    f"{method} {path}: {response.text[:300]}"
                )
            return response

    def _fresh_token(self) -> str:
        response = self._send("POST", "/auth/token", json=self._credentials)
        if response.status_code >= 500:
            raise ServiceUnavailableError(
                f"Airflow token endpoint answered {response.status_code}."
            )
        if response.status_code not in (200, 201):
            raise DependencyError(
                f"Airflow at {self.base_url} refused the credentials of "
                f"{self._credentials['username']!r} ({response.status_code})."
            )
        return response.json()["access_token"]

    def _authorized(self, force_new: bool = False) -> dict[str, str]:
        with self._lock:
            if self._token is None or force_new:
                self._token = self._fresh_token()
            return {"Authorization": f"Bearer {self._token}"}

    @_retry_unavailable
    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._send(method, path, headers=self._authorized(), **kwargs)
        if _token_refused(response):  # expired or rotated: one new token, one more try
            response = self._send(method, path, headers=self._authorized(True), **kwargs)
        if response.status_code >= 500:
            raise ServiceUnavailableError(
                f"Airflow answered {response.status_code} to {method} {path}: {response.text[:300]}"
            )
        if response.status_code == 404:
            raise NotFoundError(f"Airflow: {method} {path} not found: {response.text[:300]}")
        if response.status_code == 409:
            raise ConflictError(f"Airflow: {method} {path} conflicts: {response.text[:300]}")
        if response.status_code >= 400:
            raise DependencyError(
                f"Airflow refused {method} {path} ({response.status_code}): {response.text[:500]}"
            )
        return response.json() if response.content else None

    def health(self) -> dict[str, Any]:
        response = self._send("GET", "/api/v2/monitor/health")
        if response.status_code != 200:
            raise ServiceUnavailableError(f"Airflow health answered {response.status_code}.")
        return response.json()

    def trigger_dag_run(self, dag_id: str, run_id: str, conf: dict[str, Any]) -> dict[str, Any]:
        """Start a run with our job id as its run id (a repeated call finds the same run)."""
        try:
            return self.request(
                "POST",
                f"/api/v2/dags/{_q(dag_id)}/dagRuns",
                json={"dag_run_id": run_id, "logical_date": None, "conf": conf},
            )
        except ConflictError:
            return self.dag_run(dag_id, run_id)

    def dag_run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        return self.request("GET", f"/api/v2/dags/{_q(dag_id)}/dagRuns/{_q(run_id)}")

    def fail_dag_run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        """Mark a run failed, which stops its running tasks."""
        return self.request(
            "PATCH", f"/api/v2/dags/{_q(dag_id)}/dagRuns/{_q(run_id)}", json={"state": "failed"}
        )

    def task_instances(self, dag_id: str, run_id: str = "~") -> list[dict[str, Any]]:
        answer = self.request(
            "GET",
            f"/api/v2/dags/{_q(dag_id)}/dagRuns/{_q(run_id)}/taskInstances",
            params={"limit": 1000},
        )
        return answer["task_instances"]

    def upsert_pools(self, pools: dict[str, int]) -> None:
        """Create the pools or set their sizes (idempotent). Deferred tasks count in the
        pools: a job waiting on the triggerer still holds its pool slot (so the pool bounds
        the jobs in the services) but no worker slot."""
        entities = [
            {"name": name, "slots": slots, "include_deferred": True}
            for name, slots in pools.items()
        ]
        self._bulk("/api/v2/pools", entities)

    def upsert_connections(self, connections: list[dict[str, Any]]) -> None:
        """Create the connections or overwrite them (idempotent)."""
        self._bulk("/api/v2/connections", connections)

    def _bulk(self, path: str, entities: list[dict[str, Any]]) -> None:
        answer = self.request(
            "PATCH",
            path,
            json={
                "actions": [
                    {"action": "create", "action_on_existence": "overwrite", "entities": entities}
                ]
            },
        )
        errors = (answer or {}).get("create", {}).get("errors") or []
        if errors:
            raise DependencyError(f"Airflow refused some of {path}: {errors}")

    def pools(self) -> dict[str, int]:
        answer = self.request("GET", "/api/v2/pools", params={"limit": 100})
        return {pool["name"]: pool["slots"] for pool in answer["pools"]}
