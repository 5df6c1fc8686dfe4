"""The live figures document (``sc_figures.document``) stored out of line without compression
(``STORAGE EXTERNAL``): the row is replaced at every refresh, and compressing a national document (pglz,
the only method the embedded server is built with) took more than half of storing it — 107 ms against 45 ms
uncompressed for 3.3 MB here, for 0.9 MB on disk instead of 3.3 MB. Frozen snapshots
(``sc_snapshots``) are written once and kept: they stay compressed.

Only rows written after this revision are stored so (the next refresh rewrites each campaign's row).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01
"""

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE sc_figures ALTER COLUMN document SET STORAGE EXTERNAL")


def downgrade() -> None:
    op.execute("ALTER TABLE sc_figures ALTER COLUMN document SET STORAGE EXTENDED")
