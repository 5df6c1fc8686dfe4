"""Double entry, online-766 ratings, quality flags and reviews, back-checks; entry times of accepted ballots.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("paper_keyings", sa.Column("code", sa.Text, nullable=False), sa.Column("seq", sa.Integer, nullable=False),
                    sa.Column("campaign_id", sa.Text, nullable=False), sa.Column("clerk", sa.Text, nullable=False),
                    sa.Column("ballot", JSONB, nullable=False), sa.Column("entry_seconds", sa.Float),
                    sa.Column("keyed_at", sa.DateTime(timezone=True), nullable=False),
                    sa.PrimaryKeyConstraint("code", "seq"))
    op.create_table("paper_status", sa.Column("code", sa.Text, primary_key=True),
                    sa.Column("campaign_id", sa.Text, nullable=False), sa.Column("province", sa.Text),
                    sa.Column("status", sa.Text, nullable=False), sa.Column("disagreements", JSONB),
                    sa.Column("settled_by", sa.Text), sa.Column("outcome", sa.Text))
    op.create_index("ix_paper_status_campaign_id", "paper_status", ["campaign_id"])
    op.create_table("online_ratings", sa.Column("source_system", sa.Text, nullable=False),
                    sa.Column("dossier_id", sa.Text, nullable=False), sa.Column("campaign_id", sa.Text, nullable=False),
                    sa.Column("agency_code", sa.Text, nullable=False), sa.Column("completed_on", sa.Date, nullable=False),
                    sa.Column("rated_unsatisfied", sa.Boolean, nullable=False),
                    sa.Column("complained", sa.Boolean, nullable=False), sa.Column("overdue", sa.Boolean, nullable=False),
                    sa.Column("batch_id", sa.Text, nullable=False), sa.PrimaryKeyConstraint("source_system", "dossier_id"))
    op.create_index("ix_online_ratings_campaign_id", "online_ratings", ["campaign_id"])
    op.add_column("accepted_ballots", sa.Column("entry_seconds", sa.Float))
    op.create_table("ballot_flags", sa.Column("ballot_id", sa.Text, nullable=False),
                    sa.Column("campaign_id", sa.Text, nullable=False), sa.Column("kind", sa.Text, nullable=False),
                    sa.Column("reason", sa.Text, nullable=False), sa.Column("status", sa.Text, nullable=False),
                    sa.Column("level", sa.Text, nullable=False), sa.PrimaryKeyConstraint("ballot_id", "kind"))
    op.create_index("ix_ballot_flags_campaign_id", "ballot_flags", ["campaign_id"])
    op.create_table("review_log", sa.Column("id", sa.BigInteger, sa.Identity(always=True), primary_key=True),
                    sa.Column("ballot_id", sa.Text, nullable=False), sa.Column("campaign_id", sa.Text, nullable=False),
                    sa.Column("actor", sa.Text, nullable=False), sa.Column("action", sa.Text, nullable=False),
                    sa.Column("comment", sa.Text, nullable=False), sa.Column("at", sa.DateTime(timezone=True), nullable=False))
    op.create_index("ix_review_log_ballot_id", "review_log", ["ballot_id"])
    op.create_index("ix_review_log_campaign_id", "review_log", ["campaign_id"])
    op.create_table("backchecks", sa.Column("ballot_id", sa.Text, primary_key=True),
                    sa.Column("campaign_id", sa.Text, nullable=False), sa.Column("enumerator", sa.Text, nullable=False),
                    sa.Column("rank", sa.Integer, nullable=False), sa.Column("outcome", sa.Text), sa.Column("recorded_by", sa.Text))
    op.create_index("ix_backchecks_campaign_id", "backchecks", ["campaign_id"])


def downgrade() -> None:
    for table in ("backchecks", "review_log", "ballot_flags"):
        op.drop_table(table)
    op.drop_column("accepted_ballots", "entry_seconds")
    op.drop_table("online_ratings")
    op.drop_table("paper_status")
    op.drop_table("paper_keyings")
