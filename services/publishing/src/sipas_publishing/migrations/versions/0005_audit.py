"""The audit trail: every state-changing request and personal-data read, hash-chained (sipas_kit.audit).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29
"""

from alembic import op

from sipas_kit.audit import v1_downgrade, v1_upgrade

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    v1_upgrade(op)


def downgrade() -> None:
    v1_downgrade(op)
