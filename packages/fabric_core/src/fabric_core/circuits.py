"""Circuit breakers whose state every process shares through the metadata DB.

A circuit guards the calls to one dependency: a source connection (``connection:12``), a
Fabric service (``service:sync``, ``service:dataset``) or Airflow (``airflow``). After
``circuit_failures`` consecutive connection-level failures (unreachable, refused, timed out;
not a bad query nor refused credentials: the dependency answered those) it opens, and calls
fail at once with :class:`CircuitOpenError` for ``circuit_reset_seconds`` instead of each
waiting for its own timeout. Then exactly one caller wins the trial call (a conditional
UPDATE, half-open); its success closes the circuit, its failure opens it again.

The state is a row of ``circuits``, so every replica and process agrees (pybreaker keeps it
per process, and its Redis storage could not record our events in the same transaction).
``circuit.opened`` (closed to open) and ``circuit.closed`` (open or half-open to closed) are
recorded in the transaction of the change, under the row's lock, so each transition fires
once. A failed trial opens the circuit again without a new event: the dependency never came
back, and an outage is one ``opened`` and one ``closed`` event however long it lasts.

The breaker never stands in the way of its dependency: when the metadata DB cannot be read
or written, the call goes ahead as if there were no circuit (logged).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from fabric_core.crypto import redact
from fabric_core.db import READ_ONLY
from fabric_core.errors import (
    CircuitOpenError,
    FabricError,
    SourceError,
    SourceUnreachableError,
)
from fabric_core.events import record_event
from fabric_core.models import CircuitState, utcnow
from fabric_core.schemas import CircuitPublic
from fabric_core.settings import Settings

log = logging.getLogger(__name__)

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"
AIRFLOW_CIRCUIT = "airflow"
_ERROR_CHARS = 500

T = TypeVar("T")
Errors = type[BaseException] | tuple[type[BaseException], ...]


def connection_circuit(connection_id: int) -> str:
    return f"connection:{connection_id}"


def service_circuit(service: str) -> str:
    return f"service:{service}"


class CircuitBreaker:
    """The circuits as one process sees them: thresholds from the settings, state in the DB."""

    def __init__(
        self, session_factory: sessionmaker[Session], *, failures: int, reset_seconds: float
    ) -> None:
        """``session_factory``: sessions that may write (state changes and their events)."""
        self.session_factory = session_factory
        self.failures = failures
        self.reset = timedelta(seconds=reset_seconds)

    @classmethod
    def from_settings(
        cls, session_factory: sessionmaker[Session], settings: Settings
    ) -> CircuitBreaker:
        return cls(
            session_factory,
            failures=settings.circuit_failures,
            reset_seconds=settings.circuit_reset_seconds,
        )

    @property
    def enabled(self) -> bool:
        return self.failures > 0

    def circuit(self, key: str) -> Circuit:
        return Circuit(self, key)

    def connection(self, connection_id: int) -> Circuit:
        return Circuit(self, connection_circuit(connection_id))


def guarded(
    circuit: Circuit | None,
    *,
    counts: Errors,
    answered: Errors,
    secrets: Iterable[str | None] = (),
) -> AbstractContextManager[None]:
    """:meth:`Circuit.guard`, or nothing when there is no circuit."""
    if circuit is None:
        return nullcontext()
    return circuit.guard(counts=counts, answered=answered, secrets=secrets)


def source_call(
    circuits: CircuitBreaker | None, connection_id: int, secrets: Iterable[str | None]
) -> AbstractContextManager[None]:
    """Around one call to a connection's source: only an unreachable source counts (a bad
    query or refused credentials are answers). No circuit when ``circuits`` is None."""
    circuit = circuits.connection(connection_id) if circuits is not None else None
    return guarded(circuit, counts=SourceUnreachableError, answered=SourceError, secrets=secrets)


def source_batches(
    circuits: CircuitBreaker | None,
    connection_id: int,
    open_batches: Callable[[], Iterable[T]],
    secrets: Iterable[str | None],
) -> Iterator[T]:
    """A source's stream of batches under its connection's circuit (see :func:`source_call`)."""
    if circuits is None:
        return iter(open_batches())
    return circuits.connection(connection_id).guard_items(
        open_batches, counts=SourceUnreachableError, answered=SourceError, secrets=secrets
    )


def read_circuits(session: Session, keys: Sequence[str] | None = None) -> dict[str, CircuitPublic]:
    """The stored state of ``keys`` (every circuit with a row when None); a circuit without
    a row is closed with no failures and is left out."""
    query = select(CircuitState)
    if keys is not None:
        query = query.where(CircuitState.key.in_(list(keys)))
    return {
        row.key: CircuitPublic(
            state=row.state, failures=row.failures, opened_at=row.opened_at, retry_at=row.retry_at
        )
        for row in session.scalars(query)
    }


@dataclass(frozen=True)
class Circuit:
    """One circuit: ask before a call, report how it went."""

    breaker: CircuitBreaker
    key: str

    def enter(self) -> bool:
        """Before a call: raises :class:`CircuitOpenError` if the circuit refuses it. Returns
        True when this call is the half-open trial (exactly one caller gets that)."""
        if not self.breaker.enabled:
            return False
        try:
            row = self._read()
            if row is None or row.state == CLOSED:
                return False
            now = utcnow()
            if row.retry_at is not None and row.retry_at <= now and self._take_trial(now):
                return True
        except SQLAlchemyError as exc:
            log.warning("circuit %s: state unreadable, call let through: %s", self.key, exc)
            return False
        raise CircuitOpenError(_refusal(row, now), retry_at=row.retry_at)

    def succeeded(self) -> None:
        """The dependency answered: reset the count; an open circuit closes."""
        try:
            row = self._read()  # read-only first: most calls find nothing to change
            if row is None or (row.state == CLOSED and row.failures == 0):
                return
            with self.breaker.session_factory.begin() as session:
                row = self._locked(session)
                was, opened_at = row.state, row.opened_at
                row.state, row.failures, row.updated_at = CLOSED, 0, utcnow()
                row.opened_at = row.retry_at = None
                if was != CLOSED:
                    payload = _payload(row) | {"opened_at": _iso(opened_at)}
                    record_event(session, "circuit.closed", payload)
        except SQLAlchemyError as exc:
            log.warning("circuit %s: could not record a success: %s", self.key, exc)
            return
        if was != CLOSED:
            log.warning("circuit %s closed: the dependency answered again", self.key)

    def failed(self, error: str) -> None:
        """A connection-level failure: count it; the threshold (or a failed trial) opens."""
        if not self.breaker.enabled:
            return
        opened = False
        try:
            with self.breaker.session_factory.begin() as session:
                row = self._locked(session)
                now = utcnow()
                row.failures += 1
                row.last_error = error[:_ERROR_CHARS]
                row.updated_at = now
                if row.state == HALF_OPEN or (
                    row.state == CLOSED and row.failures >= self.breaker.failures
                ):
                    opened = row.state == CLOSED
                    row.state, row.retry_at = OPEN, now + self.breaker.reset
                    row.opened_at = row.opened_at if not opened else now
                    if opened:
                        record_event(session, "circuit.opened", _payload(row))
        except SQLAlchemyError as exc:
            log.warning("circuit %s: could not record a failure: %s", self.key, exc)
            return
        if opened:
            log.warning("circuit %s opened: %s", self.key, error[:_ERROR_CHARS])

    def released(self) -> None:
        """The trial call ended without saying anything of the dependency (cancelled, a
        bug): the next caller may try at once rather than after the trial's lease."""
        try:
            with self.breaker.session_factory.begin() as session:
                session.execute(
                    update(CircuitState)
                    .where(CircuitState.key == self.key, CircuitState.state == HALF_OPEN)
                    .values(state=OPEN, retry_at=utcnow(), updated_at=utcnow())
                    .execution_options(synchronize_session=False)
                )
        except SQLAlchemyError as exc:
            log.warning("circuit %s: could not release the trial: %s", self.key, exc)

    @contextmanager
    def guard(self, *, counts: Errors, answered: Errors, secrets: Iterable[str | None] = ()):
        """Around one call: ``counts`` errors are connection-level failures; ``answered`` ones
        mean the dependency answered (a success for the circuit); others say nothing."""
        trial = self.enter()
        try:
            yield
        except counts as exc:
            self.failed(_error_text(exc, secrets))
            raise
        except answered:
            self.succeeded()
            raise
        except BaseException:
            if trial:
                self.released()
            raise
        self.succeeded()

    def guard_items(
        self,
        open_items: Callable[[], Iterable[T]],
        *,
        counts: Errors,
        answered: Errors,
        secrets: Iterable[str | None] = (),
    ) -> Iterator[T]:
        """Items of a stream (batches of a source) under the circuit: the first item is the
        dependency's answer; a failure later in the stream counts too."""
        trial = self.enter()
        heard = False
        items: Iterable[T] | None = None
        try:
            items = open_items()  # inside: a reader may connect as it is made
            for item in items:
                if not heard:
                    heard = True
                    self.succeeded()
                yield item
        except counts as exc:
            self.failed(_error_text(exc, secrets))
            raise
        except answered:
            if not heard:
                self.succeeded()
            raise
        except BaseException:
            if trial and not heard:
                self.released()
            raise
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()
        if not heard:
            self.succeeded()  # an empty stream is an answer too

    def _read(self) -> CircuitState | None:
        # Read-only: on SQLite this does not queue for the write lock behind a catalog store.
        with self.breaker.session_factory() as session:
            session.connection(execution_options={READ_ONLY: True})
            return session.get(CircuitState, self.key)

    def _take_trial(self, now) -> bool:
        """The conditional UPDATE that lets exactly one caller make the trial call; the trial
        holds the circuit for one reset period at most (its process may die meanwhile)."""
        with self.breaker.session_factory.begin() as session:
            won = session.execute(
                update(CircuitState)
                .where(
                    CircuitState.key == self.key,
                    CircuitState.state.in_((OPEN, HALF_OPEN)),
                    CircuitState.retry_at <= now,
                )
                .values(state=HALF_OPEN, retry_at=now + self.breaker.reset, updated_at=now)
                .execution_options(synchronize_session=False)
            ).rowcount
        return won == 1

    def _locked(self, session: Session) -> CircuitState:
        """The circuit's row, created if missing, locked until the transaction ends: reports
        of one circuit from every process take turns, so each transition happens once."""
        dialect = session.get_bind().dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        session.execute(
            insert(CircuitState)
            .values(key=self.key, state=CLOSED, failures=0, updated_at=utcnow())
            .on_conflict_do_nothing(index_elements=["key"])
        )
        return session.scalars(
            select(CircuitState)
            .where(CircuitState.key == self.key)
            .with_for_update()
            .execution_options(populate_existing=True)
        ).one()


def _error_text(exc: BaseException, secrets: Iterable[str | None]) -> str:
    text = exc.message if isinstance(exc, FabricError) else f"{type(exc).__name__}: {exc}"
    return redact(" ".join(text.split()), list(secrets))[:_ERROR_CHARS]


def _iso(moment) -> str | None:
    return moment.isoformat() if moment is not None else None


def _payload(row: CircuitState) -> dict[str, Any]:
    """What an event says of a circuit (no secrets: its error text was redacted)."""
    payload: dict[str, Any] = {
        "circuit": row.key,
        "state": row.state,
        "failures": row.failures,
        "opened_at": _iso(row.opened_at),
        "retry_at": _iso(row.retry_at),
        "error": row.last_error,
    }
    kind, _, ident = row.key.partition(":")
    if kind == "connection" and ident.isdigit():
        payload["connection_id"] = int(ident)
    elif kind == "service":
        payload["service"] = ident
    return payload


def _refusal(row: CircuitState, now) -> str:
    retry_at = row.retry_at or now
    when = f"{retry_at:%Y-%m-%d %H:%M:%S} UTC (in {max(0, (retry_at - now).total_seconds()):.0f} s)"
    last = f" (last: {row.last_error})" if row.last_error else ""
    if row.state == HALF_OPEN:
        return (
            f"Circuit {row.key} is half-open: one trial call is under way after "
            f"{row.failures} connection failures in a row{last}; other calls fail at once "
            f"until it ends, at the latest {when}."
        )
    return (
        f"Circuit {row.key} is open after {row.failures} connection failures in a row{last}; "
        f"calls fail at once until {when}, then one trial call is let through."
    )
