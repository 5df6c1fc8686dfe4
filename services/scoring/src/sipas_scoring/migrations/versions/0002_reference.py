"""The registry's reference data as this service keeps it (see sipas_kit.reference).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from alembic import op

from sipas_kit.reference import v1_downgrade, v1_upgrade

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    v1_upgrade(op)


def downgrade() -> None:
    v1_downgrade(op)
