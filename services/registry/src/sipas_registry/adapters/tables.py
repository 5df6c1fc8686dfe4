"""The registry's own tables beside the backbone's: the state its commands decide on.

They are written in the same transaction as the events they come from, by the functions in
``application.projector`` (one per event), so they always agree with the event store.
"""

from __future__ import annotations

from sqlalchemy import Column, Date, DateTime, Integer, MetaData, PrimaryKeyConstraint, Table, Text
from sqlalchemy.dialects.postgresql import JSONB

metadata = MetaData()

units = Table(
    "units", metadata,
    Column("agency_id", Text, primary_key=True),
    Column("code", Text, nullable=False, index=True),
    Column("name", Text, nullable=False, comment="current name (history in unit_history)"),
    Column("name_search", Text, nullable=False, index=True, comment="accent-free, case-folded name"),
    Column("level", Text, nullable=False),
    Column("parent_id", Text, index=True),
    Column("province", Text, index=True),
    Column("valid_from", Date, nullable=False),
    Column("valid_to", Date),
    Column("legal_basis", Text),
    Column("version", Integer, nullable=False, comment="version of the unit's event stream"),
)

unit_history = Table(
    "unit_history", metadata,
    Column("agency_id", Text, nullable=False),
    Column("effective_date", Date, nullable=False),
    Column("name", Text, nullable=False),
    Column("parent_id", Text),
    Column("legal_basis", Text),
    PrimaryKeyConstraint("agency_id", "effective_date"),
)

unit_links = Table(
    "unit_links", metadata,
    Column("predecessor_id", Text, nullable=False),
    Column("successor_id", Text, nullable=False, index=True),
    Column("effective_date", Date, nullable=False),
    Column("kind", Text, nullable=False, comment="merge | split"),
    Column("legal_basis", Text, nullable=False),
    PrimaryKeyConstraint("predecessor_id", "successor_id"),
)

agency_imports = Table(
    "agency_imports", metadata,
    Column("import_id", Text, primary_key=True),
    Column("filename", Text, nullable=False),
    Column("sha256", Text, nullable=False),
    Column("status", Text, nullable=False, comment="committed | rejected"),
    Column("rows", Integer, nullable=False),
    Column("errors", JSONB, nullable=False),
    Column("actor", Text, nullable=False),
    Column("province", Text),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

definitions = Table(
    "definitions", metadata,
    Column("kind", Text, nullable=False, comment="instrument | scheme"),
    Column("def_id", Text, nullable=False),
    Column("version", Integer, nullable=False),
    Column("status", Text, nullable=False, comment="draft | published"),
    Column("title", Text, nullable=False),
    Column("definition", JSONB, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    PrimaryKeyConstraint("kind", "def_id", "version"),
)

campaigns = Table(
    "campaigns", metadata,
    Column("campaign_id", Text, primary_key=True),
    Column("name", Text, nullable=False),
    Column("year", Integer, nullable=False),
    Column("scope", Text, nullable=False),
    Column("province", Text, index=True),
    Column("status", Text, nullable=False),
    Column("definition", JSONB, nullable=False, comment="the CampaignOpened payload"),
    Column("version", Integer, nullable=False),
    Column("opened_at", DateTime(timezone=True), nullable=False),
)

campaign_steps = Table(
    "campaign_steps", metadata,
    Column("campaign_id", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("actor", Text, nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("note", Text),
    PrimaryKeyConstraint("campaign_id", "status"),
)
