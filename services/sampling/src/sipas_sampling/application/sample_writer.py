"""A draw's live sample written as it is drawn: ``sample_units`` by COPY in chunks, ``SampleDrawn`` part by part.

Memory is bounded by one COPY chunk and one event part, whatever the sample's size: nothing holds the
whole sample. Units must arrive in the order the parts carry them (strata in plan order, each stratum's
sample by rank; reserves are written but never published), and the number selected must be known up
front, because every part names how many parts the draw has. The parts are exactly those a single
list cut every ``PART_SIZE`` units would give.

Two units with one unit id (a campaign salt that collides, or a frame that repeats a dossier) would
merge two respondents: the table's key ``(draw_id, unit_id)`` refuses the second, which is reported as
an unusable salt, as the in-memory check it replaces did.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from decimal import Decimal
from typing import Any, Literal

import asyncpg
from sqlalchemy.ext.asyncio import AsyncConnection

from sipas_events.catalogue.sampling import SampleDrawn, SampledUnit
from sipas_events.store import EventStore, Metadata
from sipas_sampling.application.frames import CHUNK, copy_records
from sipas_sampling.domain.errors import InvalidParameter

PART_SIZE = 1000  # units per SampleDrawn part: keeps every message far below NATS's payload limit
COLUMNS = ["draw_id", "unit_id", "dossier_id", "agency_code", "agency_id", "stratum", "role", "rank", "status",
           "weight"]
Role = Literal["selected", "reserve"]


@dataclass(frozen=True)
class DrawHeader:
    """What every ``SampleDrawn`` part of a draw repeats."""

    draw_id: str
    campaign_id: str
    province: str | None
    frame_digest: str
    seed_commitment: str
    seed: str
    algorithm_version: str


class SampleWriter:
    def __init__(self, conn: AsyncConnection, store: EventStore, meta: Metadata, header: DrawHeader, *,
                 selected: int, units: str = "dossiers") -> None:
        self._conn, self._store, self._meta, self._header = conn, store, meta, header
        self._parts = max(1, -(-selected // PART_SIZE))
        self._what = units
        self._rows: list[tuple[Any, ...]] = []
        self._part: list[SampledUnit] = []
        self._written = 0
        self.selected = self.reserves = 0

    async def add(self, *, unit_id: str, dossier_id: str, agency_code: str, agency_id: str | None, stratum: str,
                  role: Role, rank: int, weight: Decimal) -> None:
        self._rows.append((self._header.draw_id, unit_id, dossier_id, agency_code, agency_id, stratum, role, rank,
                           "active" if role == "selected" else "reserve", weight))
        if len(self._rows) >= CHUNK:
            await self._copy()
        if role == "reserve":
            self.reserves += 1
            return
        self.selected += 1
        self._part.append(SampledUnit(unit_id=unit_id, agency_id=agency_id, agency_code=agency_code,
                                      stratum=stratum, weight=weight))
        if len(self._part) >= PART_SIZE:
            await self._publish()

    async def close(self) -> None:
        """Write what is buffered; the last part (an empty one for an empty sample) goes out now."""
        await self._copy()
        if self._part or not self._written:
            await self._publish()
        if self._written != self._parts:
            raise AssertionError(f"{self._written} SampleDrawn parts written, {self._parts} announced")

    async def _copy(self) -> None:
        if not self._rows:
            return
        try:
            await copy_records(self._conn, "sample_units", COLUMNS, self._rows)
        except asyncpg.UniqueViolationError:
            raise InvalidParameter(f"two {self._what} share a unit id: the campaign salt is unusable",
                                   "seed") from None
        self._rows = []

    async def _publish(self) -> None:
        self._written += 1
        event = SampleDrawn(**asdict(self._header), part=self._written, parts=self._parts, units=self._part)
        await self._store.append(self._conn, f"draw-{self._header.draw_id}", [event], expected_version=None,
                                 meta=self._meta)
        self._part = []
