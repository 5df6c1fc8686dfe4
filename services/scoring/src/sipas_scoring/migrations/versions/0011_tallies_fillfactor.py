"""Tallies pages keep room for their counts' updates (``fillfactor`` 70): under intake every counted ballot
updates some thirty rows of ``sc_tallies`` (its agency's keys), and an update that finds no room on its row's
page is written to another page with a new entry in the primary key's index; with room left it stays on the
page (a heap-only tuple), with no index entry, and the page's dead versions are pruned as it is next used.

Without the room, pages written densely — by a recount's or a rebuild's COPY, or by rows inserted one after
another as a campaign's first ballots came — made the first update of each row a non-HOT one: at 1,000
ballots/s into a national campaign of 35,000 counted ballots, the first 15 s of intake kept PostgreSQL busy
enough to slow the figures' refreshes from about 0.8 s to 1.0-1.4 s, and staleness p99 followed
(``docs/performance-scoring.md``).

Pages written after this revision keep the room (existing pages do when the table is next rewritten, e.g. by
``VACUUM FULL sc_tallies``).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01
"""

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE sc_tallies SET (fillfactor = 70)")


def downgrade() -> None:
    op.execute("ALTER TABLE sc_tallies RESET (fillfactor)")
