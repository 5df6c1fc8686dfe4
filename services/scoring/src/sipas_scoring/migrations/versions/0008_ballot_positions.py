"""Ballots by the position that counted or voided them, per campaign: a figures refresh reads only the
ballots accepted or voided since its last one, which without these indexes meant visiting every ballot of
the campaign (a national campaign's tens of thousands, twice a second).

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_sc_ballots_accepted_position", "sc_ballots", ["campaign_id", "accepted_position"])
    op.create_index("ix_sc_ballots_voided_position", "sc_ballots", ["campaign_id", "voided_position"])


def downgrade() -> None:
    op.drop_index("ix_sc_ballots_voided_position", table_name="sc_ballots")
    op.drop_index("ix_sc_ballots_accepted_position", table_name="sc_ballots")
