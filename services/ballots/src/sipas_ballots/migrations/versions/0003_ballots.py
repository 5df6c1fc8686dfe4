"""Sampled units (from sampling), ballot codes, submissions and accepted ballots.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

T, TZ = sa.Text, sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table("sampled_units", sa.Column("unit_id", T, primary_key=True), sa.Column("campaign_id", T, nullable=False),
                    sa.Column("draw_id", T, nullable=False), sa.Column("agency_id", T),
                    sa.Column("agency_code", T, nullable=False), sa.Column("stratum", T, nullable=False),
                    sa.Column("weight", sa.Numeric, nullable=False), sa.Column("status", T, nullable=False),
                    sa.Column("province", T), sa.Column("source_position", sa.BigInteger, nullable=False))
    op.create_index("ix_sampled_units_campaign_id", "sampled_units", ["campaign_id"])
    op.create_table("ballots", sa.Column("ballot_id", T, primary_key=True), sa.Column("campaign_id", T, nullable=False),
                    sa.Column("unit_id", T, nullable=False), sa.Column("code", T, nullable=False, unique=True),
                    sa.Column("status", T, nullable=False), sa.Column("cancel_reason", T),
                    sa.Column("issued_at", TZ, nullable=False))
    op.create_index("ix_ballots_campaign_id", "ballots", ["campaign_id"])
    op.create_index("ix_ballots_unit_id", "ballots", ["unit_id"])
    op.create_table("submissions", sa.Column("submission_id", T, primary_key=True),
                    sa.Column("campaign_id", T, nullable=False), sa.Column("channel", T, nullable=False),
                    sa.Column("outcome", T, nullable=False), sa.Column("reason", T), sa.Column("detail", T),
                    sa.Column("ballot_id", T), sa.Column("received_at", TZ, nullable=False))
    op.create_index("ix_submissions_campaign_id", "submissions", ["campaign_id"])
    op.create_table("accepted_ballots", sa.Column("ballot_id", T, primary_key=True),
                    sa.Column("campaign_id", T, nullable=False), sa.Column("unit_id", T, nullable=False),
                    sa.Column("channel", T, nullable=False), sa.Column("answers", JSONB, nullable=False),
                    sa.Column("expectations", JSONB, nullable=False), sa.Column("entered_by", T),
                    sa.Column("accepted_at", TZ, nullable=False),
                    sa.Column("voided", sa.Boolean, nullable=False, server_default="false"))
    op.create_index("ix_accepted_ballots_campaign_id", "accepted_ballots", ["campaign_id"])


def downgrade() -> None:
    for table in ("accepted_ballots", "submissions", "ballots", "sampled_units"):
        op.drop_table(table)
