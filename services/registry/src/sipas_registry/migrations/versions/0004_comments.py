"""Column comments the models declare (what each coded value means) written into the database, where
operators reading the schema see them: the tables were created without them. No data changes.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30
"""

from alembic import op

from sipas_kit.migrations import comment_columns

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

COMMENTS = [
    ("agency_imports", "status", 'committed | rejected'),
    ("campaigns", "definition", 'the CampaignOpened payload'),
    ("definitions", "kind", 'instrument | scheme'),
    ("definitions", "status", 'draft | published'),
    ("unit_links", "kind", 'merge | split'),
    ("units", "name", 'current name (history in unit_history)'),
    ("units", "name_search", 'accent-free, case-folded name'),
    ("units", "version", "version of the unit's event stream"),
]


def upgrade() -> None:
    comment_columns(op, COMMENTS)


def downgrade() -> None:
    comment_columns(op, [(table, column, None) for table, column, _ in COMMENTS])
