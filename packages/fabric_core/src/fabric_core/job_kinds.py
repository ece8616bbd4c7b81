"""Job kinds: each is one declaration, and one runner, one pair of service routes, one task
function and one poll helper serve them all (the recipe for a new kind is in
docs/architecture.md).

This module stays light (no database drivers, polars or web framework): the Airflow DAG files
import it when they are parsed. The work and secrets functions are named by import path and
loaded only where a job runs, in its service.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError

from fabric_core.errors import InvalidInputError
from fabric_core.schemas import DatasetJobRequest, DatasetRequest, SyncJobRequest, SyncParams
from fabric_core.settings import Settings


@dataclass(frozen=True)
class JobKind:
    """Everything that differs between kinds of jobs."""

    name: str
    """``jobs.kind`` of its rows."""
    id_prefix: Callable[[Any], str]
    """The job id's prefix for the job's params; ``_{unix_ts}`` follows."""
    dag_id: str
    task_id: str
    pool: str
    """The Airflow pool (and the local orchestrator's pool of the same name)."""
    pool_slots_setting: str
    """The setting that sizes the pool."""
    service: str
    """The Fabric service that runs it: ``sync`` or ``dataset``."""
    workers_setting: str
    """The setting that sizes the service's worker pool."""
    process_path: str
    """The service's route that accepts a queued job."""
    params_schema: type[BaseModel]
    """What the job works on, as stored in the job row's ``params``."""
    request_schema: type[BaseModel]
    """The body of ``process_path``: ``job_id`` and the params."""
    work: str
    """``module:function(context, params) -> stats``: the work, loaded where it runs."""
    secrets: str
    """``module:function(session, params, box) -> [secret]``: what its errors must not show."""
    dag_params: Mapping[str, dict[str, Any]] = field(default_factory=dict)
    """JSON-schema of the DAG run's conf besides ``job_id``."""
    conf_key: str | None = None
    """Where the params sit in a DAG run's conf: at the top level (None) or under this key."""
    sweep: str | None = None
    """``module:function(runtime)``: what the kind's service clears up on its recovery sweep
    (after failing stale jobs), such as files of versions whose build died."""
    on_end: str | None = None
    """``module:function(session, job, status)``: what else a job's end changes, in the same
    transaction (whoever ends it: its worker, a cancel, the stale-job check, a failed task)."""
    source_kinds_at_start: tuple[str, ...] = ()
    """Source kinds whose connectors (and drivers) the service loads at start-up rather than in
    its first job that reaches them."""

    def new_params(self, raw: Mapping[str, Any]) -> BaseModel:
        try:
            return self.params_schema.model_validate(raw)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in error['loc']) or 'params'}: {error['msg']}"
                for error in exc.errors()
            )
            raise InvalidInputError(f"Invalid params for a {self.name} job: {problems}") from None

    def params_of(self, job: Any) -> BaseModel:
        """A job row's params; a field the row keeps in a column of its own (``connection_id``)
        comes from that column when the params leave it out."""
        raw = dict(job.params or {})
        for name in self.params_schema.model_fields:
            if name not in raw and getattr(job, name, None) is not None:
                raw[name] = getattr(job, name)
        return self.new_params(raw)

    def request_body(self, job_id: str, params: Mapping[str, Any]) -> dict[str, Any]:
        return {**params, "job_id": job_id}

    def dag_conf(self, job_id: str, params: Mapping[str, Any]) -> dict[str, Any]:
        if self.conf_key is None:
            return {"job_id": job_id, **params}
        return {"job_id": job_id, self.conf_key: dict(params)}

    def params_from_conf(self, conf: Mapping[str, Any]) -> dict[str, Any]:
        if self.conf_key is None:
            return {key: conf[key] for key in self.dag_params}
        return dict(conf[self.conf_key])

    def pool_slots(self, settings: Settings) -> int:
        return getattr(settings, self.pool_slots_setting)

    def workers(self, settings: Settings) -> int:
        return getattr(settings, self.workers_setting)

    def service_url(self, settings: Settings) -> str:
        return settings.service_url(self.service)

    def airflow_connection_id(self) -> str:
        """The Airflow HTTP connection that may point the task at the service."""
        return f"fabric_{self.service}"

    def work_function(self) -> Callable[..., dict[str, Any] | None]:
        return _load(self.work)

    def secrets_function(self) -> Callable[..., list[str | None]]:
        return _load(self.secrets)

    def load_at_start(self) -> None:
        """What the kind's service loads before its first job: the work, its secrets and the
        drivers of ``source_kinds_at_start`` (their libraries take a good second to import)."""
        from fabric_core.connectors import get_connector  # not when DAG files are parsed

        self.work_function()
        self.secrets_function()
        for source_kind in self.source_kinds_at_start:
            get_connector(source_kind)

    def on_end_function(self) -> Callable[..., None]:
        return _load(self.on_end) if self.on_end else _nothing

    def sweep_function(self) -> Callable[..., None]:
        return _load(self.sweep) if self.sweep else _nothing


def _nothing(*_args: Any) -> None:
    return None


def _load(path: str) -> Callable[..., Any]:
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


# psycopg alone took 0.3 s of a service's first sync (8 MB). The S3 kind stays loaded on first
# use: s3fs and botocore take 2 s and 64 MB, for teams that may have no files on S3.
SQL_SOURCE_KINDS = ("postgresql", "mysql", "sqlite")

SYNC = JobKind(
    name="sync",
    id_prefix=lambda params: f"sync_{params.connection_id}",
    dag_id="sync_data_connection",
    task_id="sync_catalog",
    pool="sync_pool",
    pool_slots_setting="sync_pool_slots",
    service="sync",
    workers_setting="sync_workers",
    process_path="/process-sync",
    params_schema=SyncParams,
    request_schema=SyncJobRequest,
    work="fabric_core.sync_jobs:sync_work",
    secrets="fabric_core.sync_jobs:sync_secrets",
    source_kinds_at_start=SQL_SOURCE_KINDS,
    dag_params={
        "connection_id": {"type": "integer", "minimum": 1, "description": "Data connection id"}
    },
    sweep="fabric_core.drift.retention:purge_resolved_drift",
)

DATASET = JobKind(
    name="dataset",
    id_prefix=lambda params: f"dataset_{params.name}",
    dag_id="create_unified_dataset",
    task_id="build_dataset",
    pool="dataset_pool",
    pool_slots_setting="dataset_pool_slots",
    service="dataset",
    workers_setting="dataset_workers",
    process_path="/process-dataset-creation",
    params_schema=DatasetRequest,
    request_schema=DatasetJobRequest,
    work="fabric_core.dataset_jobs:dataset_work",
    secrets="fabric_core.dataset_jobs:dataset_secrets",
    source_kinds_at_start=SQL_SOURCE_KINDS,
    dag_params={"request": {"type": "object", "description": "The dataset request"}},
    conf_key="request",
    on_end="fabric_core.dataset_states:dataset_job_ended",
    sweep="fabric_core.dataset_jobs:sweep_datasets",
)

JOB_KINDS: dict[str, JobKind] = {kind.name: kind for kind in (SYNC, DATASET)}


def job_kind(name: str) -> JobKind:
    try:
        return JOB_KINDS[name]
    except KeyError:
        raise InvalidInputError(f"Unknown job kind {name!r}.") from None
