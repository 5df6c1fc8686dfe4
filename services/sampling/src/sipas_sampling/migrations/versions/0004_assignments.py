"""Field assignments, the canonical-order index a draw reads, and who responded (from ballots).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("sample_units", sa.Column("assigned_to", sa.Text))
    op.create_index("ix_sample_units_assigned_to", "sample_units", ["draw_id", "assigned_to"])
    op.create_table("responses", sa.Column("unit_id", sa.Text, primary_key=True),
                    sa.Column("ballot_id", sa.Text, nullable=False), sa.Column("campaign_id", sa.Text, nullable=False),
                    sa.Column("voided", sa.Boolean, nullable=False),
                    sa.Column("source_position", sa.BigInteger, nullable=False))
    op.create_index("ix_responses_campaign_id", "responses", ["campaign_id"])
    op.execute('CREATE INDEX ix_frame_units_canonical ON frame_units '
               '(frame_id, agency_code COLLATE "C", dossier_id COLLATE "C")')


def downgrade() -> None:
    op.drop_table("responses")
    op.drop_index("ix_frame_units_canonical", "frame_units")
    op.drop_index("ix_sample_units_assigned_to", "sample_units")
    op.drop_column("sample_units", "assigned_to")
