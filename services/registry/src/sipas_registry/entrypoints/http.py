"""The registry's HTTP API (thin: parse, authorise, call a handler)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import select

from sipas_events.ids import new_id
from sipas_kit.auth import CurrentPrincipal, Principal, Role, require_roles
from sipas_kit.http import Ctx, metadata, run_command
from sipas_kit.pagination import MAX_LIMIT, Page, decode_cursor, page_of
from sipas_kit.problems import Problem
from sipas_registry.adapters.tables import agencies
from sipas_registry.application.agencies import find, handle_register_agency
from sipas_registry.domain.agency import RegisterAgency, search_key

router = APIRouter(prefix="/v1", tags=["agencies"])
Manager = Annotated[Principal, Depends(require_roles(Role.MINISTRY_ADMIN, Role.PROVINCE_OPERATOR))]
Level = Literal["ministry", "province", "department", "district", "commune", "central_in_province"]


class AgencyIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    agency_id: uuid.UUID | None = Field(default=None, description="Chosen by the caller, or generated")
    code: str = Field(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9._-]+$", description="Official code")
    name: str = Field(min_length=1, max_length=300, description="Vietnamese name")
    level: Level
    parent_id: uuid.UUID | None = None
    province: str | None = Field(default=None, pattern=r"^[0-9]{2}$", description="Two-digit province code")
    valid_from: dt.date
    valid_to: dt.date | None = None

    @field_validator("name")
    @classmethod
    def _nfc(cls, value: str) -> str:
        import unicodedata

        return unicodedata.normalize("NFC", value)


class AgencyOut(BaseModel):
    agency_id: str
    code: str
    name: str
    level: str
    parent_id: str | None
    province: str | None
    valid_from: dt.date
    valid_to: dt.date | None
    version: int


@router.post("/agencies", status_code=201, response_model=AgencyOut,
             summary="Register an agency or administrative unit")
async def register_agency(body: AgencyIn, request: Request, ctx: Ctx, who: Manager) -> JSONResponse:
    who.require_province(body.province, f"agency {body.code}")
    cmd = RegisterAgency(
        agency_id=str(body.agency_id or new_id()), code=body.code, name=body.name, level=body.level,
        parent_id=str(body.parent_id) if body.parent_id else None, province=body.province,
        valid_from=body.valid_from, valid_to=body.valid_to,
    )

    async def decide(conn: Any) -> tuple[int, Any]:
        await handle_register_agency(conn, ctx.store, cmd, metadata(request, who))
        agency = await find(conn, cmd.agency_id)
        return 201, AgencyOut.model_validate(agency, from_attributes=True).model_dump(mode="json")

    response = await run_command(ctx, request, who, decide)
    ctx.metrics.events_appended.labels("AgencyRegistered").inc()
    return response


@router.get("/agencies/{agency_id}", response_model=AgencyOut, summary="One agency")
async def get_agency(agency_id: uuid.UUID, ctx: Ctx, who: CurrentPrincipal) -> AgencyOut:
    async with ctx.engine.connect() as conn:
        agency = await find(conn, str(agency_id))
    if agency is None or not who.can_act_in(agency.province):
        raise Problem(404, "Not found", f"no agency {agency_id}")
    return AgencyOut.model_validate(agency, from_attributes=True)


@router.get("/agencies", summary="Agencies, by province and accent-insensitive name search")
async def list_agencies(
    ctx: Ctx, who: CurrentPrincipal, province: Annotated[str | None, Query(pattern=r"^[0-9]{2}$")] = None,
    q: Annotated[str | None, Query(max_length=100)] = None, cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
) -> Page[AgencyOut]:
    if who.role not in (Role.MINISTRY_ADMIN, Role.AUDITOR, Role.SERVICE, Role.PARTNER):
        if province not in (None, who.province):
            raise Problem(403, "Forbidden", f"{who.role} of province {who.province} cannot list province {province}")
        province = who.province
    stmt = select(agencies).order_by(agencies.c.agency_id).limit(limit + 1)
    if province:
        stmt = stmt.where(agencies.c.province == province)
    if q:
        stmt = stmt.where(agencies.c.name_search.contains(search_key(q)))
    after = decode_cursor(cursor)
    if after:
        stmt = stmt.where(agencies.c.agency_id > str(after[0]))
    async with ctx.engine.connect() as conn:
        rows = [AgencyOut.model_validate(dict(r)) for r in (await conn.execute(stmt)).mappings()]
    return page_of(rows, limit, lambda a: [a.agency_id])
