"""Data connections: register, read, change, remove, test, sync, list their tables."""

from __future__ import annotations

from fabric_core import connections
from fabric_core.catalog.browse import list_tables
from fabric_core.errors import NotFoundError
from fabric_core.job_kinds import SYNC
from fabric_core.retry import policy_for
from fabric_core.schemas import (
    ConnectionCheck,
    ConnectionCreate,
    ConnectionPublic,
    ConnectionUpdate,
    SyncQueued,
    SyncRequest,
    TablePublic,
)
from fabric_core.sync_jobs import queue_sync
from fabric_web.common import ReadSessionDep, RuntimeDep, SessionDep
from fabric_web.paging import PageDep, page_answer
from fastapi import APIRouter, Request, Response

from fabric_gateway.audit_log import AuditNoteDep
from fabric_gateway.auth import ADMIN, EDITOR, VIEWER, PrincipalDep
from fabric_gateway.deps import OrchestratorDep, hand_over, record_requester

router = APIRouter(prefix="/api/data-connections", tags=["data connections"])


@router.post("", status_code=201, response_model=ConnectionPublic, dependencies=[ADMIN])
def create_connection(
    body: ConnectionCreate, session: SessionDep, runtime: RuntimeDep, note: AuditNoteDep
) -> ConnectionPublic:
    """Register a data connection (the password is stored encrypted, never returned)."""
    connection = connections.create_connection(session, body, runtime.box, runtime.source_policy)
    note.object_id = str(connection.id)
    return connections.to_public(connection)


@router.get("", response_model=list[ConnectionPublic], dependencies=[VIEWER])
def list_connections(
    session: ReadSessionDep, page: PageDep, response: Response
) -> list[ConnectionPublic]:
    """Registered data connections (paged; the total is in ``X-Total-Count``)."""
    paged = connections.list_connections(session, page)
    return page_answer(response, connections.to_public_page(session, paged))


@router.get("/{connection_id}", response_model=ConnectionPublic, dependencies=[VIEWER])
def get_connection(connection_id: int, session: ReadSessionDep) -> ConnectionPublic:
    """One data connection."""
    return connections.to_public(connections.get_connection(session, connection_id))


@router.patch("/{connection_id}", response_model=ConnectionPublic, dependencies=[ADMIN])
def update_connection(
    connection_id: int, body: ConnectionUpdate, session: SessionDep, runtime: RuntimeDep
) -> ConnectionPublic:
    """Change some fields of a data connection."""
    connection = connections.update_connection(
        session, connection_id, body, runtime.box, runtime.source_policy
    )
    return connections.to_public(connection)


@router.delete("/{connection_id}", status_code=204, dependencies=[ADMIN])
def delete_connection(connection_id: int, session: SessionDep) -> Response:
    """Remove a data connection and its catalog."""
    connections.delete_connection(session, connection_id)
    return Response(status_code=204)


@router.post("/{connection_id}/test", response_model=ConnectionCheck, dependencies=[ADMIN])
def test_connection(connection_id: int, runtime: RuntimeDep, request: Request) -> ConnectionCheck:
    """Try to connect: says whether the source is reachable and accepts the credentials.
    Let through even when the connection's circuit is open; reaching the source closes it."""
    metrics = request.app.state.metrics
    # No session dependency: the connection is read in a session that ends before the source
    # is reached, so a source that never answers holds no metadata-DB connection.
    try:
        check = connections.check_connection_by_id(
            runtime.read_session_factory,
            connection_id,
            runtime.box,
            runtime.source_policy,
            runtime.circuits,
        )
    except NotFoundError:
        raise  # no check was made
    except Exception:
        metrics.count_check(None)
        raise
    metrics.count_check(check)
    return check


@router.post(
    "/{connection_id}/sync", status_code=202, response_model=SyncQueued, dependencies=[EDITOR]
)
def sync_connection(
    connection_id: int,
    session: SessionDep,
    runtime: RuntimeDep,
    orchestrator: OrchestratorDep,
    principal: PrincipalDep,
    note: AuditNoteDep,
    body: SyncRequest | None = None,
) -> SyncQueued:
    """Queue a metadata sync of the connection's catalog. The body is optional:
    ``{"retry": {"attempts": n}}`` sets this job's attempts (1 to 10) instead of
    FABRIC_SYNC_RETRY_ATTEMPTS."""
    retry = policy_for(SYNC.name, runtime.settings, body.retry if body else None)
    job, connection = queue_sync(
        session, connection_id, orchestrator=orchestrator.name, retry_policy=retry
    )
    record_requester(job, principal)
    note.object_id = job.id
    hand_over(session, orchestrator, SYNC, job)
    return SyncQueued(
        message=f"Metadata synchronization for connection '{connection.name}' has been queued",
        dag_run_id=job.id,
        dag_id=SYNC.dag_id,
        airflow_url=orchestrator.run_url(SYNC, job.id),
        connection_id=connection_id,
        status="queued",
    )


@router.get("/{connection_id}/tables", response_model=list[TablePublic], dependencies=[VIEWER])
def connection_tables(
    connection_id: int,
    session: ReadSessionDep,
    page: PageDep,
    response: Response,
    include_removed: bool = True,
) -> list[TablePublic]:
    """Tables and views harvested from the connection (removed ones flagged; paged)."""
    paged = list_tables(session, connection_id, include_removed=include_removed, page=page)
    return page_answer(response, paged)
