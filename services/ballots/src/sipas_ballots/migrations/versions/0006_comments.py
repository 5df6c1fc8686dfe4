"""Column comments the models declare (what each coded value means) written into the database, where
operators reading the schema see them: the tables were created without them. No data changes.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30
"""

from alembic import op

from sipas_kit.migrations import comment_columns

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

COMMENTS = [
    ("ballot_flags", "kind", 'straight_lining | speeder | near_identical | enumerator_review'),
    ("ballot_flags", "status", 'open | cleared | voided'),
    ("ballot_flags", "level", 'province | ministry: who reviews it now'),
    ("ballots", "status", 'issued | used | cancelled'),
    ("paper_keyings", "seq", '1 or 2: the two blind keyings'),
    ("paper_keyings", "ballot", 'answers, expectations, factors marked not applicable'),
    ("paper_status", "status", 'keyed_once | disputed | settled'),
    ("sampled_units", "status", 'active | withdrawn'),
    ("submissions", "outcome", 'accepted | rejected'),
]


def upgrade() -> None:
    comment_columns(op, COMMENTS)


def downgrade() -> None:
    comment_columns(op, [(table, column, None) for table, column, _ in COMMENTS])
