"""Each frame unit's position in its frame's canonical order, so a draw fetches its picks by key.

``canonical_pos`` is the 0-based rank of the row in ``(agency_code, dossier_id)`` order (``COLLATE "C"``)
among its frame's rows, written by the import as it inserts them in that order. A stratum by agency is
then one run of consecutive positions, and the draw fetches the positions it picked through
``ix_frame_units_position`` instead of numbering every row of the stratum. Frames imported before this
revision keep NULL and are drawn by numbering, as before.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("frame_units", sa.Column("canonical_pos", sa.Integer))
    op.create_index("ix_frame_units_position", "frame_units", ["frame_id", "canonical_pos"])


def downgrade() -> None:
    op.drop_index("ix_frame_units_position", "frame_units")
    op.drop_column("frame_units", "canonical_pos")
