"""The resident design: rounds, stage frames' rows, each stage's selection; draws and frames learn their stage.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)
T = sa.Text


def upgrade() -> None:
    op.add_column("frames", sa.Column("round_id", T))
    op.add_column("frames", sa.Column("stage", T))
    op.alter_column("draws", "plan_id", nullable=True)
    op.add_column("draws", sa.Column("round_id", T))
    op.add_column("draws", sa.Column("stage", T))
    op.add_column("draws", sa.Column("frame_id", T))
    op.create_index("ix_draws_round_id", "draws", ["round_id"])
    op.create_table("resident_rounds", sa.Column("round_id", T, primary_key=True),
                    sa.Column("campaign_id", T, nullable=False), sa.Column("status", T, nullable=False),
                    sa.Column("settings", JSONB, nullable=False), sa.Column("created_by", T, nullable=False),
                    sa.Column("created_at", TZ, nullable=False))
    op.create_index("ix_resident_rounds_campaign_id", "resident_rounds", ["campaign_id"])
    op.create_table("stage_areas", sa.Column("frame_id", T, nullable=False), sa.Column("code", T, nullable=False),
                    sa.Column("parent_code", T, nullable=False), sa.Column("agency_id", T), sa.Column("name", T),
                    sa.Column("households", sa.Integer, nullable=False), sa.PrimaryKeyConstraint("frame_id", "code"))
    op.create_table("household_listings", sa.Column("frame_id", T, nullable=False),
                    sa.Column("household_key", T, nullable=False), sa.Column("village_code", T, nullable=False),
                    sa.Column("household_id", T, nullable=False), sa.Column("contact", sa.LargeBinary),
                    sa.PrimaryKeyConstraint("frame_id", "household_key"))
    op.create_table("stage_parents", sa.Column("draw_id", T, nullable=False), sa.Column("parent_code", T, nullable=False),
                    sa.Column("frame_digest", T, nullable=False), sa.Column("units", sa.Integer, nullable=False),
                    sa.Column("selected", sa.Integer, nullable=False), sa.Column("reserves", sa.Integer, nullable=False),
                    sa.Column("inclusion", T, nullable=False), sa.PrimaryKeyConstraint("draw_id", "parent_code"))
    op.create_table("stage_units", sa.Column("draw_id", T, nullable=False), sa.Column("code", T, nullable=False),
                    sa.Column("parent_code", T, nullable=False), sa.Column("role", T, nullable=False),
                    sa.Column("rank", sa.Integer, nullable=False), sa.Column("households", sa.Integer),
                    sa.Column("conditional", T, nullable=False), sa.Column("inclusion", T, nullable=False),
                    sa.Column("unit_id", T), sa.PrimaryKeyConstraint("draw_id", "code"))


def downgrade() -> None:
    for table in ("stage_units", "stage_parents", "household_listings", "stage_areas", "resident_rounds"):
        op.drop_table(table)
    op.drop_index("ix_draws_round_id", "draws")
    for column in ("frame_id", "stage", "round_id"):
        op.drop_column("draws", column)
    op.execute("DELETE FROM draws WHERE plan_id IS NULL")
    op.alter_column("draws", "plan_id", nullable=False)
    op.drop_column("frames", "stage")
    op.drop_column("frames", "round_id")
