"""A release may name an earlier campaign to compare with; scoring's comparison (restated on
today's provinces) is stored with the draft and signed into the manifest.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29
"""

from alembic import op

from sipas_publishing.adapters.tables import add_columns, drop_columns

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    add_columns(op, "0004")


def downgrade() -> None:
    drop_columns(op, "0004")
