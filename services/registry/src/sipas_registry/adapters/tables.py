"""The registry's own tables (beside the backbone's): its read model of agencies."""

from __future__ import annotations

from sqlalchemy import Column, Date, Integer, MetaData, Table, Text

metadata = MetaData()

agencies = Table(
    "agencies", metadata,
    Column("agency_id", Text, primary_key=True),
    Column("code", Text, nullable=False, unique=True),
    Column("name", Text, nullable=False),
    Column("name_search", Text, nullable=False, index=True),
    Column("level", Text, nullable=False),
    Column("parent_id", Text, index=True),
    Column("province", Text, index=True),
    Column("valid_from", Date, nullable=False),
    Column("valid_to", Date),
    Column("version", Integer, nullable=False),
)
