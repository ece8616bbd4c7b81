"""The HTTP client of Fabric's services."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from fabric_core import log_context
from fabric_core.bearer import bearer_header
from fabric_core.circuits import Circuit, CircuitBreaker, guarded, service_circuit
from fabric_core.errors import (
    ConfigurationError,
    ConflictError,
    FabricError,
    InvalidInputError,
    NotFoundError,
    ServiceUnavailableError,
    ServiceUnreachableError,
)
from fabric_core.job_kinds import JobKind
from fabric_core.polling import wait_for_job_end
from fabric_core.settings import Settings


class ServiceClient:
    """A thin JSON client of one Fabric service; its errors are Fabric's errors."""

    def __init__(
        self, base_url: str, token: str, *, timeout: float = 10.0, circuit: Circuit | None = None
    ) -> None:
        """``token``: the service token (``Settings.resolved_service_token()``); ``circuit``:
        the service's circuit breaker, if its calls go through one."""
        self.base_url = base_url.rstrip("/")
        self.circuit = circuit
        self._http = httpx.Client(
            base_url=self.base_url,
            timeout=timeout,
            headers=bearer_header(token),
        )

    @classmethod
    def of_service(
        cls,
        settings: Settings,
        service: str,
        *,
        timeout: float = 10.0,
        circuits: CircuitBreaker | None = None,
    ) -> ServiceClient:
        """A client of the service named ``sync`` or ``dataset``, as the settings name it,
        through its circuit ``service:{service}`` when ``circuits`` is given."""
        return cls(
            settings.service_url(service),
            settings.resolved_service_token(),
            timeout=timeout,
            circuit=circuits.circuit(service_circuit(service)) if circuits else None,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ServiceClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        # Only silence counts against the circuit: any answer of the service itself, even an
        # error (a source's open circuit is a 503 of the dataset service), shows it is up.
        with guarded(self.circuit, counts=ServiceUnreachableError, answered=FabricError):
            return self._request(method, path, **kwargs)

    def _request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        # The caller's request id goes along, so the service's log lines of this call (and of
        # the job it runs) carry the id the user saw.
        if (request_id := log_context.current("request_id")) is not None:
            kwargs["headers"] = {"X-Request-ID": request_id, **kwargs.get("headers", {})}
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise ServiceUnreachableError(
                f"Fabric service at {self.base_url} did not answer ({type(exc).__name__}: {exc})."
            ) from None
        if _proxy_says_down(response):
            raise ServiceUnreachableError(
                f"Fabric service at {self.base_url} is not there: {response.status_code} "
                f"to {method} {path}: {response.text[:300]}"
            )
        if response.status_code >= 500:
            raise ServiceUnavailableError(
                f"Fabric service at {self.base_url} answered {response.status_code} "
                f"to {method} {path}: {response.text[:500]}",
                retry_after=_retry_after(response),
            )
        if response.status_code == 401:
            # Not retryable: a wrong token stays wrong until the deployment is fixed.
            raise ConfigurationError(
                f"Fabric service at {self.base_url} refused the service token: "
                "FABRIC_SERVICE_TOKEN (or the service.token file) differs between processes."
            )
        if response.status_code >= 400:
            detail = _detail(response)
            error_class = {404: NotFoundError, 409: ConflictError}.get(
                response.status_code, InvalidInputError
            )
            raise error_class(f"{method} {path} refused ({response.status_code}): {detail}")
        return response.json()

    def observe(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        """A call that is never refused by the circuit nor counted against it, but whose
        answer closes it: status polls while a job runs, which wait out a restarting service
        on their own terms."""
        try:
            answer = self._request(method, path, **kwargs)
        except ServiceUnreachableError:
            raise
        except FabricError:  # an error answer is an answer
            if self.circuit is not None:
                self.circuit.succeeded()
            raise
        if self.circuit is not None:
            self.circuit.succeeded()
        return answer

    def health(self) -> dict[str, Any]:
        return self.request("GET", "/health")

    def submit_job(self, kind: JobKind, job_id: str, params: Mapping[str, Any]) -> dict[str, Any]:
        """Hand a queued job to the service; a job it already knows is not run again."""
        return self.request("POST", kind.process_path, json=kind.request_body(job_id, params))

    def job_status(self, job_id: str) -> dict[str, Any]:
        return self.observe("GET", f"/status/{job_id}")

    def wait_for_job(
        self, job_id: str, *, poll_interval: float = 0.5, timeout: float | None = None
    ) -> dict[str, Any]:
        """Poll ``/status/{job_id}`` until the job ends; returns its last status."""
        return wait_for_job_end(
            lambda: self.job_status(job_id), poll_interval=poll_interval, timeout=timeout
        )


def _proxy_says_down(response: httpx.Response) -> bool:
    """A 502, 503 or 504 that is not a Fabric error answer (JSON with ``detail``): what a proxy
    or load balancer answers when the service behind it is not there."""
    if response.status_code not in (502, 503, 504):
        return False
    try:
        body = response.json()
    except ValueError:
        return True
    return not (isinstance(body, dict) and "detail" in body)


def _retry_after(response: httpx.Response) -> float | None:
    """The service's ``Retry-After`` in seconds (Fabric sends seconds, never a date)."""
    try:
        return float(response.headers["retry-after"])
    except (KeyError, ValueError):
        return None


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:500]
    return str(body.get("detail", body)) if isinstance(body, dict) else str(body)
