"""Fabric's exception tree: each class carries its HTTP status and whether a retry may help.

FabricError                       (never raised itself)
├── NotFoundError            404  the id names nothing
├── ConflictError            409  clashes with existing state (duplicate name, busy)
├── InvalidInputError        422  the request is well-formed but makes no sense
├── SourceError              422  a data source could not be used
│   ├── SourceUnreachableError    422, retryable: no answer, refused, timed out
│   └── SourceAuthError           422: the source refused the credentials
├── JobEndedError            409  a job did not end well
│   ├── JobCancelledError         it was cancelled (its worker stops at the next boundary)
│   └── JobFailedError            it ended failed or cancelled while a task waited for it
├── DependencyError          502  a system Fabric relies on (Airflow) refused a request
├── ServiceUnavailableError  503, retryable: a Fabric service or Airflow did not answer
│   ├── ServiceUnreachableError   no answer at all (refused, timed out), or a proxy's 502/503/504
│   └── CircuitOpenError          503, retryable: a circuit is open after repeated connection
│                                 failures (a source, a service, Airflow): not tried at all
└── ConfigurationError       503  Fabric is set up wrongly (a secret key that does not fit,
                                  no DAG folder, a missing optional package)

Every web app maps the tree to HTTP with one handler (``fabric_web.errors``); Airflow tasks
fail at once on an error that is not ``retryable`` and retry the others.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any


class FabricError(Exception):
    """Root of Fabric's errors."""

    status_code = 500
    retryable = False

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def answer_fields(self) -> dict[str, Any]:
        """Fields an HTTP answer carries beside ``detail``."""
        return {}


class NotFoundError(FabricError):
    status_code = 404


class ConflictError(FabricError):
    status_code = 409


class DriftRefusedError(ConflictError):
    """A build reading columns with open breaking drift, not allowed to."""

    def __init__(self, message: str, attention_reasons: list[str]) -> None:
        super().__init__(message)
        self.attention_reasons = attention_reasons

    def answer_fields(self) -> dict[str, Any]:
        return {"attention_reasons": self.attention_reasons}


class InvalidInputError(FabricError):
    status_code = 422


class SourceError(FabricError):
    status_code = 422


class SourceUnreachableError(SourceError):
    retryable = True


class SourceAuthError(SourceError):
    pass


class JobEndedError(FabricError):
    status_code = 409


class JobCancelledError(JobEndedError):
    pass


class JobFailedError(JobEndedError):
    pass


class DependencyError(FabricError):
    status_code = 502


class ServiceUnavailableError(FabricError):
    status_code = 503
    retryable = True

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        # Seconds after which a try may pass, when known: answered as ``Retry-After``.
        self.retry_after = retry_after


class ServiceUnreachableError(ServiceUnavailableError):
    """Nothing answered (or only a proxy in front of it): what counts against a service's
    circuit, unlike a 5xx the service answered itself."""


class CircuitOpenError(ServiceUnavailableError):
    """The call was not made: its circuit (fabric_core.circuits) is open; the message names
    the circuit and when a call is let through again (``retry_at``, so a job's next attempt
    is not spent on a circuit still open)."""

    def __init__(self, message: str, retry_at: datetime | None = None) -> None:
        seconds = None
        if retry_at is not None:
            seconds = max((retry_at - datetime.now(retry_at.tzinfo)).total_seconds(), 0.0)
        super().__init__(message, retry_after=seconds)
        self.retry_at = retry_at


class ConfigurationError(FabricError):
    status_code = 503
