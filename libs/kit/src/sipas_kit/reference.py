"""The registry's reference data as every other service keeps it: a projection, its tables, a read API.

Each consuming service owns its copy (tables in its own database, created by its own migration via
the frozen ``v1_upgrade``); handlers depend only on the event, so a rebuild reproduces the tables
byte for byte. The read API lets operators and tests see exactly what a service has learned.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel
from sqlalchemy import (
    BigInteger,
    Column,
    Date,
    DateTime,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from sipas_events.catalogue import registry as ev
from sipas_events.envelope import Envelope
from sipas_events.projection import Projection
from sipas_kit.auth import CurrentPrincipal, Principal
from sipas_kit.http import Ctx
from sipas_kit.pagination import MAX_LIMIT, Page, decode_cursor, page_of

DAY = dt.timedelta(days=1)


def _columns_v1() -> dict[str, list[Any]]:
    """Frozen: the v1 shape of the reference tables (a migration creates exactly these)."""
    return {
        "ref_agencies": [
            Column("agency_id", Text, primary_key=True), Column("code", Text, nullable=False),
            Column("name", Text, nullable=False), Column("level", Text, nullable=False), Column("parent_id", Text),
            Column("province", Text), Column("valid_from", Date, nullable=False), Column("valid_to", Date),
            Column("updated_at", DateTime(timezone=True), nullable=False),
            Column("source_position", BigInteger, nullable=False),
        ],
        "ref_agency_links": [
            Column("predecessor_id", Text, nullable=False), Column("successor_id", Text, nullable=False),
            Column("effective_date", Date, nullable=False), Column("kind", Text, nullable=False),
            Column("legal_basis", Text, nullable=False), PrimaryKeyConstraint("predecessor_id", "successor_id"),
        ],
        "ref_campaigns": [
            Column("campaign_id", Text, primary_key=True), Column("status", Text, nullable=False),
            Column("year", Integer, nullable=False), Column("scope", Text, nullable=False), Column("province", Text),
            Column("definition", JSONB, nullable=False), Column("updated_at", DateTime(timezone=True), nullable=False),
            Column("source_position", BigInteger, nullable=False),
        ],
        "ref_definitions": [
            Column("kind", Text, nullable=False), Column("def_id", Text, nullable=False),
            Column("version", Integer, nullable=False), Column("definition", JSONB, nullable=False),
            Column("source_position", BigInteger, nullable=False), PrimaryKeyConstraint("kind", "def_id", "version"),
        ],
    }


@dataclass(frozen=True)
class ReferenceTables:
    agencies: Table
    links: Table
    campaigns: Table
    definitions: Table

    @classmethod
    def on(cls, metadata: MetaData) -> ReferenceTables:
        t = {name: Table(name, metadata, *cols) for name, cols in _columns_v1().items()}
        Index("ix_ref_agencies_province", t["ref_agencies"].c.province)
        return cls(t["ref_agencies"], t["ref_agency_links"], t["ref_campaigns"], t["ref_definitions"])


def v1_upgrade(op: Any) -> None:
    for name, cols in _columns_v1().items():
        op.create_table(name, *cols)
    op.create_index("ix_ref_agencies_province", "ref_agencies", ["province"])


def v1_downgrade(op: Any) -> None:
    for name in reversed(list(_columns_v1())):
        op.drop_table(name)


def reference_projection(t: ReferenceTables) -> Projection:
    p = Projection(name="registry-reference", producer="registry",
                   tables=[t.agencies, t.links, t.campaigns, t.definitions])

    async def end(conn: AsyncConnection, ids: list[str], effective: dt.date) -> None:
        await conn.execute(update(t.agencies).where(t.agencies.c.agency_id.in_(ids)).values(valid_to=effective - DAY))

    async def link(conn: AsyncConnection, pairs: list[tuple[str, str]], e: Any, kind: str) -> None:
        rows = [{"predecessor_id": a, "successor_id": b, "effective_date": e.effective_date, "kind": kind,
                 "legal_basis": e.legal_basis} for a, b in pairs]
        await conn.execute(pg_insert(t.links).values(rows).on_conflict_do_nothing())

    inserting = pg_insert(t.agencies)
    upsert = inserting.on_conflict_do_update(index_elements=["agency_id"], set_={
        c.name: inserting.excluded[c.name] for c in t.agencies.columns if c.name != "agency_id"})

    def registered(e: ev.AgencyRegistered, env: Envelope) -> dict[str, Any]:
        return {"agency_id": e.agency_id, "code": e.code, "name": e.name, "level": e.level, "parent_id": e.parent_id,
                "province": e.province, "valid_from": e.valid_from, "valid_to": e.valid_to, "updated_at": env.time,
                "source_position": env.position}

    @p.on("AgencyRegistered")
    async def on_agency_registered(conn: AsyncConnection, e: ev.AgencyRegistered, env: Envelope) -> None:
        await conn.execute(upsert, [registered(e, env)])

    @p.on_run
    async def apply_run(conn: AsyncConnection, events: Sequence[tuple[Any, Envelope]]) -> None:
        """The run's events in order, each consecutive stretch of registrations in one statement (an import
        registers thousands of units: a statement each was most of the time every service took to learn
        them); an agency registered twice in a stretch keeps its later registration, as one by one."""
        stretch: dict[str, dict[str, Any]] = {}
        for e, env in events:
            if type(e) is ev.AgencyRegistered:
                stretch[e.agency_id] = registered(e, env)
                continue
            if stretch:
                await conn.execute(upsert, list(stretch.values()))
                stretch.clear()
            await p.handlers[env.event_name](conn, e, env)
        if stretch:
            await conn.execute(upsert, list(stretch.values()))

    async def change(conn: AsyncConnection, agency_id: str, env: Envelope, **values: Any) -> None:
        await conn.execute(update(t.agencies).where(t.agencies.c.agency_id == agency_id)
                           .values(**values, updated_at=env.time, source_position=env.position))

    @p.on("AgencyRenamed")
    async def on_agency_renamed(conn: AsyncConnection, e: ev.AgencyRenamed, env: Envelope) -> None:
        await change(conn, e.agency_id, env, name=e.name)

    @p.on("AgencyReparented")
    async def on_agency_reparented(conn: AsyncConnection, e: ev.AgencyReparented, env: Envelope) -> None:
        await change(conn, e.agency_id, env, parent_id=e.parent_id)

    @p.on("AgencyMerged")
    async def on_agency_merged(conn: AsyncConnection, e: ev.AgencyMerged, env: Envelope) -> None:
        await end(conn, e.predecessor_ids, e.effective_date)
        await link(conn, [(x, e.successor_id) for x in e.predecessor_ids], e, "merge")

    @p.on("AgencySplit")
    async def on_agency_split(conn: AsyncConnection, e: ev.AgencySplit, env: Envelope) -> None:
        await end(conn, [e.predecessor_id], e.effective_date)
        await link(conn, [(e.predecessor_id, x) for x in e.successor_ids], e, "split")

    @p.on("AgencyDissolved")
    async def on_agency_dissolved(conn: AsyncConnection, e: ev.AgencyDissolved, env: Envelope) -> None:
        await end(conn, [e.agency_id], e.effective_date)

    async def published(conn: AsyncConnection, kind: str, ident: str, version: int, definition: Any,
                        env: Envelope) -> None:
        stmt = pg_insert(t.definitions).values(kind=kind, def_id=ident, version=version, source_position=env.position,
                                               definition=definition.model_dump(mode="json"))
        await conn.execute(stmt.on_conflict_do_nothing())  # a published version never changes

    @p.on("InstrumentPublished")
    async def on_instrument_published(conn: AsyncConnection, e: ev.InstrumentPublished, env: Envelope) -> None:
        await published(conn, "instrument", e.instrument_id, e.instrument_version, e.definition, env)

    @p.on("SchemePublished")
    async def on_scheme_published(conn: AsyncConnection, e: ev.SchemePublished, env: Envelope) -> None:
        await published(conn, "scheme", e.scheme_id, e.scheme_version, e.definition, env)

    @p.on("CampaignOpened")
    async def on_campaign_opened(conn: AsyncConnection, e: ev.CampaignOpened, env: Envelope) -> None:
        values = {"status": "opened", "year": e.year, "scope": e.scope, "province": e.province,
                  "definition": e.payload(), "updated_at": env.time, "source_position": env.position}
        stmt = pg_insert(t.campaigns).values(campaign_id=e.campaign_id, **values)
        await conn.execute(stmt.on_conflict_do_update(index_elements=["campaign_id"], set_=values))

    @p.on("CampaignStatusChanged")
    async def on_campaign_status_changed(conn: AsyncConnection, e: ev.CampaignStatusChanged, env: Envelope) -> None:
        await conn.execute(update(t.campaigns).where(t.campaigns.c.campaign_id == e.campaign_id)
                           .values(status=e.status, updated_at=env.time, source_position=env.position))

    return p


class KnownAgency(BaseModel):
    agency_id: str
    code: str
    name: str
    level: str
    parent_id: str | None
    province: str | None
    valid_from: dt.date
    valid_to: dt.date | None
    source_position: int


class KnownCampaign(BaseModel):
    campaign_id: str
    status: str
    year: int
    scope: str
    province: str | None
    definition: dict[str, Any]
    source_position: int


class KnownDefinition(BaseModel):
    kind: str
    def_id: str
    version: int
    definition: dict[str, Any]
    source_position: int


def reference_router(t: ReferenceTables) -> APIRouter:
    """``/v1/reference/…``: what this service has learned from the registry, scoped like everything else:
    a provincial caller sees their province's units and every ministry and province (as in the registry),
    and the links that have one of those at either end (where their units came from or went)."""
    router = APIRouter(prefix="/v1/reference", tags=["reference data (from the registry)"])
    c = t.agencies.c

    def seen_by(who: Principal) -> Any:
        return or_(c.province == who.province, c.level.in_(["province", "ministry"]))

    @router.get("/agencies", response_model=Page[KnownAgency], summary="Units and agencies this service knows")
    async def known_agencies(
        ctx: Ctx, who: CurrentPrincipal, province: Annotated[str | None, Query(pattern=r"^[0-9]{2}$")] = None,
        as_of: dt.date | None = None, cursor: str | None = None,
        limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
    ) -> Page[KnownAgency]:
        stmt = select(t.agencies).order_by(c.agency_id).limit(limit + 1)
        if not who.can_act_in(province):
            stmt = stmt.where(seen_by(who))
        if province:
            stmt = stmt.where(c.province == province)
        if as_of:
            stmt = stmt.where(c.valid_from <= as_of, or_(c.valid_to.is_(None), c.valid_to >= as_of))
        after = decode_cursor(cursor)
        if after:
            stmt = stmt.where(c.agency_id > str(after[0]))
        async with ctx.engine.connect() as conn:
            rows = [KnownAgency.model_validate(dict(r)) for r in (await conn.execute(stmt)).mappings()]
        return page_of(rows, limit, lambda a: [a.agency_id])

    @router.get("/agency-links", summary="Predecessor → successor links this service knows")
    async def known_links(ctx: Ctx, who: CurrentPrincipal) -> list[dict[str, Any]]:
        links = t.links.c
        stmt = select(t.links).order_by(links.predecessor_id, links.successor_id)
        if not who.can_act_in(None):  # a provincial role
            seen = select(c.agency_id).where(seen_by(who))
            stmt = stmt.where(or_(links.predecessor_id.in_(seen), links.successor_id.in_(seen)))
        async with ctx.engine.connect() as conn:
            rows = (await conn.execute(stmt)).mappings()
            return [dict(r) | {"effective_date": r["effective_date"].isoformat()} for r in rows]

    @router.get("/campaigns", response_model=list[KnownCampaign], summary="Campaigns this service knows")
    async def known_campaigns(ctx: Ctx, who: CurrentPrincipal) -> list[KnownCampaign]:
        stmt = select(t.campaigns).order_by(t.campaigns.c.campaign_id)
        async with ctx.engine.connect() as conn:
            rows = [KnownCampaign.model_validate(dict(r)) for r in (await conn.execute(stmt)).mappings()]
        return [r for r in rows if r.province is None or who.can_act_in(r.province)]

    @router.get("/definitions", response_model=list[KnownDefinition],
                summary="Published instruments and scoring schemes this service knows")
    async def known_definitions(ctx: Ctx, who: CurrentPrincipal) -> list[KnownDefinition]:
        stmt = select(t.definitions).order_by(t.definitions.c.kind, t.definitions.c.def_id, t.definitions.c.version)
        async with ctx.engine.connect() as conn:
            return [KnownDefinition.model_validate(dict(r)) for r in (await conn.execute(stmt)).mappings()]

    return router
