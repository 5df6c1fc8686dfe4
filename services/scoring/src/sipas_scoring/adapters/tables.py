"""The scoring service's own tables beside the backbone's.

Projection tables (rebuilt from events, exported byte for byte): the registry's reference data, the
sampled units and their weights (from sampling), the counted ballots, their tallies and the online
ratings (from ballots). Working tables (not rebuilt): which campaigns changed since their figures were
last computed, the latest provisional figures, and the frozen snapshots.

The v1 columns are frozen in :func:`_columns_v1`; migration 0003 creates exactly these, and later
migrations add what follows them (0005: ``sc_ballots.answer_codes`` and ``sc_recounts_owed``; 0006: what
each campaign's figures last announced, ``sc_figures.announced_digest``/``announced_at``/``pending_units``;
0007: ``sc_tally_revisions``, a working table; 0012: ``sc_tallies`` one row per agency, its counts in the
campaign's key layout ``sc_tally_keys`` — :mod:`sipas_scoring.adapters.tally_rows`).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    PrimaryKeyConstraint,
    Table,
    Text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSON, JSONB

from sipas_kit.reference import ReferenceTables

metadata = MetaData()
reference = ReferenceTables.on(metadata)
TZ = DateTime(timezone=True)


def _columns_v1() -> dict[str, list[Any]]:
    """Frozen: the v1 shape of scoring's own tables (migration 0003 creates exactly these)."""
    return {
        "sc_units": [
            Column("unit_id", Text, primary_key=True), Column("campaign_id", Text, nullable=False),
            Column("draw_id", Text, nullable=False), Column("agency_id", Text), Column("stratum", Text, nullable=False),
            Column("design_weight", Numeric, nullable=False), Column("status", Text, nullable=False),
            Column("source_position", BigInteger, nullable=False),
        ],
        "sc_weights": [
            Column("draw_id", Text, nullable=False), Column("stratum", Text, nullable=False),
            Column("campaign_id", Text, nullable=False), Column("revision", Integer, nullable=False),
            Column("population", BigInteger, nullable=False), Column("sampled", BigInteger, nullable=False),
            Column("responded", BigInteger, nullable=False), Column("final_weight", Numeric),
            Column("source_position", BigInteger, nullable=False), PrimaryKeyConstraint("draw_id", "stratum"),
        ],
        "sc_ballots": [
            Column("ballot_id", Text, primary_key=True), Column("campaign_id", Text, nullable=False),
            Column("unit_id", Text), Column("agency_id", Text, nullable=False), Column("province", Text),
            Column("stratum", Text), Column("draw_id", Text), Column("channel", Text),
            Column("answers", JSONB), Column("expectations", JSONB), Column("status", Text, nullable=False),
            Column("accepted_position", BigInteger), Column("voided_position", BigInteger),
            Column("accepted_at", TZ),
        ],
        "sc_tallies": [
            Column("campaign_id", Text, nullable=False), Column("agency_id", Text, nullable=False),
            Column("key", Text, nullable=False), Column("count", BigInteger, nullable=False),
            PrimaryKeyConstraint("campaign_id", "agency_id", "key"),
        ],
        "sc_dossiers": [
            Column("campaign_id", Text, nullable=False), Column("dossier_id", Text, nullable=False),
            Column("agency_code", Text, nullable=False), Column("province", Text), Column("completed_on", Date),
            Column("rated_unsatisfied", Boolean, nullable=False), Column("complained", Boolean, nullable=False),
            Column("overdue", Boolean, nullable=False), Column("source_position", BigInteger, nullable=False),
            PrimaryKeyConstraint("campaign_id", "dossier_id"),
        ],
        "sc_dirty": [
            Column("campaign_id", Text, primary_key=True), Column("since", TZ, nullable=False),
            Column("agency_ids", ARRAY(Text), nullable=False), Column("marks", BigInteger, nullable=False),
        ],
        "sc_figures": [
            Column("campaign_id", Text, primary_key=True), Column("computed_at", TZ, nullable=False),
            Column("positions", JSONB, nullable=False), Column("digest", Text, nullable=False),
            Column("document", JSONB, nullable=False),
        ],
        "sc_snapshots": [
            Column("snapshot_id", Text, primary_key=True), Column("campaign_id", Text, nullable=False),
            Column("taken_at", TZ, nullable=False), Column("taken_by", Text, nullable=False),
            Column("positions", JSONB, nullable=False), Column("chain_heads", JSONB, nullable=False),
            Column("digest", Text, nullable=False), Column("document", JSONB, nullable=False),
        ],
    }


def _indexes(tables: dict[str, Table]) -> list[Index]:
    return [
        Index("ix_sc_units_campaign", tables["sc_units"].c.campaign_id),
        Index("ix_sc_ballots_campaign", tables["sc_ballots"].c.campaign_id, tables["sc_ballots"].c.status),
        Index("ix_sc_snapshots_campaign", tables["sc_snapshots"].c.campaign_id),
    ]


_tables = {name: Table(name, metadata, *cols) for name, cols in _columns_v1().items()}
_indexes(_tables)
_tables["sc_ballots"].append_column(Column(
    "answer_codes", LargeBinary, comment="domain.codes: the answers as one byte an item; NULL before 0005"))
for _column in (Column("announced_digest", Text, comment="digest of the figures the last ScoresUpdated announced"),
                Column("announced_at", TZ),
                Column("pending_units", JSONB, nullable=False, server_default="[]",
                       comment="units changed since the last announcement")):
    _tables["sc_figures"].append_column(_column)  # since 0006: ScoresUpdated at most every scores_event_interval
for _position in ("accepted_position", "voided_position"):  # since 0008: a refresh reads the ballots changed since
    Index(f"ix_sc_ballots_{_position}", _tables["sc_ballots"].c.campaign_id, _tables["sc_ballots"].c[_position])
for _name in ("sc_figures", "sc_snapshots"):  # since 0009: the canonical text as written, not parsed into JSONB
    _tables[_name].c.document.type = JSON()
metadata.remove(_tables.pop("sc_tallies"))  # since 0012: one row per agency, not per agency and key
units, weights, ballots, dossiers = (_tables[n] for n in ("sc_units", "sc_weights", "sc_ballots", "sc_dossiers"))

TALLY_KEYS_COMMENT = "Each campaign's tally keys, in the order sc_tallies.counts keeps them (adapters.tally_rows)"
TALLIES_COMMENT = "One row per agency: counts[i] counts the campaign's sc_tally_keys.keys[i] (adapters.tally_rows)"
TALLIES_EXPORT = (
    "SELECT t.campaign_id, t.agency_id, k.key, k.count FROM sc_tallies AS t"
    " JOIN sc_tally_keys AS l ON l.campaign_id = t.campaign_id, unnest(l.keys, t.counts) AS k(key, count)"
    " WHERE k.count <> 0 ORDER BY t.campaign_id, t.agency_id, k.key"
)
"""The tallies' canonical rows — one per agency and key counted, as stored before 0012 — for the projection's
export (:mod:`sipas_events.export`): the layout's order is the order keys were first seen, which a rebuild
(one recount, keys sorted) does not reproduce, so the stored rows are not what is compared."""
tally_keys = Table(
    "sc_tally_keys", metadata, Column("campaign_id", Text, primary_key=True),
    Column("keys", ARRAY(Text), nullable=False), comment=TALLY_KEYS_COMMENT, info={"export": None})
tallies = Table(
    "sc_tallies", metadata, Column("campaign_id", Text, nullable=False), Column("agency_id", Text, nullable=False),
    Column("counts", ARRAY(BigInteger), nullable=False), PrimaryKeyConstraint("campaign_id", "agency_id"),
    comment=TALLIES_COMMENT, info={"export": TALLIES_EXPORT})
dirty, figures, snapshots = _tables["sc_dirty"], _tables["sc_figures"], _tables["sc_snapshots"]

recounts_owed = Table(
    "sc_recounts_owed", metadata, Column("campaign_id", Text, primary_key=True), Column("since", TZ, nullable=False),
    comment="Campaigns whose tallies a rebuild left to a recount (projections.tallies.settle); since 0005")
""":mod:`projections.tallies` writes no tallies while the projection is rebuilt: it marks the campaign here
in the run's transaction, and the recount that settles it deletes the mark in its own."""

tally_revisions = Table(
    "sc_tally_revisions", metadata, Column("campaign_id", Text, primary_key=True),
    Column("revision", Text, nullable=False),
    comment="Changes whenever a recount replaces the campaign's tallies (recount.replace); since 0007")
"""Every other change of the tallies comes with ballots accepted or voided at a stream position, which the
figures read the changed agencies by; a recount does not, so it moves this token and the figures read all
the tallies again (:func:`~sipas_scoring.application.figures.figures_of`)."""


def v1_upgrade(op: Any) -> None:
    for name, cols in _columns_v1().items():
        op.create_table(name, *cols)
    fresh = {name: Table(name, MetaData(), *cols) for name, cols in _columns_v1().items()}
    for index in _indexes(fresh):
        table = next(iter(index.columns)).table
        op.create_index(index.name, table.name, [c.name for c in index.columns])


def v1_downgrade(op: Any) -> None:
    for name in reversed(list(_columns_v1())):
        op.drop_table(name)
