"""Double entry of paper ballots (two blind keyings per code, each code's state); online-766 ratings.

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


def downgrade() -> None:
    op.drop_table("online_ratings")
    op.drop_table("paper_status")
    op.drop_table("paper_keyings")
