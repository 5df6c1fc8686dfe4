"""Field types shared by catalogue events."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

ProvinceCode = Annotated[str, Field(pattern=r"^[0-9]{2}$", description="Official two-digit province code")]
Id = Annotated[str, Field(min_length=1, max_length=100)]
Text = Annotated[str, Field(min_length=1, max_length=500)]
LegalBasis = Annotated[str, Field(min_length=1, max_length=300, description="e.g. Resolution 202/2025/QH15")]
Sha256Hex = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
ExactDecimal = Annotated[Decimal, Field(description="Exact decimal, serialised as a string")]
Probability = Annotated[str, Field(pattern=r"^(0|[1-9][0-9]*)/[1-9][0-9]*$",
                                   description="Exact probability as a reduced fraction 'n/d', e.g. '24/55'")]

AgencyLevel = Literal[
    "ministry",            # ministry or ministry-level agency
    "province",            # province or centrally-run city
    "department",          # provincial department, board or sector
    "district",            # district level, until 2025-07-01
    "commune",             # commune, ward or special zone
    "central_in_province", # central agency located in a province (tax, customs, treasury, social insurance)
]
Channel = Literal["online", "paper", "import", "kiosk"]


class Part(BaseModel):
    """Base for nested value objects inside events."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class Window(Part):
    start: dt.date
    end: dt.date


class VersionRef(Part):
    id: Id
    version: int = Field(ge=1)
