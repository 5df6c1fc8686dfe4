"""Units and agencies over time: register, rename, re-parent, merge, split, dissolve; as_of and crosswalk."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from sqlalchemy import literal, select, tuple_
from sqlalchemy.ext.asyncio import AsyncConnection

from sipas_events.ids import new_id
from sipas_kit.auth import CurrentPrincipal, Principal, Role, require_roles
from sipas_kit.http import Ctx, metadata, run_command
from sipas_kit.pagination import MAX_LIMIT, Page, decode_cursor, page_of
from sipas_kit.problems import Problem
from sipas_registry.adapters.tables import unit_history, units
from sipas_registry.application import units as app
from sipas_registry.domain.units import RegisterUnit, search_key
from sipas_registry.entrypoints.schemas import (
    AgencyDetail,
    AgencyIn,
    AgencyOut,
    Change,
    CrosswalkOut,
    HistoryOut,
    LinkOut,
    MergeIn,
    RenameIn,
    ReparentIn,
    SplitIn,
)

router = APIRouter(prefix="/v1", tags=["units and agencies"])
Manager = Annotated[Principal, Depends(require_roles(Role.MINISTRY_ADMIN, Role.PROVINCE_OPERATOR))]
NATIONAL_LEVELS = {"ministry", "province"}


def _command(body: AgencyIn) -> RegisterUnit:
    return RegisterUnit(
        agency_id=str(body.agency_id or new_id()), code=body.code, name=body.name, level=body.level,
        parent_id=str(body.parent_id) if body.parent_id else None, province=body.province,
        valid_from=body.valid_from, valid_to=body.valid_to, legal_basis=body.legal_basis,
    )


def _visible(who: Principal) -> app.Visible:
    """What a caller may see of the registry: their province's units, and every ministry and province."""
    return lambda unit: who.can_act_in(unit.province) or unit.level in NATIONAL_LEVELS


def _may_shape(who: Principal, level: str, province: str | None, what: str) -> None:
    """Ministries and provinces themselves are the ministry's to change; the rest their province's."""
    if level in NATIONAL_LEVELS and who.role != Role.MINISTRY_ADMIN:
        raise Problem(403, "Forbidden", f"only a ministry admin may change a {level} ({what})",
                      type_="https://sipas.gov.vn/problems/out-of-scope")
    who.require_province(province, what)


async def _detail(conn: AsyncConnection, agency_id: str) -> dict[str, Any]:
    row = (await conn.execute(select(units).where(units.c.agency_id == agency_id))).mappings().one()
    history = [HistoryOut.model_validate(dict(h)) for h in (await conn.execute(
        select(unit_history).where(unit_history.c.agency_id == agency_id).order_by(unit_history.c.effective_date)
    )).mappings()]
    links = {d: [LinkOut.model_validate(link, from_attributes=True) for link in await app.crosswalk(conn, agency_id, d)]
             for d in ("predecessors", "successors")}
    return AgencyDetail.model_validate(dict(row) | {"history": history} | links).model_dump(mode="json")


async def _run(request: Request, ctx: Any, who: Principal, status: int,
               act: Callable[[AsyncConnection], Awaitable[str]]) -> JSONResponse:
    async def decide(conn: AsyncConnection) -> tuple[int, Any]:
        return status, await _detail(conn, await act(conn))

    return await run_command(ctx, request, who, decide)


@router.post("/agencies", status_code=201, response_model=AgencyDetail,
             summary="Register an agency or administrative unit")
async def register_agency(body: AgencyIn, request: Request, ctx: Ctx, who: Manager) -> JSONResponse:
    _may_shape(who, body.level, body.province, f"agency {body.code}")
    cmd = _command(body)

    async def act(conn: AsyncConnection) -> str:
        await app.handle_register(conn, ctx.store, cmd, metadata(request, who), _visible(who))
        return cmd.agency_id

    return await _run(request, ctx, who, 201, act)


async def _load_for_edit(conn: AsyncConnection, who: Principal, agency_id: uuid.UUID) -> app.Unit:
    unit = await app.find(conn, str(agency_id))
    if unit is None or not who.can_act_in(unit.province):
        raise Problem(404, "Not found", f"no agency {agency_id}")
    _may_shape(who, unit.level, unit.province, f"agency {unit.code}")
    return unit


@router.post("/agencies/{agency_id}/rename", response_model=AgencyDetail, summary="Rename a unit from a date")
async def rename(agency_id: uuid.UUID, body: RenameIn, request: Request, ctx: Ctx, who: Manager) -> JSONResponse:
    async def act(conn: AsyncConnection) -> str:
        await _load_for_edit(conn, who, agency_id)
        await app.handle_rename(conn, ctx.store, str(agency_id), body.name, body.effective_date, body.legal_basis,
                                metadata(request, who))
        return str(agency_id)

    return await _run(request, ctx, who, 200, act)


@router.post("/agencies/{agency_id}/reparent", response_model=AgencyDetail, summary="Move a unit under a new parent")
async def reparent(agency_id: uuid.UUID, body: ReparentIn, request: Request, ctx: Ctx, who: Manager) -> JSONResponse:
    async def act(conn: AsyncConnection) -> str:
        await _load_for_edit(conn, who, agency_id)
        parent = str(body.parent_id) if body.parent_id else None
        await app.handle_reparent(conn, ctx.store, str(agency_id), parent, body.effective_date, body.legal_basis,
                                  metadata(request, who), _visible(who))
        return str(agency_id)

    return await _run(request, ctx, who, 200, act)


@router.post("/agencies/{agency_id}/dissolve", response_model=AgencyDetail, summary="Dissolve a unit from a date")
async def dissolve(agency_id: uuid.UUID, body: Change, request: Request, ctx: Ctx, who: Manager) -> JSONResponse:
    async def act(conn: AsyncConnection) -> str:
        await _load_for_edit(conn, who, agency_id)
        await app.handle_dissolve(conn, ctx.store, str(agency_id), body.effective_date, body.legal_basis,
                                  metadata(request, who))
        return str(agency_id)

    return await _run(request, ctx, who, 200, act)


@router.post("/reorganisations/merge", status_code=201, response_model=AgencyDetail,
             summary="Merge units into a new one (e.g. two provinces by Resolution 202/2025/QH15)")
async def merge(body: MergeIn, request: Request, ctx: Ctx, who: Manager) -> JSONResponse:
    if body.successor.valid_from != body.effective_date:
        raise Problem(422, "Invalid request", "the successor starts on the effective date",
                      errors=[{"field": "body.successor.valid_from", "message": "must equal effective_date",
                               "type": "domain"}])
    _may_shape(who, body.successor.level, body.successor.province, f"agency {body.successor.code}")
    cmd = _command(body.successor)

    async def act(conn: AsyncConnection) -> str:
        for predecessor in body.predecessor_ids:
            await _load_for_edit(conn, who, predecessor)
        await app.handle_merge(conn, ctx.store, [str(p) for p in body.predecessor_ids], cmd, body.legal_basis,
                               metadata(request, who), _visible(who))
        return cmd.agency_id

    return await _run(request, ctx, who, 201, act)


@router.post("/reorganisations/split", status_code=201, response_model=AgencyDetail,
             summary="Split a unit into several new ones")
async def split(body: SplitIn, request: Request, ctx: Ctx, who: Manager) -> JSONResponse:
    for successor in body.successors:
        _may_shape(who, successor.level, successor.province, f"agency {successor.code}")
    cmds = [_command(s) for s in body.successors]

    async def act(conn: AsyncConnection) -> str:
        await _load_for_edit(conn, who, body.predecessor_id)
        await app.handle_split(conn, ctx.store, str(body.predecessor_id), cmds, body.effective_date,
                               body.legal_basis, metadata(request, who), _visible(who))
        return str(body.predecessor_id)

    return await _run(request, ctx, who, 201, act)


@router.get("/agencies/{agency_id}", response_model=AgencyDetail, summary="One unit with its history and links")
async def get_agency(agency_id: uuid.UUID, ctx: Ctx, who: CurrentPrincipal) -> dict[str, Any]:
    async with ctx.engine.connect() as conn:
        unit = await app.find(conn, str(agency_id))
        if unit is None or not _visible(who)(unit):
            raise Problem(404, "Not found", f"no agency {agency_id}")
        return await _detail(conn, str(agency_id))


@router.get("/agencies/{agency_id}/crosswalk", response_model=CrosswalkOut,
            summary="The units this one became (successors) and came from (predecessors), with dates")
async def crosswalk(agency_id: uuid.UUID, ctx: Ctx, who: CurrentPrincipal) -> CrosswalkOut:
    async with ctx.engine.connect() as conn:
        unit = await app.find(conn, str(agency_id))
        if unit is None or not _visible(who)(unit):
            raise Problem(404, "Not found", f"no agency {agency_id}")
        row = (await conn.execute(select(units).where(units.c.agency_id == str(agency_id)))).mappings().one()
        links = {d: [LinkOut.model_validate(x, from_attributes=True)
                     for x in await app.crosswalk(conn, str(agency_id), d)] for d in ("successors", "predecessors")}
    return CrosswalkOut(agency=AgencyOut.model_validate(dict(row)), **links)


@router.get("/agencies", response_model=Page[AgencyOut],
            summary="Units, optionally as they stood on a date (as_of), by province, level, parent and name")
async def list_agencies(
    ctx: Ctx, who: CurrentPrincipal,
    as_of: Annotated[dt.date | None, Query(description="Only units valid on this date, named as they were")] = None,
    province: Annotated[str | None, Query(pattern=r"^[0-9]{2}$")] = None,
    level: Annotated[Literal["ministry", "province", "department", "district", "commune", "central_in_province"]
                     | None, Query()] = None,
    parent_id: uuid.UUID | None = None,
    q: Annotated[str | None, Query(max_length=100, description="Accent-insensitive name search")] = None,
    cursor: str | None = None, limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
) -> Page[AgencyOut]:
    if who.role not in (Role.MINISTRY_ADMIN, Role.AUDITOR, Role.SERVICE, Role.PARTNER) and level not in NATIONAL_LEVELS:
        if province not in (None, who.province):
            raise Problem(403, "Forbidden", f"{who.role} of province {who.province} cannot list province {province}",
                          type_="https://sipas.gov.vn/problems/out-of-scope")
        province = who.province
    stmt = app.as_of_query(as_of) if as_of else select(
        units.c.agency_id, units.c.code, units.c.name, units.c.level, units.c.parent_id, units.c.province,
        units.c.valid_from, units.c.valid_to, units.c.legal_basis)
    cols = stmt.selected_columns
    stmt = stmt.order_by(cols.code, cols.agency_id).limit(limit + 1)
    if province:
        stmt = stmt.where(cols.province == province)
    if level:
        stmt = stmt.where(cols.level == level)
    if parent_id:
        stmt = stmt.where(cols.parent_id == str(parent_id))
    if q:
        stmt = stmt.where(units.c.name_search.contains(search_key(q)))
    after = decode_cursor(cursor)
    if after is not None and len(after) != 2:
        raise Problem(422, "Invalid request", "cursor is not one this API issued")
    if after:
        stmt = stmt.where(tuple_(cols.code, cols.agency_id) > tuple_(literal(str(after[0])), literal(str(after[1]))))
    async with ctx.engine.connect() as conn:
        rows = [AgencyOut.model_validate(dict(r)) for r in (await conn.execute(stmt)).mappings()]
    return page_of(rows, limit, lambda a: [a.code, a.agency_id])
