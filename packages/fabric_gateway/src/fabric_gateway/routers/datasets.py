"""Unified datasets: create (queue a build), plan (dry run), preview, list, describe, read,
compare versions, delete."""

from __future__ import annotations

from fabric_core.clients import ServiceClient
from fabric_core.dataset_jobs import estimate_text, queue_dataset
from fabric_core.datasets import service
from fabric_core.datasets.answers import DatasetDiff, DatasetPlanAnswer
from fabric_core.datasets.diff import diff_versions
from fabric_core.datasets.dry_run import dry_run
from fabric_core.job_kinds import DATASET
from fabric_core.retry import policy_for
from fabric_core.schemas import (
    PREVIEW_DEFAULT_ROWS,
    PREVIEW_MAX_ROWS,
    DatasetCreateRequest,
    DatasetPreview,
    DatasetPreviewRequest,
    DatasetPublic,
    DatasetQueued,
)
from fabric_web.common import ReadSessionDep, RuntimeDep, SessionDep
from fabric_web.paging import PageDep, page_answer
from fastapi import APIRouter, Query, Response

from fabric_gateway.audit_log import AuditNoteDep
from fabric_gateway.auth import EDITOR, VIEWER, PrincipalDep
from fabric_gateway.deps import OrchestratorDep, hand_over, record_requester

router = APIRouter(prefix="/api/datasets", tags=["datasets"])


@router.post("/unified", status_code=202, response_model=DatasetQueued, dependencies=[EDITOR])
def create_unified_dataset(
    body: DatasetCreateRequest,
    session: SessionDep,
    runtime: RuntimeDep,
    orchestrator: OrchestratorDep,
    principal: PrincipalDep,
    note: AuditNoteDep,
) -> DatasetQueued:
    """Queue the build of a unified dataset (a new version if the name exists).
    ``"retry": {"attempts": n}`` sets this job's attempts (1 to 10) instead of
    FABRIC_DATASET_RETRY_ATTEMPTS. A request that reads columns with open breaking drift
    answers 409 with the reasons, unless it says ``"allow_drift": true``."""
    retry = policy_for(DATASET.name, runtime.settings, body.retry)
    request = body.dataset_request()
    job, plan = queue_dataset(
        session,
        request,
        runtime.box,
        orchestrator=orchestrator.name,
        retry_policy=retry,
        allow_drift=body.allow_drift,
    )
    record_requester(job, principal)
    note.object_id = job.id
    hand_over(session, orchestrator, DATASET, job)
    return DatasetQueued(
        message=f"Dataset creation for '{body.name}' has been queued",
        dag_run_id=job.id,
        dag_id=DATASET.dag_id,
        airflow_url=orchestrator.run_url(DATASET, job.id),
        dataset_name=body.name,
        selection_mode=body.selection_mode,
        status="queued",
        estimated_processing_time=estimate_text(plan.estimated_rows),
    )


# Viewer: the plan is made of what a viewer may read already (catalog, mappings, datasets); it
# reaches no source and queues nothing. The preview, which reads source rows, needs an editor.
@router.post("/unified/plan", response_model=DatasetPlanAnswer, dependencies=[VIEWER])
def plan_unified_dataset(
    body: DatasetCreateRequest, session: ReadSessionDep, runtime: RuntimeDep
) -> DatasetPlanAnswer:
    """What a build of this body would produce (its ``retry`` is ignored), from the catalog
    and the mappings alone: no source is read and no job is queued."""
    return dry_run(session, body.dataset_request(), runtime.box)


@router.post("/unified/preview", response_model=DatasetPreview, dependencies=[EDITOR])
def preview_unified_dataset(body: DatasetPreviewRequest, runtime: RuntimeDep) -> DatasetPreview:
    """The first rows the request would produce (default 100, at most 1,000); nothing written."""
    with ServiceClient.of_service(
        runtime.settings, DATASET.service, timeout=120, circuits=runtime.circuits
    ) as client:
        answer = client.request("POST", "/preview-dataset-creation", json=body.model_dump())
    return DatasetPreview(**answer)


@router.get("", response_model=list[DatasetPublic], dependencies=[VIEWER])
def list_datasets(
    session: ReadSessionDep, page: PageDep, response: Response
) -> list[DatasetPublic]:
    """Datasets with their complete versions (paged)."""
    return page_answer(response, service.list_datasets(session, page))


@router.get("/{name}", response_model=DatasetPublic, dependencies=[VIEWER])
def get_dataset(name: str, session: ReadSessionDep) -> DatasetPublic:
    """A dataset: status, current version, location, row count, columns, versions."""
    return service.dataset_public(session, service.get_dataset(session, name))


@router.get("/{name}/rows", response_model=DatasetPreview, dependencies=[VIEWER])
def read_dataset_rows(
    name: str,
    runtime: RuntimeDep,
    version: int | None = Query(default=None, ge=1),
    limit: int = Query(default=PREVIEW_DEFAULT_ROWS, ge=1, le=PREVIEW_MAX_ROWS),
) -> DatasetPreview:
    """The first rows of a version (current by default); virtual datasets compute them now."""
    return service.read_rows(
        runtime.read_session_factory,
        runtime.storage,
        runtime.box,
        name,
        version=version,
        limit=limit,
        policy=runtime.source_policy,
        circuits=runtime.circuits,
    )


@router.get("/{name}/diff", response_model=DatasetDiff, dependencies=[VIEWER])
def diff_dataset_versions(
    name: str,
    session: ReadSessionDep,
    from_version: int | None = Query(default=None, alias="from", ge=1),
    to_version: int | None = Query(default=None, alias="to", ge=1),
) -> DatasetDiff:
    """How version ``to`` (default: current) differs from ``from`` (default: the complete
    version before ``to``): schema, rows per source, definition, mappings. 409 for a version
    that is not complete."""
    return diff_versions(session, name, from_version=from_version, to_version=to_version)


@router.delete("/{name}", status_code=204, dependencies=[EDITOR])
def delete_dataset(name: str, runtime: RuntimeDep) -> Response:
    """Delete a dataset and every version's files (503 when storage cannot be reached: the
    dataset stays ``deleting``; DELETE again)."""
    service.delete_dataset(runtime.session_factory, runtime.storage, name)
    return Response(status_code=204)
