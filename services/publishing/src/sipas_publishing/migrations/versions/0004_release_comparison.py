"""A release may name an earlier campaign to compare with; scoring's comparison (restated on
today's provinces) is stored with the draft and signed into the manifest.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29
"""

from alembic import op

from sipas_publishing.adapters.tables import ADDED

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for table, columns in ADDED["0004"]().items():
        for column in columns:
            op.add_column(table, column)


def downgrade() -> None:
    for table, columns in ADDED["0004"]().items():
        for column in reversed(columns):
            op.drop_column(table, column.name)
