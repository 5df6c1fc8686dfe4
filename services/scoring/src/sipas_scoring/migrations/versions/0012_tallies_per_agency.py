"""Tallies one row per agency: ``sc_tallies.counts`` (``bigint[]``) in the campaign's key layout
``sc_tally_keys.keys`` (:mod:`sipas_scoring.adapters.tally_rows`), instead of one row per agency and key.

Under intake every counted ballot changed some thirty-five rows (its agency's keys), each an ``INSERT … ON
CONFLICT DO UPDATE`` of about 7 µs of server time: at 1,000 ballots/s into a national campaign, a third of a
core of PostgreSQL (``pg_stat_statements`` of the freshness drive, ``docs/performance-scoring.md``). A run of
ballots now reads and rewrites one row per agency it touches.

The rows are converted in place of the old table, keys of each campaign in sorted order; the projection's
export (the key-per-row form, ``tables.TALLIES_EXPORT``) is the same before and after, so its digest is too.
``downgrade`` restores the key-per-row table from the arrays.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01
"""

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

# Frozen here (the models' comments, compared by tests/test_migrations_match_models.py).
TALLY_KEYS_COMMENT = "Each campaign's tally keys, in the order sc_tallies.counts keeps them (adapters.tally_rows)"
TALLIES_COMMENT = "One row per agency: counts[i] counts the campaign's sc_tally_keys.keys[i] (adapters.tally_rows)"


def _quoted(comment: str) -> str:
    return "'" + comment.replace("'", "''") + "'"


def upgrade() -> None:
    op.execute("CREATE TABLE sc_tally_keys (campaign_id text NOT NULL, keys text[] NOT NULL,"
               " CONSTRAINT sc_tally_keys_pkey PRIMARY KEY (campaign_id))")
    op.execute(f"COMMENT ON TABLE sc_tally_keys IS {_quoted(TALLY_KEYS_COMMENT)}")
    op.execute("INSERT INTO sc_tally_keys (campaign_id, keys)"
               " SELECT campaign_id, array_agg(DISTINCT key ORDER BY key) FROM sc_tallies WHERE count <> 0"
               " GROUP BY campaign_id")
    op.execute("CREATE TABLE sc_tallies_0012 (campaign_id text NOT NULL, agency_id text NOT NULL,"
               " counts bigint[] NOT NULL, CONSTRAINT sc_tallies_0012_pkey PRIMARY KEY (campaign_id, agency_id))"
               " WITH (fillfactor = 70)")
    op.execute(
        "INSERT INTO sc_tallies_0012 (campaign_id, agency_id, counts)"
        " SELECT a.campaign_id, a.agency_id, array_agg(coalesce(t.count, 0) ORDER BY k.place)"
        " FROM (SELECT DISTINCT campaign_id, agency_id FROM sc_tallies WHERE count <> 0) AS a"
        " JOIN sc_tally_keys AS l ON l.campaign_id = a.campaign_id"
        " CROSS JOIN LATERAL unnest(l.keys) WITH ORDINALITY AS k(key, place)"
        " LEFT JOIN sc_tallies AS t ON t.campaign_id = a.campaign_id AND t.agency_id = a.agency_id AND t.key = k.key"
        " GROUP BY a.campaign_id, a.agency_id")
    op.execute("DROP TABLE sc_tallies")
    op.execute("ALTER TABLE sc_tallies_0012 RENAME TO sc_tallies")
    op.execute("ALTER TABLE sc_tallies RENAME CONSTRAINT sc_tallies_0012_pkey TO sc_tallies_pkey")
    op.execute(f"COMMENT ON TABLE sc_tallies IS {_quoted(TALLIES_COMMENT)}")


def downgrade() -> None:
    op.execute("CREATE TABLE sc_tallies_0011 (campaign_id text NOT NULL, agency_id text NOT NULL, key text NOT NULL,"
               " count bigint NOT NULL, CONSTRAINT sc_tallies_0011_pkey PRIMARY KEY (campaign_id, agency_id, key))"
               " WITH (fillfactor = 70)")
    op.execute("INSERT INTO sc_tallies_0011 (campaign_id, agency_id, key, count)"
               " SELECT t.campaign_id, t.agency_id, k.key, k.count FROM sc_tallies AS t"
               " JOIN sc_tally_keys AS l ON l.campaign_id = t.campaign_id, unnest(l.keys, t.counts) AS k(key, count)"
               " WHERE k.count <> 0")
    op.execute("DROP TABLE sc_tallies")
    op.execute("DROP TABLE sc_tally_keys")
    op.execute("ALTER TABLE sc_tallies_0011 RENAME TO sc_tallies")
    op.execute("ALTER TABLE sc_tallies RENAME CONSTRAINT sc_tallies_0011_pkey TO sc_tallies_pkey")
