"""Agencies projection (from the registry).

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
        sa.Column("code", sa.Text, nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("level", sa.Text, nullable=False),
        sa.Column("parent_id", sa.Text),
        sa.Column("province", sa.Text),
        sa.Column("valid_from", sa.Date, nullable=False),
        sa.Column("valid_to", sa.Date),
        sa.Column("registered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("source_position", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_agencies_province", "agencies", ["province"])


def downgrade() -> None:
    op.drop_table("agencies")
