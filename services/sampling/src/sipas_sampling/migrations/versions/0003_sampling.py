"""Frames (contacts encrypted), campaign keys, plans, draws, sample units, contact read log.

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

TZ = sa.DateTime(timezone=True)
T = sa.Text


def upgrade() -> None:
    op.create_table("campaign_keys", sa.Column("campaign_id", T, primary_key=True),
                    sa.Column("key_ref", T, nullable=False), sa.Column("wrapped_key", sa.LargeBinary),
                    sa.Column("wrapped_salt", sa.LargeBinary), sa.Column("created_at", TZ, nullable=False),
                    sa.Column("shredded_at", TZ))
    op.create_table("frames", sa.Column("frame_id", T, primary_key=True), sa.Column("campaign_id", T, nullable=False),
                    sa.Column("filename", T, nullable=False), sa.Column("file_sha256", T, nullable=False),
                    sa.Column("mode", T, nullable=False), sa.Column("status", T, nullable=False),
                    sa.Column("rows", sa.Integer, nullable=False), sa.Column("rejected_rows", sa.Integer, nullable=False),
                    sa.Column("digest", T), sa.Column("created_by", T, nullable=False),
                    sa.Column("created_at", TZ, nullable=False))
    op.create_index("ix_frames_campaign_id", "frames", ["campaign_id"])
    op.create_table("frame_units", sa.Column("frame_id", T, nullable=False), sa.Column("dossier_id", T, nullable=False),
                    sa.Column("agency_code", T, nullable=False), sa.Column("agency_id", T), sa.Column("level", T),
                    sa.Column("area", T), sa.Column("procedure", T, nullable=False),
                    sa.Column("service_field", T, nullable=False), sa.Column("completed_on", sa.Date, nullable=False),
                    sa.Column("respondent_type", T, nullable=False),
                    sa.Column("row_hash", sa.LargeBinary, nullable=False), sa.Column("contact", sa.LargeBinary),
                    sa.PrimaryKeyConstraint("frame_id", "dossier_id"))
    op.create_table("frame_errors", sa.Column("frame_id", T, nullable=False), sa.Column("line", sa.Integer, nullable=False),
                    sa.Column("field", T, nullable=False), sa.Column("code", T, nullable=False),
                    sa.Column("message", T, nullable=False))
    op.create_index("ix_frame_errors_frame_id", "frame_errors", ["frame_id"])
    op.create_table("plans", sa.Column("plan_id", T, primary_key=True), sa.Column("campaign_id", T, nullable=False),
                    sa.Column("frame_id", T, nullable=False), sa.Column("status", T, nullable=False),
                    sa.Column("body", JSONB, nullable=False), sa.Column("approved_by", T),
                    sa.Column("created_at", TZ, nullable=False))
    op.create_index("ix_plans_campaign_id", "plans", ["campaign_id"])
    op.create_table("draws", sa.Column("draw_id", T, primary_key=True), sa.Column("plan_id", T, nullable=False),
                    sa.Column("campaign_id", T, nullable=False), sa.Column("seed_commitment", T, nullable=False),
                    sa.Column("seed", T), sa.Column("status", T, nullable=False),
                    sa.Column("created_at", TZ, nullable=False))
    op.create_index("ix_draws_campaign_id", "draws", ["campaign_id"])
    op.create_table("sample_units", sa.Column("draw_id", T, nullable=False), sa.Column("unit_id", T, nullable=False),
                    sa.Column("dossier_id", T, nullable=False), sa.Column("agency_code", T, nullable=False),
                    sa.Column("agency_id", T), sa.Column("stratum", T, nullable=False),
                    sa.Column("role", T, nullable=False), sa.Column("rank", sa.Integer, nullable=False),
                    sa.Column("status", T, nullable=False), sa.Column("weight", sa.Numeric, nullable=False),
                    sa.PrimaryKeyConstraint("draw_id", "unit_id"))
    op.create_table("contact_reads", sa.Column("id", sa.BigInteger, sa.Identity(always=True), primary_key=True),
                    sa.Column("campaign_id", T, nullable=False), sa.Column("unit_id", T, nullable=False),
                    sa.Column("actor", T, nullable=False), sa.Column("purpose", T, nullable=False),
                    sa.Column("at", TZ, nullable=False))
    op.create_index("ix_contact_reads_campaign_id", "contact_reads", ["campaign_id"])


def downgrade() -> None:
    for table in ("contact_reads", "sample_units", "draws", "plans", "frame_errors", "frame_units", "frames",
                  "campaign_keys"):
        op.drop_table(table)
