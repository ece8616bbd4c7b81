"""column suggestions: cached value samples of catalog columns, and suggestions dismissed
for a unified column

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "column_samples",
        sa.Column("column_id", sa.Integer(), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("sample_values", sa.JSON(), nullable=False),
        sa.Column("truncated", sa.Boolean(), nullable=False),
        sa.Column("sampled_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["column_id"], ["catalog_columns.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("column_id"),
    )
    op.create_table(
        "dismissed_suggestions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("unified_column_id", sa.Integer(), nullable=False),
        sa.Column("column_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["column_id"], ["catalog_columns.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["unified_column_id"], ["unified_columns.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("unified_column_id", "column_id"),
    )
    # The unique index leads with unified_column_id: lookups and cascades by column need theirs.
    op.create_index("ix_dismissed_suggestions_column_id", "dismissed_suggestions", ["column_id"])


def downgrade() -> None:
    op.drop_index("ix_dismissed_suggestions_column_id", table_name="dismissed_suggestions")
    op.drop_table("dismissed_suggestions")
    op.drop_table("column_samples")
