"""Agencies as the ballots service knows them, from the registry's events."""

from __future__ import annotations

from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from sipas_ballots.adapters.tables import agencies
from sipas_events.catalogue.registry import AgencyRegistered
from sipas_events.envelope import Envelope
from sipas_events.projection import Projection

projection = Projection(name="agencies", producer="registry", tables=[agencies])


@projection.on("AgencyRegistered")
async def on_agency_registered(conn: AsyncConnection, event: AgencyRegistered, env: Envelope) -> None:
    values = {
        "agency_id": event.agency_id, "code": event.code, "name": event.name, "level": event.level,
        "parent_id": event.parent_id, "province": event.province, "valid_from": event.valid_from,
        "valid_to": event.valid_to, "registered_at": env.time, "source_position": env.position,
    }
    stmt = insert(agencies).values(values)
    await conn.execute(stmt.on_conflict_do_update(index_elements=["agency_id"], set_=values))
