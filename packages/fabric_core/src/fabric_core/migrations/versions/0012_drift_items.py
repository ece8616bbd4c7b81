"""drift_items: what a sync's catalog change means to the mappings and datasets built on it

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "drift_items",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "connection_id",
            sa.Integer(),
            sa.ForeignKey("connections.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column(
            "table_id",
            sa.Integer(),
            sa.ForeignKey("catalog_tables.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column(
            "column_id",
            sa.Integer(),
            sa.ForeignKey("catalog_columns.id", ondelete="CASCADE"),
            nullable=True,
        ),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("column_name", sa.Text(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("datasets", sa.JSON(), nullable=False),
        sa.Column("job_id", sa.String(255), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_drift_items_connection_id", "drift_items", ["connection_id"])
    op.create_index("ix_drift_items_table_id", "drift_items", ["table_id"])
    op.create_index("ix_drift_items_column_id", "drift_items", ["column_id"])
    op.create_index("ix_drift_items_resolved_at", "drift_items", ["resolved_at"])


def downgrade() -> None:
    op.drop_index("ix_drift_items_resolved_at", table_name="drift_items")
    op.drop_index("ix_drift_items_column_id", table_name="drift_items")
    op.drop_index("ix_drift_items_table_id", table_name="drift_items")
    op.drop_index("ix_drift_items_connection_id", table_name="drift_items")
    op.drop_table("drift_items")
