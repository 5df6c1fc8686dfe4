"""What each campaign's figures last announced: ``ScoresUpdated`` is emitted at most every
``scores_event_interval`` seconds per campaign while the stored figures refresh every ``scores_interval``;
the units changed since the last announcement wait in ``pending_units``.

Figures stored before this revision were announced when stored: they start as announced.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("sc_figures", sa.Column("announced_digest", sa.Text,
                                          comment="digest of the figures the last ScoresUpdated announced"))
    op.add_column("sc_figures", sa.Column("announced_at", sa.DateTime(timezone=True)))
    op.add_column("sc_figures", sa.Column("pending_units", JSONB, nullable=False, server_default="[]",
                                          comment="units changed since the last announcement"))
    op.execute("UPDATE sc_figures SET announced_digest = digest, announced_at = computed_at")


def downgrade() -> None:
    for column in ("pending_units", "announced_at", "announced_digest"):
        op.drop_column("sc_figures", column)
