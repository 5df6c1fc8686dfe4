"""A release records every service's audit-chain head (position and hash) when it is drafted; the
manifest signs them.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29
"""

from alembic import op

from sipas_publishing.adapters.tables import add_columns, drop_columns

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    add_columns(op, "0006")


def downgrade() -> None:
    drop_columns(op, "0006")
