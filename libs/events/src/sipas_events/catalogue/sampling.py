"""Events produced by sampling. No personal data ever appears here: units are pseudonymous ids.

Names, phone numbers and addresses stay encrypted in the sampling service's own database; what
leaves it is the unit id (an HMAC of the dossier id, or of the listed household, with a secret
per-campaign salt), its agency, stratum and weight.

The resident design (communes → villages → households) reuses the frame design's events, with the
stage named: ``FrameImported`` and ``DrawCommitted`` per stage, ``StageDrawn`` for each stage's reveal,
and ``SampleDrawn`` for the households, so consumers of the sample need not know the design.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from sipas_events.catalogue.base import Event, event
from sipas_events.catalogue.types import ExactDecimal, Id, Part, Probability, ProvinceCode, Sha256Hex, Text

ResidentStage = Literal["communes", "villages", "households"]


@event("sampling", 1)
class FrameImported(Event):
    """A sampling frame was imported; its digest pins the exact rows (no row content travels)."""

    frame_id: Id
    campaign_id: Id
    province: ProvinceCode | None = None
    design: Literal["frame", "resident"] = "frame"
    round_id: Id | None = Field(default=None, description="Resident design: the round the stage frame belongs to")
    stage: ResidentStage | None = Field(default=None, description="Resident design: which stage's frame")
    mode: Literal["all_or_nothing", "accept_valid"]
    rows: int = Field(ge=0, description="Rows accepted into the frame")
    rejected_rows: int = Field(ge=0)
    digest: Sha256Hex
    digest_version: Id


class StratumPlanned(Part):
    key: list[Text] = Field(description="Values of the plan's dimensions, in order")
    population: int = Field(ge=0)
    sample: int = Field(ge=0)
    margin: ExactDecimal | None = Field(description="Expected margin of error at 95% for p = 0.5, with FPC")


@event("sampling", 1)
class SamplePlanProposed(Event):
    """Sizes per stratum, for approval before any draw."""

    plan_id: Id
    campaign_id: Id
    frame_id: Id
    frame_digest: Sha256Hex
    province: ProvinceCode | None = None
    method: Literal["slovin", "cochran"]
    dimensions: list[Id]
    strata: list[StratumPlanned] = Field(min_length=1)
    population: int = Field(ge=0)
    sample: int = Field(ge=0)
    margin: ExactDecimal | None = None


@event("sampling", 1)
class SamplePlanApproved(Event):
    """The ministry or the province approved a plan; the envelope's actor is who."""

    plan_id: Id
    campaign_id: Id
    province: ProvinceCode | None = None


@event("sampling", 1)
class DrawCommitted(Event):
    """Commit: the SHA-256 of the seed, published before the draw (of a plan, or of one resident stage)."""

    draw_id: Id
    plan_id: Id | None = Field(default=None, description="Frame design: the approved plan drawn")
    round_id: Id | None = Field(default=None, description="Resident design: the round")
    stage: ResidentStage | None = Field(default=None, description="Resident design: the stage drawn")
    campaign_id: Id
    province: ProvinceCode | None = None
    frame_digest: Sha256Hex
    seed_commitment: Sha256Hex
    algorithm_version: Id


class SampledUnit(Part):
    unit_id: Id = Field(description="Pseudonymous unit id")
    agency_id: Id | None = Field(description="The registry's agency the unit's dossier belongs to")
    agency_code: Id
    stratum: Text = Field(description="The stratum's label, e.g. 'H29.07|hộ tịch'")
    weight: ExactDecimal = Field(description="Design weight: frame units / sampled units in the stratum (frame "
                                             "design); 1 / overall inclusion probability (resident design)")


@event("sampling", 1)
class SampleDrawn(Event):
    """Reveal: the seed and the units it selects. A large sample comes in several parts of one draw."""

    draw_id: Id
    campaign_id: Id
    province: ProvinceCode | None = None
    frame_digest: Sha256Hex
    seed_commitment: Sha256Hex
    seed: Id
    algorithm_version: Id
    part: int = Field(ge=1)
    parts: int = Field(ge=1)
    units: list[SampledUnit]


@event("sampling", 1)
class ResidentRoundOpened(Event):
    """A resident-design round began: its three stages' sizes, pinned before any stage frame or seed."""

    round_id: Id
    campaign_id: Id
    province: ProvinceCode | None = None
    commune_method: Literal["srs", "pps", "all"]
    communes: int | None = Field(ge=1, description="Communes per province (the stratum); None with 'all'")
    villages_per_commune: int = Field(ge=1)
    households_per_village: int = Field(ge=1)
    algorithm_version: Id


class StageParent(Part):
    code: Id = Field(description="The province (communes stage), the commune (villages) or the village (households)")
    frame_digest: Sha256Hex = Field(description="Digest of the units listed under it, as the draw read them")
    units: int = Field(ge=0, description="Units listed under it")
    selected: int = Field(ge=0)
    reserves: int = Field(ge=0)
    inclusion: Probability = Field(description="Its own overall inclusion probability")


class StageArea(Part):
    code: Id = Field(description="A selected commune or village")
    parent: Id
    rank: int = Field(ge=1)
    households: int = Field(ge=0, description="Measure of size, as listed")
    conditional: Probability = Field(description="Probability of selection given the parent was selected")
    inclusion: Probability = Field(description="Overall inclusion probability: the product down the stages")


@event("sampling", 1)
class StageDrawn(Event):
    """Reveal of one resident stage: the seed and what it selected. No household is named: the households
    stage lists its villages only, and its units travel in ``SampleDrawn`` under pseudonymous ids."""

    draw_id: Id
    round_id: Id
    campaign_id: Id
    province: ProvinceCode | None = None
    stage: ResidentStage
    frame_digest: Sha256Hex
    seed_commitment: Sha256Hex
    seed: Id
    algorithm_version: Id
    parents: list[StageParent]
    areas: list[StageArea] = Field(description="The selected communes or villages; empty at the households stage")


@event("sampling", 1)
class UnitWithdrawn(Event):
    """A sampled unit left the sample (the respondent withdrew, or cannot be reached)."""

    draw_id: Id
    campaign_id: Id
    province: ProvinceCode | None = None
    unit_id: Id
    reason: Literal["withdrawal", "unreachable", "refused", "ineligible"]


@event("sampling", 1)
class UnitReplaced(Event):
    """A withdrawn unit was replaced by the next reserve of its stratum."""

    draw_id: Id
    campaign_id: Id
    province: ProvinceCode | None = None
    replaced_unit_id: Id
    replacement: SampledUnit
    reason: Text


@event("sampling", 1)
class PersonalDataShredded(Event):
    """The campaign's data key was destroyed: its names and contacts can never be read again."""

    campaign_id: Id
    province: ProvinceCode | None = None
    reason: Literal["retention_ended", "ordered"]
    rows: int = Field(ge=0, description="Encrypted rows made unreadable")


class StratumWeights(Part):
    stratum: Text
    population: int = Field(ge=0)
    sampled: int = Field(ge=0)
    responded: int = Field(ge=0)
    design_weight: ExactDecimal
    adjustment: ExactDecimal | None = Field(description="sampled / responded; None when nobody responded")
    final_weight: ExactDecimal | None


@event("sampling", 1)
class WeightsAdjusted(Event):
    """Non-response adjustment within strata (fieldwork closed); a later revision supersedes an earlier one."""

    draw_id: Id
    campaign_id: Id
    province: ProvinceCode | None = None
    revision: int = Field(ge=1)
    strata: list[StratumWeights]
