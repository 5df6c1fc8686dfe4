"""Request and response bodies of the registry API (validated at the edge, NFC text)."""

from __future__ import annotations

import datetime as dt
import unicodedata
import uuid
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

Level = Literal["ministry", "province", "department", "district", "commune", "central_in_province"]
Nfc = Annotated[str, AfterValidator(lambda v: unicodedata.normalize("NFC", v))]
Code = Annotated[str, Field(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9._-]+$", description="Official code")]
ProvinceCode = Annotated[str, Field(pattern=r"^[0-9]{2}$", description="Two-digit province code")]
VERSION_MAX = 2**31 - 1
"""Definition versions are PostgreSQL integers: a larger one names nothing (and must not reach the database)."""
LegalBasis = Annotated[Nfc, Field(min_length=1, max_length=300, description="e.g. Nghị quyết 202/2025/QH15")]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class AgencyIn(Body):
    agency_id: uuid.UUID | None = Field(default=None, description="Chosen by the caller, or generated")
    code: Code
    name: Annotated[Nfc, Field(min_length=1, max_length=300, description="Vietnamese name")]
    level: Level
    parent_id: uuid.UUID | None = None
    province: ProvinceCode | None = None
    valid_from: dt.date
    valid_to: dt.date | None = None
    legal_basis: LegalBasis | None = None


class AgencyOut(BaseModel):
    agency_id: str
    code: str
    name: str
    level: str
    parent_id: str | None
    province: str | None
    valid_from: dt.date
    valid_to: dt.date | None
    legal_basis: str | None = None


class HistoryOut(BaseModel):
    effective_date: dt.date
    name: str
    parent_id: str | None
    legal_basis: str | None


class LinkOut(BaseModel):
    agency_id: str
    code: str
    name: str
    level: str
    effective_date: dt.date
    kind: str
    legal_basis: str
    depth: int = Field(description="1 for a direct successor/predecessor, 2 for one further, …")


class AgencyDetail(AgencyOut):
    version: int
    history: list[HistoryOut]
    predecessors: list[LinkOut]
    successors: list[LinkOut]


class Change(Body):
    effective_date: dt.date
    legal_basis: LegalBasis


class RenameIn(Change):
    name: Annotated[Nfc, Field(min_length=1, max_length=300)]


class ReparentIn(Change):
    parent_id: uuid.UUID | None


class MergeIn(Change):
    predecessor_ids: list[uuid.UUID] = Field(min_length=1, max_length=100)
    successor: AgencyIn = Field(description="The new unit; its valid_from must be the effective date")


class SplitIn(Change):
    predecessor_id: uuid.UUID
    successors: list[AgencyIn] = Field(min_length=2, max_length=100)


class CrosswalkOut(BaseModel):
    agency: AgencyOut
    successors: list[LinkOut]
    predecessors: list[LinkOut]
