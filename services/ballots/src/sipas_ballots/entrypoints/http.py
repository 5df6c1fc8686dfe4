"""The ballots service's HTTP API (so far: the agencies it knows)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel
from sqlalchemy import select

from sipas_ballots.adapters.tables import agencies
from sipas_kit.auth import CurrentPrincipal, Role
from sipas_kit.http import Ctx
from sipas_kit.pagination import MAX_LIMIT, Page, decode_cursor, page_of
from sipas_kit.problems import Problem

router = APIRouter(prefix="/v1", tags=["agencies"])


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


@router.get("/agencies", summary="Agencies this service has learned from the registry")
async def list_agencies(
    ctx: Ctx, who: CurrentPrincipal, province: Annotated[str | None, Query(pattern=r"^[0-9]{2}$")] = None,
    cursor: str | None = None, limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
) -> Page[KnownAgency]:
    if who.role not in (Role.MINISTRY_ADMIN, Role.AUDITOR, Role.SERVICE):
        if province not in (None, who.province):
            raise Problem(403, "Forbidden", f"{who.role} of province {who.province} cannot list province {province}")
        province = who.province
    stmt = select(agencies).order_by(agencies.c.agency_id).limit(limit + 1)
    if province:
        stmt = stmt.where(agencies.c.province == province)
    after = decode_cursor(cursor)
    if after:
        stmt = stmt.where(agencies.c.agency_id > str(after[0]))
    async with ctx.engine.connect() as conn:
        rows = [KnownAgency.model_validate(dict(r)) for r in (await conn.execute(stmt)).mappings()]
    return page_of(rows, limit, lambda a: [a.agency_id])
