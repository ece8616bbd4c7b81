"""file sources: connection settings, table fingerprints, native types of any length

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-05
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def _is_sqlite() -> bool:
    return op.get_bind().dialect.name == "sqlite"


def upgrade() -> None:
    # Plain ADD COLUMN: a batch (copy and move) on SQLite would drop the old tables, and with
    # foreign keys on that cascades into the whole catalog.
    op.add_column("connections", sa.Column("settings", sa.JSON(), nullable=True))
    op.add_column("catalog_tables", sa.Column("fingerprint", sa.String(length=64), nullable=True))
    if not _is_sqlite():  # SQLite does not enforce VARCHAR lengths
        # Arrow spells nested types (struct<...>) longer than 255 characters.
        op.alter_column(
            "catalog_columns", "native_type", type_=sa.Text(), existing_type=sa.String(255)
        )


def downgrade() -> None:
    if _is_sqlite():
        op.execute("ALTER TABLE catalog_tables DROP COLUMN fingerprint")
        op.execute("ALTER TABLE connections DROP COLUMN settings")
        return
    op.alter_column(
        "catalog_columns",
        "native_type",
        type_=sa.String(255),
        existing_type=sa.Text(),
        postgresql_using="left(native_type, 255)",
    )
    op.drop_column("catalog_tables", "fingerprint")
    op.drop_column("connections", "settings")
