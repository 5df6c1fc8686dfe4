"""The registry's agencies read model.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "agencies",
        sa.Column("agency_id", sa.Text, primary_key=True),
        sa.Column("code", sa.Text, nullable=False, unique=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("name_search", sa.Text, nullable=False),
        sa.Column("level", sa.Text, nullable=False),
        sa.Column("parent_id", sa.Text),
        sa.Column("province", sa.Text),
        sa.Column("valid_from", sa.Date, nullable=False),
        sa.Column("valid_to", sa.Date),
        sa.Column("version", sa.Integer, nullable=False),
    )
    op.create_index("ix_agencies_name_search", "agencies", ["name_search"])
    op.create_index("ix_agencies_parent_id", "agencies", ["parent_id"])
    op.create_index("ix_agencies_province", "agencies", ["province"])


def downgrade() -> None:
    op.drop_table("agencies")
