"""What a Fabric process holds while it runs: settings, metadata DB, secret box.

Built by :func:`create_runtime` at start-up (an app's lifespan, a CLI command, a DAG task),
never at import time.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

from fabric_core.circuits import CircuitBreaker
from fabric_core.crypto import SecretBox
from fabric_core.datasets.storage import Storage
from fabric_core.db import (
    READ_ONLY,
    create_metadata_engine,
    create_read_session_factory,
    create_session_factory,
)
from fabric_core.migrate import upgrade_database
from fabric_core.settings import Settings
from fabric_core.source_policy import SourcePolicy


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    session_factory: sessionmaker[Session]
    box: SecretBox
    storage: Storage
    read_session_factory: sessionmaker[Session]
    """Sessions that only read (never hold SQLite's write lock)."""
    source_policy: SourcePolicy
    """Where sources may be and how long their calls may take (fabric_core.source_policy)."""

    @property
    def circuits(self) -> CircuitBreaker:
        """The circuit breakers of sources, services and Airflow (fabric_core.circuits)."""
        return CircuitBreaker.from_settings(self.session_factory, self.settings)

    def close(self) -> None:
        self.engine.dispose()

    def check_database(self) -> None:
        # Read-only: on SQLite a health check must not queue for the write lock.
        with self.engine.execution_options(**{READ_ONLY: True}).connect() as connection:
            connection.execute(text("SELECT 1"))

    def check_storage(self) -> None:
        """The dataset storage (local folder or S3 bucket) takes writes."""
        self.storage.check()


def create_runtime(settings: Settings, *, migrate: bool | None = None) -> Runtime:
    """Open the metadata DB (migrating it in embedded mode) and the secret box."""
    settings.ensure_home()
    if settings.auto_migrate if migrate is None else migrate:
        migration_engine = create_metadata_engine(
            settings.resolved_database_url,
            connect_timeout=settings.metadata_connect_timeout,
            statement_timeout=None,
        )
        try:
            upgrade_database(migration_engine)
        finally:
            migration_engine.dispose()
    engine = create_metadata_engine(
        settings.resolved_database_url,
        connect_timeout=settings.metadata_connect_timeout,
        statement_timeout=settings.metadata_statement_timeout,
    )
    return Runtime(
        settings=settings,
        engine=engine,
        session_factory=create_session_factory(engine),
        box=SecretBox(settings.resolved_secret_keys(), reload=settings.resolved_secret_keys),
        storage=Storage.from_settings(settings),
        read_session_factory=create_read_session_factory(engine),
        source_policy=SourcePolicy.from_settings(settings),
    )
