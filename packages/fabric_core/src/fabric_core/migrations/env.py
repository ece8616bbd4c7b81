"""Alembic environment; the connection is handed in by :mod:`fabric_core.migrate`."""

from alembic import context

from fabric_core.models import Base

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
