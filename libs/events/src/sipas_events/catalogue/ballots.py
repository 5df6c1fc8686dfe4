"""Events produced by ballots: issuance, intake outcomes, voids and back-checks."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import Field

from sipas_events.catalogue.base import Event, event
from sipas_events.catalogue.types import Channel, Id, Part, ProvinceCode, Text


@event("ballots", 1)
class BallotIssued(Event):
    """A ballot code was issued to a sampled unit (the code itself is never in an event)."""

    ballot_id: Id
    campaign_id: Id
    unit_id: Id
    agency_id: Id | None
    province: ProvinceCode | None = None


@event("ballots", 1)
class BallotCancelled(Event):
    """A ballot code was cancelled (its unit withdrew, or a reissue replaced it)."""

    ballot_id: Id
    campaign_id: Id
    unit_id: Id
    province: ProvinceCode | None = None
    reason: Text


@event("ballots", 1)
class BallotAccepted(Event):
    """A valid ballot was accepted; it counts in scoring."""

    ballot_id: Id
    campaign_id: Id
    unit_id: Id
    agency_id: Id | None
    stratum: Text
    weight_ref: Id = Field(description="The draw whose weights apply")
    province: ProvinceCode | None = None
    channel: Channel
    answers: dict[str, int | None] = Field(description="Item code -> scale value; None is 'not applicable'")
    expectations: list[Id] = Field(default_factory=list)


@event("ballots", 1)
class BallotRejected(Event):
    """A submission was rejected, with its reason recorded."""

    submission_id: Id
    campaign_id: Id
    province: ProvinceCode | None = None
    channel: Channel
    reason: Literal[
        "unknown_code", "cancelled_code", "used_code", "wrong_campaign", "outside_window", "not_sampled",
        "unknown_item", "off_scale", "unknown_option", "too_many_choices", "too_few_answers",
    ]
    detail: Text
    field: Id | None = Field(default=None, description="The item, option or input at fault")


@event("ballots", 1)
class BallotVoided(Event):
    """An accepted ballot was voided (e.g. a confirmed fabrication); it leaves every index."""

    ballot_id: Id
    campaign_id: Id
    province: ProvinceCode | None = None
    reason: Text


@event("ballots", 1)
class BackcheckRecorded(Event):
    """A call-back (phúc tra) of an accepted ballot was recorded."""

    ballot_id: Id
    campaign_id: Id
    enumerator_id: Id
    province: ProvinceCode | None = None
    outcome: Literal["confirmed", "fabricated", "unreachable"]


class DossierRating(Part):
    dossier_id: Id
    agency_code: Id
    completed_on: dt.date
    rated_unsatisfied: bool = False
    complained: bool = False
    overdue: bool = False


@event("ballots", 1)
class OnlineRatingsRecorded(Event):
    """Per-dossier online ratings (scheme online-766) from a kiosk or portal, newly recorded in one batch."""

    batch_id: Id
    campaign_id: Id
    source_system: Id
    province: ProvinceCode | None = None
    ratings: list[DossierRating] = Field(min_length=1)
