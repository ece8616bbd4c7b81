"""unified_columns: an optional declared code list (the canonical values of a code column)

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


# Plain ADD/DROP COLUMN, no batch: a batch (copy and move) on SQLite drops the old table, and
# with foreign keys on that cascades into the column mappings.


def upgrade() -> None:
    op.add_column("unified_columns", sa.Column("codes", sa.JSON(), nullable=True))


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("ALTER TABLE unified_columns DROP COLUMN codes")
        return
    op.drop_column("unified_columns", "codes")
