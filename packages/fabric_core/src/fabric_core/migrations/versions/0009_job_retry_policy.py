"""jobs: the retry policy a job was queued with, the errors of its failed attempts, and when
its next attempt may start

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch_op:
        batch_op.add_column(sa.Column("retry_policy", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("attempt_errors", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch_op:
        batch_op.drop_column("next_attempt_at")
        batch_op.drop_column("attempt_errors")
        batch_op.drop_column("retry_policy")
