"""Events produced by scoring."""

from __future__ import annotations

import datetime as dt

from pydantic import Field

from sipas_events.catalogue.base import Event, event
from sipas_events.catalogue.types import Id, ProvinceCode, Sha256Hex


@event("scoring", 1)
class ScoresUpdated(Event):
    """Provisional scores changed (emitted at most every few seconds per campaign)."""

    campaign_id: Id
    province: ProvinceCode | None = None
    positions: dict[str, int] = Field(description="Producer -> last store position counted")
    figures_digest: Sha256Hex
    changed_unit_ids: list[Id] = Field(default_factory=list)


@event("scoring", 1)
class ScoreSnapshotTaken(Event):
    """Scores were frozen into a snapshot that records exactly what it covers."""

    snapshot_id: Id
    campaign_id: Id
    province: ProvinceCode | None = None
    taken_at: dt.datetime
    positions: dict[str, int]
    chain_heads: dict[str, Sha256Hex]
    figures_digest: Sha256Hex
