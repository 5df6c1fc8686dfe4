"""Events produced by publishing; partners receive these."""

from __future__ import annotations

import datetime as dt

from pydantic import Field

from sipas_events.catalogue.base import Event, event
from sipas_events.catalogue.types import Id, ProvinceCode, Sha256Hex, Text


@event("publishing", 1)
class ReleaseDrafted(Event):
    """A release was drafted from a score snapshot whose figures matched the snapshot's digest."""

    release_id: Id
    snapshot_id: Id
    campaign_id: Id
    province: ProvinceCode | None = None
    figures_digest: Sha256Hex
    drafted_by: Id
    supersedes: Id | None = Field(default=None, description="The published release this one corrects")


@event("publishing", 1)
class ReleaseSubmitted(Event):
    """A draft was submitted for review; someone other than its drafter must approve it."""

    release_id: Id
    campaign_id: Id
    province: ProvinceCode | None = None
    submitted_by: Id


@event("publishing", 1)
class ReleaseScheduled(Event):
    """An approved release will be published when its embargo ends."""

    release_id: Id
    campaign_id: Id
    province: ProvinceCode | None = None
    embargo_until: dt.datetime
    scheduled_by: Id


@event("publishing", 1)
class ReleaseApproved(Event):
    """A draft release was approved by a second person."""

    release_id: Id
    snapshot_id: Id
    campaign_id: Id
    province: ProvinceCode | None = None
    approved_by: Id


@event("publishing", 1)
class ReleasePublished(Event):
    """A release became public; its manifest is hashed and signed."""

    release_id: Id
    campaign_id: Id
    province: ProvinceCode | None = None
    manifest_sha256: Sha256Hex
    signature: str = Field(pattern=r"^[0-9a-f]{128}$", description="Ed25519 signature, hex")
    url: str
    supersedes: Id | None = None


@event("publishing", 1)
class ReleaseRetracted(Event):
    """A published release was retracted (never deleted)."""

    release_id: Id
    campaign_id: Id
    province: ProvinceCode | None = None
    reason: Text
