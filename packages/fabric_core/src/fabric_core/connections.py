"""Registered data connections: create, read, update, delete, test, and how to reach them."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, object_session, sessionmaker

from fabric_core.circuits import CircuitBreaker, connection_circuit, read_circuits
from fabric_core.connectors import get_connector
from fabric_core.connectors.base import ConnectionCheck, ConnectionSpec, check_connection
from fabric_core.connectors.contract import LOCATION_FIELDS, SECRET_FIELDS
from fabric_core.crypto import SecretBox
from fabric_core.errors import ConflictError, InvalidInputError
from fabric_core.jobs import active_job_count
from fabric_core.models import CircuitState, Connection
from fabric_core.paging import Page, Paged
from fabric_core.records import flush_unique_name, get_by_id
from fabric_core.schemas import (
    CircuitPublic,
    ConnectionCreate,
    ConnectionPublic,
    ConnectionUpdate,
)
from fabric_core.source_policy import SourcePolicy

# Location fields stored in columns of their own; the others live in ``settings`` (JSON).
_COLUMNS = ("host", "port", "database", "username")


def _location(connection: Connection) -> dict[str, Any]:
    settings = connection.settings or {}
    return {
        field: getattr(connection, field) if field in _COLUMNS else settings.get(field)
        for field in LOCATION_FIELDS
    }


def _set_location(connection: Connection, values: dict[str, Any]) -> None:
    for field in _COLUMNS:
        setattr(connection, field, values.get(field))
    connection.settings = {
        field: values[field]
        for field in LOCATION_FIELDS
        if field not in _COLUMNS and values.get(field) is not None
    }


def _validate(connection: Connection, policy: SourcePolicy) -> None:
    """Check the connection against its kind's settings schema and the source policy, and
    fill in defaults."""
    connector = get_connector(connection.kind)
    values, options = connector.validate_settings(_location(connection), connection.options)
    connector.check_place(values, policy)
    _set_location(connection, values)
    connection.options = options


def _secret_of(kind: str, fields: dict[str, Any]) -> tuple[bool, str | None]:
    """Whether the request carries the kind's secret, and its value; another kind's secret
    field is refused rather than ignored."""
    connector = get_connector(kind)
    for field in SECRET_FIELDS:
        # Even as null: a foreign secret field must not count as "the secret was sent".
        if field != connector.secret_field and field in fields:
            raise InvalidInputError(
                f"{field} does not apply to a {kind} connection "
                f"(its secret is {connector.secret_field})."
            )
    return connector.secret_field in fields, fields.get(connector.secret_field)


def to_public(connection: Connection, circuit: CircuitPublic | None = None) -> ConnectionPublic:
    """The connection as the API shows it; ``circuit`` is read from its session if not given
    (lists read every circuit of a page at once: :func:`to_public_page`)."""
    session = object_session(connection)
    if circuit is None and session is not None:
        key = connection_circuit(connection.id)
        circuit = read_circuits(session, [key]).get(key)
    has_secret = connection.password_encrypted is not None
    return ConnectionPublic(
        id=connection.id,
        name=connection.name,
        kind=connection.kind,
        **_location(connection),
        has_password=has_secret and get_connector(connection.kind).secret_field == "password",
        has_secret=has_secret,
        options=connection.options or {},
        created_at=connection.created_at,
        updated_at=connection.updated_at,
        last_synced_at=connection.last_synced_at,
        circuit=circuit or CircuitPublic(),
    )


def to_public_page(session: Session, page: Paged[Connection]) -> Paged[ConnectionPublic]:
    keys = [connection_circuit(c.id) for c in page.items]
    circuits = read_circuits(session, keys) if keys else {}
    return page.map(lambda c: to_public(c, circuits.get(connection_circuit(c.id), CircuitPublic())))


def create_connection(
    session: Session, data: ConnectionCreate, box: SecretBox, policy: SourcePolicy
) -> Connection:
    _, secret = _secret_of(
        data.kind, data.model_dump(include=set(SECRET_FIELDS), exclude_unset=True)
    )
    connection = Connection(
        name=data.name,
        kind=data.kind,
        password_encrypted=box.encrypt(secret) if secret is not None else None,
        options=data.options,
    )
    _set_location(connection, data.model_dump(include=set(LOCATION_FIELDS)))
    _validate(connection, policy)
    session.add(connection)
    flush_unique_name(session, "A connection", connection.name)
    return connection


def get_connection(session: Session, connection_id: int) -> Connection:
    return get_by_id(session, Connection, connection_id, "data connection")


def list_connections(session: Session, page: Page = Page()) -> Paged[Connection]:
    query = select(Connection).order_by(Connection.id)
    return Paged(page.scalars(session, query), page.total(session, query))


def update_connection(
    session: Session,
    connection_id: int,
    data: ConnectionUpdate,
    box: SecretBox,
    policy: SourcePolicy,
) -> Connection:
    connection = get_connection(session, connection_id)
    changes = data.model_dump(exclude_unset=True)
    if "name" in changes and changes["name"] is None:
        raise InvalidInputError("name cannot be cleared.")
    if "kind" in changes and changes["kind"] is None:
        raise InvalidInputError("kind cannot be cleared.")
    _refuse_moving_the_password(connection, changes)
    if "name" in changes:
        connection.name = changes.pop("name")
    kind = changes.pop("kind", connection.kind)
    sent, secret = _secret_of(kind, changes)
    if sent:
        connection.password_encrypted = box.encrypt(secret) if secret is not None else None
    for field in SECRET_FIELDS:
        changes.pop(field, None)
    if "options" in changes:
        connection.options = changes.pop("options") or {}
    connection.kind = kind
    _set_location(connection, {**_location(connection), **changes})
    _validate(connection, policy)
    flush_unique_name(session, "A connection", connection.name)
    return connection


def _refuse_moving_the_password(connection: Connection, changes: dict[str, Any]) -> None:
    """Where the stored secret would be sent: changing that without sending the secret again
    would let anyone allowed to edit a connection test it against a server of theirs and
    collect the secret. Only the secret field of the kind the connection will have counts as
    sent (another kind's field, even null, does not)."""
    if connection.password_encrypted is None:
        return
    target = get_connector(changes.get("kind") or connection.kind)
    if target.secret_field in changes:
        return
    current = {**_location(connection), "kind": connection.kind}
    destination = {"kind", *get_connector(connection.kind).destination_fields}
    destination |= set(target.destination_fields)
    moved = [f for f in sorted(destination) if f in changes and changes[f] != current.get(f)]
    if "options" in changes:  # transport options (sslmode) decide how the secret travels
        old, new = connection.options or {}, changes["options"] or {}
        transport = {*get_connector(connection.kind).transport_options}
        transport |= set(target.transport_options)
        moved += [f"options.{o}" for o in sorted(transport) if old.get(o) != new.get(o)]
    if moved:
        secret_field = target.secret_field
        raise InvalidInputError(
            f"Changing {', '.join(moved)} would send the stored secret to another "
            f"server or over another transport: send the {secret_field} again in the same "
            "request (or null to clear it)."
        )


def delete_connection(session: Session, connection_id: int) -> None:
    connection = get_connection(session, connection_id)
    if active_job_count(session, connection_id):
        raise ConflictError(
            f"Connection {connection_id} has a sync queued or running; wait for it to end."
        )
    session.delete(connection)
    # Its circuit goes with it: ids may be given out again (SQLite), and metrics list circuits.
    session.execute(
        delete(CircuitState).where(CircuitState.key == connection_circuit(connection_id))
    )
    session.flush()


def connection_spec(
    connection: Connection, box: SecretBox, policy: SourcePolicy | None = None
) -> ConnectionSpec:
    """How to reach a connection's source, with its password decrypted (memory only).

    Without ``policy`` the spec carries the most restrictive default (no sqlite file at all):
    enough for its secrets, not to reach the source."""
    secret = box.decrypt(connection.password_encrypted) if connection.password_encrypted else None
    return ConnectionSpec(
        kind=connection.kind,
        **_location(connection),
        **{get_connector(connection.kind).secret_field: secret},
        options=dict(connection.options or {}),
        **({"policy": policy} if policy is not None else {}),
    )


def check_connection_by_id(
    session_factory: sessionmaker[Session],
    connection_id: int,
    box: SecretBox,
    policy: SourcePolicy,
    circuits: CircuitBreaker | None = None,
) -> ConnectionCheck:
    """Test a connection. The metadata DB session ends before the source is reached: a source
    that never answers must not hold one of the pool's connections meanwhile.

    The test is the operator's probe: it is let through even when the connection's circuit is
    open; reaching the source closes the circuit, not reaching it counts as a failure."""
    with session_factory() as session:
        spec = connection_spec(get_connection(session, connection_id), box, policy)
    check = check_connection(spec, policy.connect_timeout)
    if circuits is not None:
        circuit = circuits.connection(connection_id)
        if check.reachable:
            circuit.succeeded()
        else:
            circuit.failed(check.message)
    return check
