"""API tokens, the audit log, and who queued each job

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("token_digest", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", _TIMESTAMP, nullable=False),
        sa.Column("created_by", sa.String(128), nullable=True),
        sa.Column("revoked_at", _TIMESTAMP, nullable=True),
    )
    op.create_table(
        "audit_events",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("at", _TIMESTAMP, nullable=False, index=True),
        sa.Column("token_id", sa.Integer(), nullable=True, index=True),
        sa.Column("token_name", sa.String(128), nullable=True),
        sa.Column("client", sa.String(64), nullable=True),
        sa.Column("method", sa.String(16), nullable=False),
        sa.Column("route", sa.String(255), nullable=False),
        sa.Column("action", sa.String(64), nullable=False, index=True),
        sa.Column("object_id", sa.String(255), nullable=True),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.String(64), nullable=False),
    )
    op.add_column("jobs", sa.Column("requested_by_token_id", sa.Integer(), nullable=True))
    op.add_column("jobs", sa.Column("requested_by", sa.String(128), nullable=True))
    op.create_index("ix_jobs_requested_by_token_id", "jobs", ["requested_by_token_id"])


def downgrade() -> None:
    op.drop_index("ix_jobs_requested_by_token_id", "jobs")
    if op.get_bind().dialect.name == "sqlite":  # no table rebuild: see 0003
        op.execute("ALTER TABLE jobs DROP COLUMN requested_by")
        op.execute("ALTER TABLE jobs DROP COLUMN requested_by_token_id")
    else:
        op.drop_column("jobs", "requested_by")
        op.drop_column("jobs", "requested_by_token_id")
    op.drop_table("audit_events")
    op.drop_table("api_tokens")
