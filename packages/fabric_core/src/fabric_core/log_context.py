"""What every log line of Fabric's work says about its context, and how lines are written.

The request id, job id and DAG run id live in context variables: bound where a request or a
job's work starts, they ride along into the threads the work runs on (a job pool copies the
submitter's context), so every line of one job's work can be found by its id, in text or JSON
lines (``FABRIC_LOG_FORMAT=json``).
"""

from __future__ import annotations

import logging
import logging.config
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Literal

LogFormat = Literal["text", "json"]
CONTEXT_FIELDS = ("request_id", "job_id", "dag_run_id")

_context: dict[str, ContextVar[str | None]] = {
    name: ContextVar(name, default=None) for name in CONTEXT_FIELDS
}


def current(name: str) -> str | None:
    """The bound value of one of :data:`CONTEXT_FIELDS` (None when unbound)."""
    return _context[name].get()


@contextmanager
def bound(**fields: str | None) -> Iterator[None]:
    """Bind context fields (``request_id``, ``job_id``, ``dag_run_id``) for the block."""
    tokens = [(_context[name], _context[name].set(value)) for name, value in fields.items()]
    try:
        yield
    finally:
        for variable, token in reversed(tokens):
            variable.reset(token)


def job_fields(job_id: str, orchestrator: str | None) -> dict[str, str | None]:
    """A job's context fields; an Airflow job's DAG run is named by the job id."""
    return {"job_id": job_id, "dag_run_id": job_id if orchestrator == "airflow" else None}


class ContextFilter(logging.Filter):
    """Adds the bound context fields (None when unbound) and the service name to each record."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def filter(self, record: logging.LogRecord) -> bool:
        record.service = self.service
        for name in CONTEXT_FIELDS:
            setattr(record, name, _context[name].get())
        return True


class TextFormatter(logging.Formatter):
    """``time level logger message`` with the bound context fields that are set."""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        context = " ".join(
            f"{name}={value}"
            for name in CONTEXT_FIELDS
            if (value := getattr(record, name, None)) is not None
        )
        return f"{line} [{context}]" if context else line


def logging_config(service: str, log_format: LogFormat, level: str) -> dict[str, Any]:
    """A :func:`logging.config.dictConfig` for one process: Fabric's and uvicorn's loggers write
    to stderr through one handler, in text or JSON lines."""
    if log_format == "json":
        # Context fields always appear (null when unbound), so filters can rely on them.
        formatter: dict[str, Any] = {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": " ".join(
                f"%({name})s"
                for name in ("asctime", "levelname", "name", "message", "service", *CONTEXT_FIELDS)
            ),
            "datefmt": "%Y-%m-%dT%H:%M:%S%z",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        }
    else:
        formatter = {
            "()": "fabric_core.log_context.TextFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s: %(message)s",
        }
    handler = {
        "class": "logging.StreamHandler",
        "stream": "ext://sys.stderr",
        "formatter": "fabric",
        "filters": ["context"],
    }
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"context": {"()": ContextFilter, "service": service}},
        "formatters": {"fabric": formatter},
        "handlers": {"stderr": handler},
        "root": {"handlers": ["stderr"], "level": level},
        "loggers": {
            "uvicorn": {"handlers": ["stderr"], "level": level, "propagate": False},
            "uvicorn.error": {"level": level},
            "uvicorn.access": {"handlers": ["stderr"], "level": level, "propagate": False},
        },
    }
