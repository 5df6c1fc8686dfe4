"""A campaign's instrument and scheme as the domain needs them, read from the reference projection.

Published definitions never change, so translations are cached per (id, version) for the process.
A campaign the registry has not delivered yet raises :class:`NotReady`: the consumer retries later
(events of different producers arrive in no fixed order), it never dead-letters.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from sipas_events.catalogue.registry import InstrumentDefinition, SchemeDefinition
from sipas_events.consumer import NotReady
from sipas_scoring.adapters.tables import reference
from sipas_scoring.domain.rounding import Rounding
from sipas_scoring.domain.scheme import Factor, Instrument, ScaleLevel, Scheme


@dataclass(frozen=True)
class CampaignBasis:
    """What a campaign is measured by."""

    campaign_id: str
    year: int
    scope: str
    province: str | None
    instrument_ref: tuple[str, int]
    scheme_ref: tuple[str, int]
    instrument: Instrument
    scheme: Scheme
    labels: dict[str, str]
    """Factor and item codes → Vietnamese names (for exports)."""


def instrument_of(d: InstrumentDefinition) -> Instrument:
    return Instrument(
        scale=tuple(ScaleLevel(value=level.value, satisfied=level.satisfied) for level in d.scale),
        factors=tuple(Factor(f.code, tuple(i.code for i in f.items), f.overall_item.code if f.overall_item else None)
                      for f in d.factors),
        overall_item=d.overall_item.code if d.overall_item else None,
        expectation_options=tuple(o.code for o in d.expectations.options) if d.expectations else (),
    )


def scheme_of(d: SchemeDefinition) -> Scheme:
    return Scheme(kind=d.kind, rounding=Rounding(d.rounding.rule, d.rounding.places), factor_index=d.factor_index,
                  overall_index=d.overall_index, national_index=d.national_index,
                  points={p.level: p.points for p in d.points}, factor_max_points=Fraction(d.factor_max_points),
                  unanswered=d.unanswered, small_cell_n=d.small_cell_n)


def labels_of(d: InstrumentDefinition) -> dict[str, str]:
    out: dict[str, str] = {}
    for f in d.factors:
        out[f.code] = f.name_vi
        for item in [*f.items, *([f.overall_item] if f.overall_item else [])]:
            out[item.code] = item.text_vi
    if d.overall_item:
        out[d.overall_item.code] = d.overall_item.text_vi
    return out


class Definitions:
    """Per-process cache of campaign bases (definitions are immutable once published)."""

    def __init__(self) -> None:
        self._bases: dict[tuple[Any, str], CampaignBasis] = {}

    async def basis(self, conn: AsyncConnection, campaign_id: str) -> CampaignBasis:
        key = (conn.engine.url, campaign_id)  # per database (a URL is an immutable tuple; rendering it cost more)
        cached = self._bases.get(key)
        if cached is not None:
            return cached
        t = reference.campaigns
        row = (await conn.execute(select(t).where(t.c.campaign_id == campaign_id))).mappings().first()
        if row is None:
            raise NotReady(f"campaign {campaign_id} is not known to scoring yet")
        definition: dict[str, Any] = row["definition"]
        inst_ref = (definition["instrument"]["id"], int(definition["instrument"]["version"]))
        scheme_ref = (definition["scheme"]["id"], int(definition["scheme"]["version"]))
        instrument = await self._definition(conn, "instrument", inst_ref)
        scheme = await self._definition(conn, "scheme", scheme_ref)
        inst_def = InstrumentDefinition.model_validate(instrument)
        basis = CampaignBasis(
            campaign_id=campaign_id, year=row["year"], scope=row["scope"], province=row["province"],
            instrument_ref=inst_ref, scheme_ref=scheme_ref, instrument=instrument_of(inst_def),
            scheme=scheme_of(SchemeDefinition.model_validate(scheme)), labels=labels_of(inst_def),
        )
        self._bases[key] = basis
        return basis

    @staticmethod
    async def _definition(conn: AsyncConnection, kind: str, ref: tuple[str, int]) -> dict[str, Any]:
        t = reference.definitions
        found = (await conn.execute(select(t.c.definition).where(
            t.c.kind == kind, t.c.def_id == ref[0], t.c.version == ref[1]))).scalar()
        if found is None:
            raise NotReady(f"{kind} {ref[0]} v{ref[1]} is not known to scoring yet")
        return dict(found)


definitions = Definitions()
