"""The ballots service's own tables: projections of what it learned from other services."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Date, DateTime, MetaData, Table, Text

metadata = MetaData()

agencies = Table(
    "agencies", metadata,
    Column("agency_id", Text, primary_key=True),
    Column("code", Text, nullable=False),
    Column("name", Text, nullable=False),
    Column("level", Text, nullable=False),
    Column("parent_id", Text),
    Column("province", Text, index=True),
    Column("valid_from", Date, nullable=False),
    Column("valid_to", Date),
    Column("registered_at", DateTime(timezone=True), nullable=False, comment="time of the registry event"),
    Column("source_position", BigInteger, nullable=False, comment="registry store position it came from"),
)
