"""Events produced by the registry: agencies, reorganisations, campaigns, instruments."""

from __future__ import annotations

import datetime as dt

from pydantic import Field

from sipas_events.catalogue.base import Event, event
from sipas_events.catalogue.types import (
    AgencyLevel,
    Id,
    LegalBasis,
    Part,
    ProvinceCode,
    Text,
    VersionRef,
    Window,
)


@event("registry", 1)
class AgencyRegistered(Event):
    """An agency or administrative unit entered the registry."""

    agency_id: Id
    code: Id = Field(description="Official code")
    name: Text = Field(description="Vietnamese name, NFC")
    level: AgencyLevel
    parent_id: Id | None = None
    province: ProvinceCode | None = None
    valid_from: dt.date
    valid_to: dt.date | None = None


@event("registry", 1)
class AgencyMerged(Event):
    """Several units became one on an effective date, by a legal act."""

    predecessor_ids: list[Id] = Field(min_length=1)
    successor_id: Id
    effective_date: dt.date
    legal_basis: LegalBasis
    province: ProvinceCode | None = None


@event("registry", 1)
class CampaignOpened(Event):
    """A measurement round was opened."""

    campaign_id: Id
    name: Text
    year: int = Field(ge=2017, le=2100)
    scope: str = Field(pattern=r"^(national|province|department|commune)$")
    province: ProvinceCode | None = None
    collection_window: Window
    frame_window: Window
    instrument: VersionRef
    scheme: VersionRef
    target_unit_ids: list[Id] = Field(default_factory=list)
    retention_until: dt.date


class Item(Part):
    code: Id
    text_vi: Text
    text_en: Text | None = None


class Factor(Part):
    code: Id
    name_vi: Text
    name_en: Text | None = None
    items: list[Item] = Field(min_length=1)


class ScaleLevel(Part):
    value: int
    label_vi: Text
    satisfied: bool


@event("registry", 1)
class InstrumentPublished(Event):
    """A questionnaire version was published and may be used by campaigns."""

    instrument_id: Id
    instrument_version: int = Field(ge=1)
    title: Text
    scale: list[ScaleLevel] = Field(min_length=2)
    factors: list[Factor] = Field(min_length=1)
