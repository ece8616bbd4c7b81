"""Fabric's exception tree. Each app maps it to HTTP in one place.

FabricError
├── NotFoundError            404: the id names nothing
├── ConflictError            409: clashes with existing state (duplicate name, busy)
├── InvalidInputError        422: the request is well-formed but makes no sense
├── SourceError              a data source could not be used
│   ├── SourceUnreachableError   (retryable) no answer, refused, timed out
│   └── SourceAuthError          the source refused the credentials
└── ServiceUnavailableError  (retryable) a Fabric service did not answer
"""

from __future__ import annotations


class FabricError(Exception):
    """Root of Fabric's errors; ``retryable`` says whether trying again may help."""

    retryable = False

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFoundError(FabricError):
    pass


class ConflictError(FabricError):
    pass


class InvalidInputError(FabricError):
    pass


class SourceError(FabricError):
    pass


class SourceUnreachableError(SourceError):
    retryable = True


class SourceAuthError(SourceError):
    pass


class ServiceUnavailableError(FabricError):
    retryable = True


class JobCancelledError(FabricError):
    pass
