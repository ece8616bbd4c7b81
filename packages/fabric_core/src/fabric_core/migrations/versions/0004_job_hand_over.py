"""jobs: when a service accepted the job (one hand-over per job)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("handed_over_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":  # no table rebuild: see 0003
        op.execute("ALTER TABLE jobs DROP COLUMN handed_over_at")
        return
    op.drop_column("jobs", "handed_over_at")
