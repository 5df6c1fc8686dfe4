"""The event backbone's tables (event store, relay state, inbox, checkpoints, dead letters, idempotency).

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from alembic import op

from sipas_events.migrations import v1_downgrade, v1_upgrade

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    v1_upgrade(op)


def downgrade() -> None:
    v1_downgrade(op)
