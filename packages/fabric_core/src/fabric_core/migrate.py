"""Apply Fabric's Alembic migrations (shipped inside this package) to the metadata DB."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, text

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["engine"] = engine
    return config


# The key of the PostgreSQL advisory lock that lets one process at a time migrate.
MIGRATION_LOCK = 0x46414252  # "FABR"


def upgrade_database(engine: Engine, revision: str = "head") -> None:
    """Bring the metadata DB to ``revision`` (default: the newest).

    Processes started together (``fabric up``, compose) each migrate on start: one at a time,
    so two never create the same table. SQLite's write transaction (BEGIN IMMEDIATE) already
    serializes them; PostgreSQL takes an advisory lock held until the migration commits, and
    the next process then finds the DB at ``revision``.
    """
    config = alembic_config(engine)
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()
