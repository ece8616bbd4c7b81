"""Registered data connections: create, read, update, delete, test, and how to reach them."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from fabric_core.connectors import get_connector
from fabric_core.connectors.base import ConnectionCheck, ConnectionSpec, check_connection
from fabric_core.crypto import SecretBox
from fabric_core.errors import ConflictError, InvalidInputError, NotFoundError
from fabric_core.jobs import active_job_count
from fabric_core.models import Connection
from fabric_core.schemas import ConnectionCreate, ConnectionPublic, ConnectionUpdate


def _validate(connection: Connection) -> None:
    connector = get_connector(connection.kind)
    if connection.kind == "sqlite":
        if not connection.database:
            raise InvalidInputError("A sqlite connection needs 'database': the path of the file.")
        return
    if not connection.host:
        raise InvalidInputError(f"A {connection.kind} connection needs 'host'.")
    if connection.port is None:
        connection.port = connector.DEFAULT_PORT


def to_public(connection: Connection) -> ConnectionPublic:
    return ConnectionPublic(
        id=connection.id,
        name=connection.name,
        kind=connection.kind,
        host=connection.host,
        port=connection.port,
        database=connection.database,
        username=connection.username,
        has_password=connection.password_encrypted is not None,
        options=connection.options or {},
        created_at=connection.created_at,
        updated_at=connection.updated_at,
        last_synced_at=connection.last_synced_at,
    )


def create_connection(session: Session, data: ConnectionCreate, box: SecretBox) -> Connection:
    connection = Connection(
        name=data.name,
        kind=data.kind,
        host=data.host,
        port=data.port,
        database=data.database,
        username=data.username,
        password_encrypted=box.encrypt(data.password) if data.password is not None else None,
        options=data.options.model_dump(exclude_none=True),
    )
    _validate(connection)
    session.add(connection)
    _flush_unique_name(session, connection.name)
    return connection


def _flush_unique_name(session: Session, name: str) -> None:
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        raise ConflictError(f"A connection named {name!r} already exists.") from None


def get_connection(session: Session, connection_id: int) -> Connection:
    connection = session.get(Connection, connection_id)
    if connection is None:
        raise NotFoundError(f"No data connection with id {connection_id}.")
    return connection


def list_connections(session: Session) -> list[Connection]:
    return list(session.scalars(select(Connection).order_by(Connection.id)))


def update_connection(
    session: Session, connection_id: int, data: ConnectionUpdate, box: SecretBox
) -> Connection:
    connection = get_connection(session, connection_id)
    changes = data.model_dump(exclude_unset=True)
    if "name" in changes and changes["name"] is None:
        raise InvalidInputError("name cannot be cleared.")
    if "kind" in changes and changes["kind"] is None:
        raise InvalidInputError("kind cannot be cleared.")
    _refuse_moving_the_password(connection, changes)
    if "password" in changes:
        password = changes.pop("password")
        connection.password_encrypted = box.encrypt(password) if password is not None else None
    if "options" in changes:
        options = data.options
        connection.options = options.model_dump(exclude_none=True) if options else {}
        changes.pop("options")
    for field, value in changes.items():
        setattr(connection, field, value)
    _validate(connection)
    _flush_unique_name(session, connection.name)
    return connection


# Where the stored password would be sent: changing one of these without the password would let
# anyone allowed to edit a connection test it against a server of theirs and collect it.
_DESTINATION = ("kind", "host", "port")


def _refuse_moving_the_password(connection: Connection, changes: dict[str, Any]) -> None:
    if connection.password_encrypted is None or "password" in changes:
        return
    moved = [f for f in _DESTINATION if f in changes and changes[f] != getattr(connection, f)]
    if moved:
        raise InvalidInputError(
            f"Changing {', '.join(moved)} would send the stored password to another server: "
            "send the password again in the same request (or null to clear it)."
        )


def delete_connection(session: Session, connection_id: int) -> None:
    connection = get_connection(session, connection_id)
    if active_job_count(session, connection_id):
        raise ConflictError(
            f"Connection {connection_id} has a sync queued or running; wait for it to end."
        )
    session.delete(connection)
    session.flush()


def connection_spec(connection: Connection, box: SecretBox) -> ConnectionSpec:
    """How to reach a connection's source, with its password decrypted (memory only)."""
    password = box.decrypt(connection.password_encrypted) if connection.password_encrypted else None
    return ConnectionSpec(
        kind=connection.kind,
        host=connection.host,
        port=connection.port,
        database=connection.database,
        username=connection.username,
        password=password,
        options=dict(connection.options or {}),
    )


def check_connection_by_id(
    session: Session, connection_id: int, box: SecretBox, timeout: float
) -> ConnectionCheck:
    connection = get_connection(session, connection_id)
    return check_connection(connection_spec(connection, box), timeout)
