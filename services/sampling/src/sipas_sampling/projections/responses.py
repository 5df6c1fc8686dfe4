"""Who responded, from the ballots service's events: the input of non-response weighting."""

from __future__ import annotations

from sqlalchemy import update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from sipas_events.catalogue.ballots import BallotAccepted, BallotVoided
from sipas_events.envelope import Envelope
from sipas_events.projection import Projection
from sipas_sampling.adapters.tables import responses

projection = Projection(name="responses", producer="ballots", tables=[responses])


@projection.on("BallotAccepted")
async def on_ballot_accepted(conn: AsyncConnection, e: BallotAccepted, env: Envelope) -> None:
    values = {"ballot_id": e.ballot_id, "campaign_id": e.campaign_id, "voided": False,
              "source_position": env.position}
    await conn.execute(insert(responses).values(unit_id=e.unit_id, **values)
                       .on_conflict_do_update(index_elements=["unit_id"], set_=values))


@projection.on("BallotVoided")
async def on_ballot_voided(conn: AsyncConnection, e: BallotVoided, env: Envelope) -> None:
    await conn.execute(update(responses).where(responses.c.ballot_id == e.ballot_id)
                       .values(voided=True, source_position=env.position))
