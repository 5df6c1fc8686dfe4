"""Figures and snapshot documents stored as ``json``: the canonical text the figures process wrote, byte
for byte, rather than parsed into ``jsonb``. Storing a national document took half the time, and the stored
text is what the digest is computed from: ``sha256(document::text) = digest`` can be checked in SQL.

Documents stored before this revision are converted from their ``jsonb`` form, whose text is not the
canonical one (the next refresh replaces a campaign's figures; a snapshot's frozen text stays as converted,
and its canonical form — what ``/v1/snapshots/{id}/document`` serves — still hashes to its digest).

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30
"""

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for table in ("sc_figures", "sc_snapshots"):
        op.execute(f"ALTER TABLE {table} ALTER COLUMN document TYPE json USING document::json")


def downgrade() -> None:
    for table in ("sc_figures", "sc_snapshots"):
        op.execute(f"ALTER TABLE {table} ALTER COLUMN document TYPE jsonb USING document::jsonb")
