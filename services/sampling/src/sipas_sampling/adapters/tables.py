"""The sampling service's own tables beside the backbone's and the registry reference data.

Personal data lives only in ``frame_units.contact`` and ``household_listings.contact``: AES-GCM
ciphertext under the campaign's data key, which itself is stored only wrapped by the master key
(``campaign_keys``). Destroying the wrapped key makes every contact of the campaign unreadable
(crypto-shredding).

The resident design keeps its stage frames in ``frames`` (with ``round_id`` and ``stage``; their
per-row reports in ``frame_errors``), their rows in ``stage_areas`` and ``household_listings``, each
stage's commit-reveal in ``draws`` and its selection in ``stage_units``/``stage_parents``; the final
households join ``sample_units`` like any drawn unit.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Identity,
    Index,
    Integer,
    LargeBinary,
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

campaign_keys = Table(
    "campaign_keys", metadata,
    Column("campaign_id", Text, primary_key=True),
    Column("key_ref", Text, nullable=False, comment="which master key wrapped it"),
    Column("wrapped_key", LargeBinary, comment="NULL once shredded"),
    Column("wrapped_salt", LargeBinary, comment="pseudonym salt, wrapped like the key; NULL once shredded"),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("shredded_at", DateTime(timezone=True)),
)

frames = Table(
    "frames", metadata,
    Column("frame_id", Text, primary_key=True),
    Column("campaign_id", Text, nullable=False, index=True),
    Column("filename", Text, nullable=False),
    Column("file_sha256", Text, nullable=False),
    Column("mode", Text, nullable=False),
    Column("status", Text, nullable=False, comment="imported | rejected"),
    Column("rows", Integer, nullable=False),
    Column("rejected_rows", Integer, nullable=False),
    Column("digest", Text),
    Column("created_by", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("round_id", Text, comment="resident design: the round of this stage frame"),
    Column("stage", Text, comment="resident design: communes | villages | households"),
)

frame_units = Table(
    "frame_units", metadata,
    Column("frame_id", Text, nullable=False),
    Column("dossier_id", Text, nullable=False),
    Column("agency_code", Text, nullable=False),
    Column("agency_id", Text),
    Column("level", Text),
    Column("area", Text, comment="the agency's province"),
    Column("procedure", Text, nullable=False),
    Column("service_field", Text, nullable=False),
    Column("completed_on", Date, nullable=False),
    Column("respondent_type", Text, nullable=False),
    Column("row_hash", LargeBinary, nullable=False, comment="SHA-256 of the canonical row (digest v2)"),
    Column("contact", LargeBinary, comment="nonce || AES-GCM(name, phone, address); NULL once erased"),
    Column("canonical_pos", Integer, comment="0-based rank in the frame's canonical order; NULL before 0007"),
    PrimaryKeyConstraint("frame_id", "dossier_id"),
)
# The frame's canonical order (byte order, whatever the database's collation: 0004) and its ranks (0007).
Index("ix_frame_units_canonical", frame_units.c.frame_id, frame_units.c.agency_code.collate("C"),
      frame_units.c.dossier_id.collate("C"))
Index("ix_frame_units_position", frame_units.c.frame_id, frame_units.c.canonical_pos)

frame_errors = Table(
    "frame_errors", metadata,
    Column("frame_id", Text, nullable=False, index=True),
    Column("line", Integer, nullable=False),
    Column("field", Text, nullable=False),
    Column("code", Text, nullable=False),
    Column("message", Text, nullable=False, comment="never the rejected value itself: it may be personal data"),
)

plans = Table(
    "plans", metadata,
    Column("plan_id", Text, primary_key=True),
    Column("campaign_id", Text, nullable=False, index=True),
    Column("frame_id", Text, nullable=False),
    Column("status", Text, nullable=False, comment="proposed | approved"),
    Column("body", JSONB, nullable=False, comment="the SamplePlanProposed payload"),
    Column("approved_by", Text),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

draws = Table(
    "draws", metadata,
    Column("draw_id", Text, primary_key=True),
    Column("plan_id", Text, comment="frame design"),
    Column("campaign_id", Text, nullable=False, index=True),
    Column("seed_commitment", Text, nullable=False),
    Column("seed", Text),
    Column("status", Text, nullable=False, comment="committed | drawn"),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("round_id", Text, index=True, comment="resident design: the round"),
    Column("stage", Text, comment="resident design: the stage drawn"),
    Column("frame_id", Text, comment="resident design: the stage frame the commitment pinned"),
)

sample_units = Table(
    "sample_units", metadata,
    Column("draw_id", Text, nullable=False),
    Column("unit_id", Text, nullable=False),
    Column("dossier_id", Text, nullable=False),
    Column("agency_code", Text, nullable=False),
    Column("agency_id", Text),
    Column("stratum", Text, nullable=False),
    Column("role", Text, nullable=False, comment="selected | reserve"),
    Column("rank", Integer, nullable=False, comment="order within the stratum's sample or reserve list"),
    Column("status", Text, nullable=False, comment="active | reserve | withdrawn | replacing"),
    Column("weight", Numeric, nullable=False),
    Column("assigned_to", Text, comment="enumerator or post office carrying the unit"),
    PrimaryKeyConstraint("draw_id", "unit_id"),
    Index("ix_sample_units_assigned_to", "draw_id", "assigned_to"),
)

resident_rounds = Table(
    "resident_rounds", metadata,
    Column("round_id", Text, primary_key=True),
    Column("campaign_id", Text, nullable=False, index=True),
    Column("status", Text, nullable=False, comment="the stage to draw next: communes | villages | households | drawn"),
    Column("settings", JSONB, nullable=False, comment="the ResidentRoundOpened payload"),
    Column("created_by", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

stage_areas = Table(
    "stage_areas", metadata,
    Column("frame_id", Text, nullable=False),
    Column("code", Text, nullable=False),
    Column("parent_code", Text, nullable=False, comment="the province (communes) or the commune (villages)"),
    Column("agency_id", Text, comment="communes: the registry's unit"),
    Column("name", Text, comment="villages: the village's name (not personal data)"),
    Column("households", Integer, nullable=False, comment="measure of size"),
    PrimaryKeyConstraint("frame_id", "code"),
)

household_listings = Table(
    "household_listings", metadata,
    Column("frame_id", Text, nullable=False),
    Column("household_key", Text, nullable=False, comment="resident.household_key: pseudonym input, sealing AD"),
    Column("village_code", Text, nullable=False),
    Column("household_id", Text, nullable=False),
    Column("contact", LargeBinary, comment="nonce || AES-GCM(head_name, phone, address); NULL once erased"),
    PrimaryKeyConstraint("frame_id", "household_key"),
)

stage_parents = Table(
    "stage_parents", metadata,
    Column("draw_id", Text, nullable=False),
    Column("parent_code", Text, nullable=False),
    Column("frame_digest", Text, nullable=False),
    Column("units", Integer, nullable=False),
    Column("selected", Integer, nullable=False),
    Column("reserves", Integer, nullable=False),
    Column("inclusion", Text, nullable=False, comment="the parent's own inclusion probability, 'n/d'"),
    PrimaryKeyConstraint("draw_id", "parent_code"),
)

stage_units = Table(
    "stage_units", metadata,
    Column("draw_id", Text, nullable=False),
    Column("code", Text, nullable=False, comment="commune or village code; a household's household_key"),
    Column("parent_code", Text, nullable=False),
    Column("role", Text, nullable=False, comment="selected | reserve"),
    Column("rank", Integer, nullable=False),
    Column("households", Integer, comment="communes and villages: the measure of size"),
    Column("conditional", Text, nullable=False, comment="exact fraction 'n/d'"),
    Column("inclusion", Text, nullable=False, comment="exact fraction 'n/d'"),
    Column("unit_id", Text, comment="households: the pseudonymous unit id"),
    PrimaryKeyConstraint("draw_id", "code"),
)

contact_reads = Table(
    "contact_reads", metadata,
    Column("id", BigInteger, Identity(always=True), primary_key=True),
    Column("campaign_id", Text, nullable=False, index=True),
    Column("unit_id", Text, nullable=False),
    Column("actor", Text, nullable=False),
    Column("purpose", Text, nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
)

responses = Table(
    "responses", metadata,
    Column("unit_id", Text, primary_key=True),
    Column("ballot_id", Text, nullable=False),
    Column("campaign_id", Text, nullable=False, index=True),
    Column("voided", Boolean, nullable=False),
    Column("source_position", BigInteger, nullable=False),
    comment="accepted ballots by unit, from the ballots service: who responded, for non-response weights",
)
