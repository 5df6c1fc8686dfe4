"""Events produced by the registry: units and agencies over time, imports, instruments, schemes, campaigns.

Placement: an event lives on the stream of the unit it changes; a merge lives on the successor's
stream (the successor is registered in the same transaction, just before), a split on the
predecessor's. Consumers apply a reorganisation to every unit it names.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Literal

from pydantic import Field, model_validator

from sipas_events.catalogue.base import Event, event
from sipas_events.catalogue.types import (
    AgencyLevel,
    Id,
    LegalBasis,
    Part,
    ProvinceCode,
    Sha256Hex,
    Text,
    VersionRef,
    Window,
)

StratumKey = Literal["agency", "level", "service_field", "area"]
CampaignScope = Literal["national", "province", "department", "commune"]
CampaignStatus = Literal["opened", "sample_approved", "fieldwork_open", "fieldwork_closed", "scores_frozen", "closed"]


# --- units and agencies ------------------------------------------------------------------------

@event("registry", 1)
class AgencyRegistered(Event):
    """An agency or administrative unit entered the registry, valid from a date."""

    agency_id: Id
    code: Id = Field(description="Official code; unique among units whose validity overlaps")
    name: Text = Field(description="Vietnamese name, NFC")
    level: AgencyLevel
    parent_id: Id | None = None
    province: ProvinceCode | None = None
    valid_from: dt.date
    valid_to: dt.date | None = None
    legal_basis: LegalBasis | None = None


@event("registry", 1)
class AgencyRenamed(Event):
    """A unit took a new name from an effective date."""

    agency_id: Id
    name: Text
    previous_name: Text
    effective_date: dt.date
    legal_basis: LegalBasis
    province: ProvinceCode | None = None


@event("registry", 1)
class AgencyReparented(Event):
    """A unit moved under another parent from an effective date."""

    agency_id: Id
    parent_id: Id | None
    previous_parent_id: Id | None
    effective_date: dt.date
    legal_basis: LegalBasis
    province: ProvinceCode | None = None


@event("registry", 1)
class AgencyMerged(Event):
    """Several units became one on an effective date, by a legal act; the predecessors end the day before."""

    predecessor_ids: list[Id] = Field(min_length=1)
    successor_id: Id
    effective_date: dt.date
    legal_basis: LegalBasis
    province: ProvinceCode | None = None


@event("registry", 1)
class AgencySplit(Event):
    """One unit became several on an effective date; it ends the day before."""

    predecessor_id: Id
    successor_ids: list[Id] = Field(min_length=2)
    effective_date: dt.date
    legal_basis: LegalBasis
    province: ProvinceCode | None = None


@event("registry", 1)
class AgencyDissolved(Event):
    """A unit ceased to exist on an effective date (its last valid day is the day before)."""

    agency_id: Id
    effective_date: dt.date
    legal_basis: LegalBasis
    province: ProvinceCode | None = None


@event("registry", 1)
class AgencyImportCompleted(Event):
    """A bulk file of agencies was committed in one transaction (its AgencyRegistered events precede it)."""

    import_id: Id
    filename: Text
    sha256: Sha256Hex
    rows: int = Field(ge=1)
    agency_ids: list[Id]
    province: ProvinceCode | None = None


# --- instruments ---------------------------------------------------------------------------------

class ScaleLevel(Part):
    value: int = Field(ge=0, le=100)
    label_vi: Text
    label_en: Text | None = None
    satisfied: bool = Field(description="Counts as satisfied in share schemes")


class Item(Part):
    code: Id
    text_vi: Text
    text_en: Text | None = None


class Factor(Part):
    code: Id
    name_vi: Text
    name_en: Text | None = None
    items: list[Item] = Field(min_length=1)
    overall_item: Item | None = Field(default=None, description="Optional overall satisfaction with the factor")


class Option(Part):
    code: Id
    text_vi: Text
    text_en: Text | None = None


class Expectations(Part):
    max_choices: int = Field(ge=1)
    options: list[Option] = Field(min_length=1)


class InstrumentDefinition(Part):
    title: Text
    scale: list[ScaleLevel] = Field(min_length=2)
    factors: list[Factor] = Field(min_length=1)
    overall_item: Item | None = None
    expectations: Expectations | None = None
    profile_fields: list[Id] = Field(default_factory=list)
    notes: str | None = Field(default=None, max_length=2000, description="Provenance, e.g. reconstructed wording")


@event("registry", 1)
class InstrumentDrafted(Event):
    """A questionnaire version was drafted or its draft replaced; drafts cannot be used by campaigns."""

    instrument_id: Id
    instrument_version: int = Field(ge=1)
    definition: InstrumentDefinition


@event("registry", 1)
class InstrumentPublished(Event):
    """A questionnaire version was published: immutable from now on, usable by campaigns."""

    instrument_id: Id
    instrument_version: int = Field(ge=1)
    definition: InstrumentDefinition


# --- scoring schemes -----------------------------------------------------------------------------

class Rounding(Part):
    rule: Literal["half_up", "truncate"] = "half_up"
    places: int = Field(default=2, ge=0, le=6)


class LevelPoints(Part):
    level: int
    points: int = Field(ge=0)


class SchemeDefinition(Part):
    kind: Literal["share-satisfied", "points", "online-766"]
    title: Text
    rounding: Rounding = Rounding()
    factor_index: Literal["mean_items", "pooled", "overall_item"] = "mean_items"
    overall_index: Literal["mean_factors", "pooled", "overall_item"] = "mean_factors"
    national_index: Literal["mean_provinces", "population_weighted"] = "mean_provinces"
    points: list[LevelPoints] = Field(default_factory=list, description="points scheme: points per scale level")
    factor_max_points: Decimal = Field(default=Decimal(6), gt=0)
    unanswered: Literal["zero", "answered_only"] = "zero"
    min_answered_share: Decimal = Field(default=Decimal("0.8"), ge=0, le=1)
    small_cell_n: int = Field(default=30, ge=1)
    notes: str | None = Field(default=None, max_length=2000)


@event("registry", 1)
class SchemeDrafted(Event):
    """A scoring-scheme version was drafted or its draft replaced."""

    scheme_id: Id
    scheme_version: int = Field(ge=1)
    definition: SchemeDefinition


@event("registry", 1)
class SchemePublished(Event):
    """A scoring-scheme version was published: immutable from now on, usable by campaigns."""

    scheme_id: Id
    scheme_version: int = Field(ge=1)
    definition: SchemeDefinition


# --- campaigns -----------------------------------------------------------------------------------

def _by_agency() -> list[StratumKey]:
    return ["agency"]


class SamplingSettings(Part):
    design: Literal["frame", "resident"] = "frame"
    method: Literal["slovin", "cochran"] = "slovin"
    margin: Decimal = Field(default=Decimal("0.05"), gt=0, lt=1)
    z: Decimal = Field(default=Decimal("1.96"), gt=0)
    p: Decimal = Field(default=Decimal("0.5"), gt=0, lt=1)
    floor_per_unit: int = Field(default=0, ge=0)
    cap_per_unit: int | None = Field(default=None, ge=1)
    strata: list[StratumKey] = Field(default_factory=_by_agency)
    reserve_ratio: Decimal = Field(default=Decimal("0.2"), ge=0, le=5)
    # The resident design (METHODOLOGY §5): communes of each province, villages by PPS, households.
    # Defaults from the 2024 round: 1,170 villages in 385 communes (≈ 3), 36,525 people (≈ 31 a village).
    commune_method: Literal["srs", "pps", "all"] = Field(
        default="srs", description="Resident stage 1: simple random, PPS on households, or every commune")
    communes: int | None = Field(
        default=None, ge=1, description="Resident stage 1: communes per province (the stratum); not with 'all'")
    villages_per_commune: int = Field(
        default=3, ge=1, description="Resident stage 2: villages per selected commune (systematic PPS)")
    households_per_village: int = Field(
        default=30, ge=1, description="Resident stage 3: households per selected village (SRS), reserves after")

    @model_validator(mode="after")
    def _resident_needs_a_commune_count(self) -> SamplingSettings:
        if self.design == "resident" and self.commune_method != "all" and self.communes is None:
            raise ValueError("the resident design needs `communes` (per province) unless commune_method is 'all'")
        return self


@event("registry", 1)
class CampaignOpened(Event):
    """A measurement round was opened with everything it will be measured by."""

    campaign_id: Id
    name: Text
    year: int = Field(ge=2017, le=2100)
    scope: CampaignScope
    province: ProvinceCode | None = None
    collection_window: Window
    frame_window: Window
    target_unit_ids: list[Id] = Field(min_length=1)
    instrument: VersionRef
    scheme: VersionRef
    sampling: SamplingSettings = SamplingSettings()
    retention_until: dt.date


@event("registry", 1)
class CampaignStatusChanged(Event):
    """A campaign moved one step along opened → … → closed; the envelope's actor is who moved it."""

    campaign_id: Id
    status: CampaignStatus
    previous_status: CampaignStatus
    note: str | None = Field(default=None, max_length=1000)
    province: ProvinceCode | None = None
