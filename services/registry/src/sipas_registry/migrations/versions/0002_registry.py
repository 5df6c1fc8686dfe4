"""The registry's tables: units over time, links, imports, instruments and schemes, campaigns.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "units",
        sa.Column("agency_id", sa.Text, primary_key=True),
        sa.Column("code", sa.Text, nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("name_search", sa.Text, nullable=False),
        sa.Column("level", sa.Text, nullable=False),
        sa.Column("parent_id", sa.Text),
        sa.Column("province", sa.Text),
        sa.Column("valid_from", sa.Date, nullable=False),
        sa.Column("valid_to", sa.Date),
        sa.Column("legal_basis", sa.Text),
        sa.Column("version", sa.Integer, nullable=False),
    )
    for column in ("code", "name_search", "parent_id", "province"):
        op.create_index(f"ix_units_{column}", "units", [column])
    op.create_table(
        "unit_history",
        sa.Column("agency_id", sa.Text, nullable=False),
        sa.Column("effective_date", sa.Date, nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("parent_id", sa.Text),
        sa.Column("legal_basis", sa.Text),
        sa.PrimaryKeyConstraint("agency_id", "effective_date"),
    )
    op.create_table(
        "unit_links",
        sa.Column("predecessor_id", sa.Text, nullable=False),
        sa.Column("successor_id", sa.Text, nullable=False),
        sa.Column("effective_date", sa.Date, nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("legal_basis", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("predecessor_id", "successor_id"),
    )
    op.create_index("ix_unit_links_successor_id", "unit_links", ["successor_id"])
    op.create_table(
        "agency_imports",
        sa.Column("import_id", sa.Text, primary_key=True),
        sa.Column("filename", sa.Text, nullable=False),
        sa.Column("sha256", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("rows", sa.Integer, nullable=False),
        sa.Column("errors", JSONB, nullable=False),
        sa.Column("actor", sa.Text, nullable=False),
        sa.Column("province", sa.Text),
        sa.Column("created_at", TZ, nullable=False),
    )
    op.create_table(
        "definitions",
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("def_id", sa.Text, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("definition", JSONB, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
        sa.PrimaryKeyConstraint("kind", "def_id", "version"),
    )
    op.create_table(
        "campaigns",
        sa.Column("campaign_id", sa.Text, primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("year", sa.Integer, nullable=False),
        sa.Column("scope", sa.Text, nullable=False),
        sa.Column("province", sa.Text),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("definition", JSONB, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("opened_at", TZ, nullable=False),
    )
    op.create_index("ix_campaigns_province", "campaigns", ["province"])
    op.create_table(
        "campaign_steps",
        sa.Column("campaign_id", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("actor", sa.Text, nullable=False),
        sa.Column("at", TZ, nullable=False),
        sa.Column("note", sa.Text),
        sa.PrimaryKeyConstraint("campaign_id", "status"),
    )


def downgrade() -> None:
    for table in ("campaign_steps", "campaigns", "definitions", "agency_imports", "unit_links", "unit_history",
                  "units"):
        op.drop_table(table)
