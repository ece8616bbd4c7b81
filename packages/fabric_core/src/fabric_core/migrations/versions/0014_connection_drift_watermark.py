"""connections: the highest catalog column id new-column drift has checked

A sync checks at most so many new columns for new-column drift; the ones it leaves are
checked by the next syncs, from this id on. Existing connections start at their highest
column id: every column they hold was new at a sync that has already checked what it could.

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


# Plain ADD/DROP COLUMN, no batch: a batch (copy and move) on SQLite drops the old table, and
# with foreign keys on that cascades into the catalog.


def upgrade() -> None:
    op.add_column("connections", sa.Column("drift_checked_column_id", sa.Integer(), nullable=True))
    op.execute(
        """
        UPDATE connections SET drift_checked_column_id = (
            SELECT max(c.id) FROM catalog_columns c
            JOIN catalog_tables t ON t.id = c.table_id
            WHERE t.connection_id = connections.id
        )
        """
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("ALTER TABLE connections DROP COLUMN drift_checked_column_id")
        return
    op.drop_column("connections", "drift_checked_column_id")
