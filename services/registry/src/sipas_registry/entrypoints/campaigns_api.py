"""Campaigns: open a measurement round, move it along its steps, read it with who moved it when."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, field_validator
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from sipas_events.catalogue.registry import CampaignOpened, CampaignScope, CampaignStatus, SamplingSettings
from sipas_events.catalogue.types import VersionRef, Window
from sipas_events.ids import new_id
from sipas_kit.auth import CurrentPrincipal, Principal, Role, require_roles
from sipas_kit.http import Ctx, metadata, run_command
from sipas_kit.problems import Problem
from sipas_registry.adapters.tables import campaign_steps, campaigns
from sipas_registry.application import campaigns as app
from sipas_registry.domain.campaigns import Actor
from sipas_registry.entrypoints.schemas import VERSION_MAX, Body, Nfc, ProvinceCode

router = APIRouter(prefix="/v1", tags=["campaigns"])
Manager = Annotated[Principal, Depends(require_roles(Role.MINISTRY_ADMIN, Role.PROVINCE_OPERATOR))]
Stepper = Annotated[Principal, Depends(require_roles(Role.MINISTRY_ADMIN, Role.PROVINCE_OPERATOR, Role.SERVICE))]


class CampaignIn(Body):
    campaign_id: uuid.UUID | None = None
    name: Annotated[Nfc, Field(min_length=1, max_length=300)]
    year: int = Field(ge=2017, le=2100)
    scope: CampaignScope
    province: ProvinceCode | None = None
    collection_window: Window
    frame_window: Window
    target_unit_ids: list[uuid.UUID] = Field(min_length=1, max_length=20_000)
    instrument: VersionRef
    scheme: VersionRef
    sampling: SamplingSettings = SamplingSettings()
    retention_until: dt.date

    @field_validator("instrument", "scheme")
    @classmethod
    def _numbered(cls, ref: VersionRef) -> VersionRef:
        if ref.version > VERSION_MAX:
            raise ValueError(f"no version {ref.version}: versions are numbered 1 to {VERSION_MAX}")
        return ref


class StepIn(Body):
    status: CampaignStatus
    note: str | None = Field(default=None, max_length=1000)


class StepOut(BaseModel):
    status: str
    actor: str
    at: dt.datetime
    note: str | None


class CampaignOut(BaseModel):
    campaign_id: str
    name: str
    year: int
    scope: str
    province: str | None
    status: str
    definition: dict[str, Any]
    steps: list[StepOut]


def actor_of(who: Principal) -> Actor:
    kind = {Role.MINISTRY_ADMIN: "ministry", Role.PROVINCE_OPERATOR: "province", Role.SERVICE: "service"}[who.role]
    return Actor(kind, who.province)  # type: ignore[arg-type]


async def _read(conn: AsyncConnection, campaign_id: str) -> dict[str, Any] | None:
    row = (await conn.execute(select(campaigns).where(campaigns.c.campaign_id == campaign_id))).mappings().first()
    if row is None:
        return None
    steps = (await conn.execute(select(campaign_steps).where(campaign_steps.c.campaign_id == campaign_id)
                                .order_by(campaign_steps.c.at))).mappings()
    return CampaignOut.model_validate(dict(row) | {"steps": [dict(s) for s in steps]}).model_dump(mode="json")


@router.post("/campaigns", status_code=201, response_model=CampaignOut, summary="Open a campaign")
async def open_campaign(body: CampaignIn, request: Request, ctx: Ctx, who: Manager) -> JSONResponse:
    data = body.model_dump(mode="json") | {"campaign_id": str(body.campaign_id or new_id())}
    cmd = CampaignOpened.model_validate(data)

    async def decide(conn: AsyncConnection) -> tuple[int, Any]:
        await app.handle_open(conn, ctx.store, cmd, actor_of(who), metadata(request, who))
        return 201, await _read(conn, cmd.campaign_id)

    return await run_command(ctx, request, who, decide)


@router.post("/campaigns/{campaign_id}/status", response_model=CampaignOut, summary="Move a campaign one step on")
async def advance(campaign_id: uuid.UUID, body: StepIn, request: Request, ctx: Ctx, who: Stepper) -> JSONResponse:
    async def decide(conn: AsyncConnection) -> tuple[int, Any]:
        current = await app.load(conn, str(campaign_id))
        if current is None or not (who.role == Role.SERVICE or who.can_act_in(current.province)):
            raise Problem(404, "Not found", f"no campaign {campaign_id}")
        await app.handle_advance(conn, ctx.store, str(campaign_id), body.status, actor_of(who), body.note,
                                 metadata(request, who))
        return 200, await _read(conn, str(campaign_id))

    return await run_command(ctx, request, who, decide)


@router.get("/campaigns/{campaign_id}", response_model=CampaignOut, summary="One campaign and its steps")
async def get_campaign(campaign_id: uuid.UUID, ctx: Ctx, who: CurrentPrincipal) -> dict[str, Any]:
    async with ctx.engine.connect() as conn:
        found = await _read(conn, str(campaign_id))
    if found is None or not (found["province"] is None or who.can_act_in(found["province"])):
        raise Problem(404, "Not found", f"no campaign {campaign_id}")
    return found


@router.get("/campaigns", response_model=list[CampaignOut], summary="Campaigns, newest first")
async def list_campaigns(ctx: Ctx, who: CurrentPrincipal,
                         year: Annotated[int | None, Query(ge=2017, le=2100)] = None) -> list[dict[str, Any]]:
    stmt = select(campaigns.c.campaign_id).order_by(campaigns.c.opened_at.desc()).limit(500)
    if year:
        stmt = stmt.where(campaigns.c.year == year)
    if who.role in (Role.PROVINCE_OPERATOR, Role.CLERK, Role.ENUMERATOR):
        stmt = stmt.where((campaigns.c.province == who.province) | campaigns.c.province.is_(None))
    async with ctx.engine.connect() as conn:
        ids = (await conn.execute(stmt)).scalars().all()
        return [c for c in [await _read(conn, i) for i in ids] if c is not None]
