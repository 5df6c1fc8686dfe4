"""The sample as scoring needs it: each unit's stratum and design weight, and the adjusted weights.

Weights never change a tally; they change the weighted estimates, so a ``WeightsAdjusted`` marks the
campaign's figures stale. A later revision supersedes an earlier one; an older one arriving late
(it cannot within one producer, but a replay may repeat it) changes nothing.
"""

from __future__ import annotations

from sqlalchemy import update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from sipas_events.catalogue.sampling import SampleDrawn, SampledUnit, UnitReplaced, UnitWithdrawn, WeightsAdjusted
from sipas_events.envelope import Envelope
from sipas_events.projection import Projection
from sipas_scoring.adapters.tables import units, weights
from sipas_scoring.projections.marks import mark_dirty

projection = Projection(name="sample", producer="sampling", tables=[units, weights])


async def _units(conn: AsyncConnection, sampled: list[SampledUnit], campaign_id: str, draw_id: str,
                 env: Envelope) -> None:
    rows = [{"unit_id": u.unit_id, "campaign_id": campaign_id, "draw_id": draw_id, "agency_id": u.agency_id,
             "stratum": u.stratum, "design_weight": u.weight, "status": "active", "source_position": env.position}
            for u in sampled]
    if rows:
        stmt = insert(units).values(rows)
        await conn.execute(stmt.on_conflict_do_update(index_elements=["unit_id"], set_={
            c: stmt.excluded[c] for c in ("campaign_id", "draw_id", "agency_id", "stratum", "design_weight",
                                          "status", "source_position")}))


@projection.on("SampleDrawn")
async def on_sample_drawn(conn: AsyncConnection, e: SampleDrawn, env: Envelope) -> None:
    await _units(conn, list(e.units), e.campaign_id, e.draw_id, env)
    await mark_dirty(conn, e.campaign_id, env, [])


@projection.on("UnitReplaced")
async def on_unit_replaced(conn: AsyncConnection, e: UnitReplaced, env: Envelope) -> None:
    await conn.execute(update(units).where(units.c.unit_id == e.replaced_unit_id)
                       .values(status="replaced", source_position=env.position))
    await _units(conn, [e.replacement], e.campaign_id, e.draw_id, env)


@projection.on("UnitWithdrawn")
async def on_unit_withdrawn(conn: AsyncConnection, e: UnitWithdrawn, env: Envelope) -> None:
    await conn.execute(update(units).where(units.c.unit_id == e.unit_id)
                       .values(status="withdrawn", source_position=env.position))


@projection.on("WeightsAdjusted")
async def on_weights_adjusted(conn: AsyncConnection, e: WeightsAdjusted, env: Envelope) -> None:
    rows = [{"draw_id": e.draw_id, "stratum": s.stratum, "campaign_id": e.campaign_id, "revision": e.revision,
             "population": s.population, "sampled": s.sampled, "responded": s.responded,
             "final_weight": s.final_weight, "source_position": env.position} for s in e.strata]
    if rows:
        stmt = insert(weights).values(rows)
        await conn.execute(stmt.on_conflict_do_update(
            index_elements=["draw_id", "stratum"],
            set_={c: stmt.excluded[c] for c in ("campaign_id", "revision", "population", "sampled", "responded",
                                                 "final_weight", "source_position")},
            where=weights.c.revision < stmt.excluded.revision))
    await mark_dirty(conn, e.campaign_id, env, [])
