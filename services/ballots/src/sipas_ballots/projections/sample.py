"""The sample as the ballots service knows it, from sampling's events — and one ballot per unit.

Issuing is part of applying ``SampleDrawn``/``UnitReplaced``: the ballot row and its ``BallotIssued``
event commit in the same transaction as the inbox row, so a redelivered draw issues nothing twice.
Ballots are not part of the projection's tables: a rebuild re-creates the sample but never re-issues
(a unit that already has a ballot keeps it).
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from sipas_ballots.adapters.tables import ballots, sampled_units
from sipas_ballots.domain.codes import new_code
from sipas_events.catalogue.ballots import BallotCancelled, BallotIssued
from sipas_events.catalogue.sampling import SampleDrawn, SampledUnit, UnitReplaced, UnitWithdrawn
from sipas_events.envelope import Envelope
from sipas_events.ids import new_id
from sipas_events.projection import Projection
from sipas_events.store import EventStore, Metadata, StreamAppend

projection = Projection(name="sample", producer="sampling", tables=[sampled_units])
store = EventStore("ballots")


def _meta(env: Envelope) -> Metadata:
    return Metadata(correlation_id=env.correlationid, actor="service:ballots", causation_id=str(env.id))


_UNIT_COLUMNS = ("campaign_id", "draw_id", "agency_id", "agency_code", "stratum", "weight", "status", "province",
                 "source_position")


async def _units(conn: AsyncConnection, units: list[SampledUnit], campaign_id: str, draw_id: str,
                 province: str | None, env: Envelope) -> None:
    """Upsert the units, all in one statement (a part of a draw carries up to a thousand)."""
    if not units:
        return
    stmt = insert(sampled_units)
    await conn.execute(stmt.on_conflict_do_update(
        index_elements=["unit_id"], set_={c: stmt.excluded[c] for c in _UNIT_COLUMNS}), [
        {"unit_id": u.unit_id, "campaign_id": campaign_id, "draw_id": draw_id, "agency_id": u.agency_id,
         "agency_code": u.agency_code, "stratum": u.stratum, "weight": u.weight, "status": "active",
         "province": province, "source_position": env.position} for u in units])


async def _issue(conn: AsyncConnection, units: list[SampledUnit], campaign_id: str, province: str | None,
                 env: Envelope) -> None:
    """A ballot and its ``BallotIssued`` for each unit without one: the rows in one statement, the events in
    one ``append_many`` (each ballot its own stream, at version 1)."""
    have = set((await conn.execute(select(ballots.c.unit_id).where(
        ballots.c.unit_id.in_([u.unit_id for u in units])))).scalars())
    fresh = [(str(new_id()), u) for u in units if u.unit_id not in have]
    if not fresh:
        return
    now = dt.datetime.now(dt.UTC)
    await conn.execute(insert(ballots), [
        {"ballot_id": ballot_id, "campaign_id": campaign_id, "unit_id": u.unit_id, "code": new_code(),
         "status": "issued", "issued_at": now} for ballot_id, u in fresh])
    await store.append_many(conn, [StreamAppend(f"ballot-{ballot_id}", [BallotIssued(
        ballot_id=ballot_id, campaign_id=campaign_id, unit_id=u.unit_id, agency_id=u.agency_id,
        province=province)], 0) for ballot_id, u in fresh], meta=_meta(env))


@projection.on("SampleDrawn")
async def on_sample_drawn(conn: AsyncConnection, e: SampleDrawn, env: Envelope) -> None:
    await _units(conn, list(e.units), e.campaign_id, e.draw_id, e.province, env)
    await _issue(conn, list(e.units), e.campaign_id, e.province, env)


@projection.on("UnitReplaced")
async def on_unit_replaced(conn: AsyncConnection, e: UnitReplaced, env: Envelope) -> None:
    await _units(conn, [e.replacement], e.campaign_id, e.draw_id, e.province, env)
    await _issue(conn, [e.replacement], e.campaign_id, e.province, env)


@projection.on("UnitWithdrawn")
async def on_unit_withdrawn(conn: AsyncConnection, e: UnitWithdrawn, env: Envelope) -> None:
    await conn.execute(update(sampled_units).where(sampled_units.c.unit_id == e.unit_id)
                       .values(status="withdrawn", source_position=env.position))
    cancelled = (await conn.execute(
        update(ballots).where(ballots.c.unit_id == e.unit_id, ballots.c.status == "issued")
        .values(status="cancelled", cancel_reason=f"unit {e.reason}").returning(ballots.c.ballot_id))).scalars().all()
    for ballot_id in cancelled:
        await store.append(conn, f"ballot-{ballot_id}", [BallotCancelled(
            ballot_id=ballot_id, campaign_id=e.campaign_id, unit_id=e.unit_id, province=e.province,
            reason=f"unit {e.reason}")], expected_version=None, meta=_meta(env))
