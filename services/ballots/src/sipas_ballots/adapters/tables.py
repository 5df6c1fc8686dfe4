"""The ballots service's tables: the sampled units it learned from sampling, ballot codes,
every submission's outcome, and accepted ballots. Codes live only here (never in an event)."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    Identity,
    Integer,
    MetaData,
    Numeric,
    PrimaryKeyConstraint,
    Table,
    Text,
)
from sqlalchemy.dialects.postgresql import JSONB

from sipas_kit.reference import ReferenceTables

metadata = MetaData()
reference = ReferenceTables.on(metadata)

sampled_units = Table(
    "sampled_units", metadata,
    Column("unit_id", Text, primary_key=True),
    Column("campaign_id", Text, nullable=False, index=True),
    Column("draw_id", Text, nullable=False),
    Column("agency_id", Text),
    Column("agency_code", Text, nullable=False),
    Column("stratum", Text, nullable=False),
    Column("weight", Numeric, nullable=False),
    Column("status", Text, nullable=False, comment="active | withdrawn"),
    Column("province", Text),
    Column("source_position", BigInteger, nullable=False),
)

ballots = Table(
    "ballots", metadata,
    Column("ballot_id", Text, primary_key=True),
    Column("campaign_id", Text, nullable=False, index=True),
    Column("unit_id", Text, nullable=False, index=True),
    Column("code", Text, nullable=False, unique=True),
    Column("status", Text, nullable=False, comment="issued | used | cancelled"),
    Column("cancel_reason", Text),
    Column("issued_at", DateTime(timezone=True), nullable=False),
)

submissions = Table(
    "submissions", metadata,
    Column("submission_id", Text, primary_key=True),
    Column("campaign_id", Text, nullable=False, index=True),
    Column("channel", Text, nullable=False),
    Column("outcome", Text, nullable=False, comment="accepted | rejected"),
    Column("reason", Text),
    Column("detail", Text),
    Column("ballot_id", Text),
    Column("received_at", DateTime(timezone=True), nullable=False),
)

accepted = Table(
    "accepted_ballots", metadata,
    Column("ballot_id", Text, primary_key=True),
    Column("campaign_id", Text, nullable=False, index=True),
    Column("unit_id", Text, nullable=False),
    Column("channel", Text, nullable=False),
    Column("answers", JSONB, nullable=False),
    Column("expectations", JSONB, nullable=False),
    Column("entered_by", Text),
    Column("entry_seconds", Float),
    Column("accepted_at", DateTime(timezone=True), nullable=False),
    Column("voided", Boolean, nullable=False, server_default="false"),
)

paper_keyings = Table(
    "paper_keyings", metadata,
    Column("code", Text, nullable=False),
    Column("seq", Integer, nullable=False, comment="1 or 2: the two blind keyings"),
    Column("campaign_id", Text, nullable=False),
    Column("clerk", Text, nullable=False),
    Column("ballot", JSONB, nullable=False, comment="answers, expectations, factors marked not applicable"),
    Column("entry_seconds", Float),
    Column("keyed_at", DateTime(timezone=True), nullable=False),
    PrimaryKeyConstraint("code", "seq"),
)

paper_status = Table(
    "paper_status", metadata,
    Column("code", Text, primary_key=True),
    Column("campaign_id", Text, nullable=False, index=True),
    Column("province", Text),
    Column("status", Text, nullable=False, comment="keyed_once | disputed | settled"),
    Column("disagreements", JSONB),
    Column("settled_by", Text),
    Column("outcome", Text),
)

online_ratings = Table(
    "online_ratings", metadata,
    Column("source_system", Text, nullable=False),
    Column("dossier_id", Text, nullable=False),
    Column("campaign_id", Text, nullable=False, index=True),
    Column("agency_code", Text, nullable=False),
    Column("completed_on", Date, nullable=False),
    Column("rated_unsatisfied", Boolean, nullable=False),
    Column("complained", Boolean, nullable=False),
    Column("overdue", Boolean, nullable=False),
    Column("batch_id", Text, nullable=False),
    PrimaryKeyConstraint("source_system", "dossier_id"),
)

ballot_flags = Table(
    "ballot_flags", metadata,
    Column("ballot_id", Text, nullable=False),
    Column("campaign_id", Text, nullable=False, index=True),
    Column("kind", Text, nullable=False, comment="straight_lining | speeder | near_identical | enumerator_review"),
    Column("reason", Text, nullable=False),
    Column("status", Text, nullable=False, comment="open | cleared | voided"),
    Column("level", Text, nullable=False, comment="province | ministry: who reviews it now"),
    PrimaryKeyConstraint("ballot_id", "kind"),
)

review_log = Table(
    "review_log", metadata,
    Column("id", BigInteger, Identity(always=True), primary_key=True),
    Column("ballot_id", Text, nullable=False, index=True),
    Column("campaign_id", Text, nullable=False, index=True),
    Column("actor", Text, nullable=False),
    Column("action", Text, nullable=False),
    Column("comment", Text, nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
)

backchecks = Table(
    "backchecks", metadata,
    Column("ballot_id", Text, primary_key=True),
    Column("campaign_id", Text, nullable=False, index=True),
    Column("enumerator", Text, nullable=False),
    Column("rank", Integer, nullable=False),
    Column("outcome", Text),
    Column("recorded_by", Text),
)
