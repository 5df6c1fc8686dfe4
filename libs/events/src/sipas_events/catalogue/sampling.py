"""Events produced by sampling. No personal data ever appears here: units are pseudonymous."""

from __future__ import annotations

from pydantic import Field

from sipas_events.catalogue.base import Event, event
from sipas_events.catalogue.types import ExactDecimal, Id, Part, ProvinceCode, Sha256Hex, Text


@event("sampling", 1)
class FrameImported(Event):
    """A sampling frame was imported; its digest pins the exact rows."""

    frame_id: Id
    campaign_id: Id
    province: ProvinceCode | None = None
    rows: int = Field(ge=0)
    rejected_rows: int = Field(ge=0)
    digest: Sha256Hex


class SampledUnit(Part):
    unit_id: Id = Field(description="Pseudonymous unit id")
    agency_id: Id
    stratum: Id
    weight: ExactDecimal = Field(description="Design weight: frame units / sampled units in the stratum")


@event("sampling", 1)
class SampleDrawn(Event):
    """A verifiable draw selected these units (seed committed before, revealed after)."""

    draw_id: Id
    campaign_id: Id
    province: ProvinceCode | None = None
    frame_digest: Sha256Hex
    seed_commitment: Sha256Hex
    algorithm_version: Id
    units: list[SampledUnit]


@event("sampling", 1)
class UnitReplaced(Event):
    """A sampled unit was replaced by the next reserve of its stratum."""

    draw_id: Id
    campaign_id: Id
    province: ProvinceCode | None = None
    replaced_unit_id: Id
    replacement: SampledUnit
    reason: Text
