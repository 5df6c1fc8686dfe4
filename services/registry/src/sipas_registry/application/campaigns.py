"""Campaign commands: open (with every reference checked) and advance one step."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from sipas_events.catalogue.registry import CampaignOpened, InstrumentDefinition, SchemeDefinition
from sipas_events.envelope import Envelope
from sipas_events.store import EventStore, Metadata
from sipas_registry.adapters.tables import campaigns
from sipas_registry.application import definitions
from sipas_registry.application.projector import record
from sipas_registry.application.units import find
from sipas_registry.domain import campaigns as domain
from sipas_registry.domain.campaigns import Actor, Campaign
from sipas_registry.domain.definitions import check_pairing


def stream_id(campaign_id: str) -> str:
    return f"campaign-{campaign_id}"


async def load(conn: AsyncConnection, campaign_id: str) -> Campaign | None:
    row = (await conn.execute(select(campaigns).where(campaigns.c.campaign_id == campaign_id))).first()
    return Campaign(row.campaign_id, row.scope, row.province, row.status, row.version) if row else None


async def handle_open(conn: AsyncConnection, store: EventStore, cmd: CampaignOpened, actor: Actor,
                      meta: Metadata) -> Envelope:
    instrument = await definitions.get(conn, "instrument", cmd.instrument.id, cmd.instrument.version)
    scheme = await definitions.get(conn, "scheme", cmd.scheme.id, cmd.scheme.version)
    targets = [await find(conn, unit_id) for unit_id in cmd.target_unit_ids]
    event = domain.open_campaign(cmd, existing=await load(conn, cmd.campaign_id), actor=actor,
                                 instrument=instrument["status"] if instrument else None,
                                 scheme=scheme["status"] if scheme else None, targets=targets)
    assert instrument is not None and scheme is not None
    check_pairing(InstrumentDefinition.model_validate(instrument["definition"]),
                  SchemeDefinition.model_validate(scheme["definition"]))
    [env] = await record(conn, store, meta, [(stream_id(cmd.campaign_id), 0, [event])])
    return env


async def handle_advance(conn: AsyncConnection, store: EventStore, campaign_id: str, to: str, actor: Actor,
                         note: str | None, meta: Metadata) -> Envelope:
    campaign = await load(conn, campaign_id)
    event = domain.advance(campaign, to, actor, note)
    assert campaign is not None
    [env] = await record(conn, store, meta, [(stream_id(campaign_id), campaign.version, [event])])
    return env
