"""Each counted ballot's answers as codes (``domain.codes``): one byte an item, read by the recount;
and the campaigns whose tallies a rebuild of the tallies projection left to a recount.

Ballots counted before this revision keep NULL and are recounted from their JSONB answers, as before
(more slowly); a rebuild of the tallies projection writes every ballot's codes.

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


def upgrade() -> None:
    op.add_column("sc_ballots", sa.Column(
        "answer_codes", sa.LargeBinary, comment="domain.codes: the answers as one byte an item; NULL before 0005"))
    op.create_table(
        "sc_recounts_owed", sa.Column("campaign_id", sa.Text, primary_key=True),
        sa.Column("since", sa.DateTime(timezone=True), nullable=False),
        comment="Campaigns whose tallies a rebuild left to a recount (projections.tallies.settle); since 0005")


def downgrade() -> None:
    op.drop_table("sc_recounts_owed")
    op.drop_column("sc_ballots", "answer_codes")
