"""A token per campaign that changes whenever its tallies are replaced by a recount (a rebuild settling, an
operator's repair) rather than changed ballot by ballot: the figures keep each campaign's tallies between
refreshes and re-read only the agencies whose ballots changed, unless this token moved.

Campaigns recounted before this revision have no token; the first recount gives them one.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sc_tally_revisions", sa.Column("campaign_id", sa.Text, primary_key=True),
        sa.Column("revision", sa.Text, nullable=False),
        comment="Changes whenever a recount replaces the campaign's tallies (recount.replace); since 0007")


def downgrade() -> None:
    op.drop_table("sc_tally_revisions")
