"""Publishing's own tables: snapshots and seed commitments (projections), releases (immutable once
published), API keys, webhook subscriptions, deliveries and their log.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from alembic import op

from sipas_publishing.adapters.tables import v1_downgrade, v1_upgrade

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    v1_upgrade(op)


def downgrade() -> None:
    v1_downgrade(op)
