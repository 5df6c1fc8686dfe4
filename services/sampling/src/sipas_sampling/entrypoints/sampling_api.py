"""The sampling API: frames, plans, draws (commit → reveal), the live sample, contacts, retention."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import Field
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from sipas_kit.audit import mark_personal_data_read
from sipas_kit.auth import CurrentPrincipal, Principal, Role
from sipas_kit.http import Ctx, metadata, run_command
from sipas_kit.problems import Problem
from sipas_sampling.adapters import printing
from sipas_sampling.adapters.tables import draws, frame_units, frames, plans, reference, sample_units
from sipas_sampling.application import field, resident, resident_draws, rounds
from sipas_sampling.application.campaign_keys import pseudonym_salt
from sipas_sampling.application.frames import error_report, import_frame
from sipas_sampling.entrypoints.edge import (
    Admin,
    Body,
    FieldStaff,
    Manager,
    Verifier,
    campaign_for,
    design_of,
    keys_of,
    spooled,
    upload_response,
)
from sipas_sampling.entrypoints.edge import campaign_of as _campaign_of

router = APIRouter(prefix="/v1", tags=["sampling"])


class PlanIn(Body):
    frame_id: str = Field(min_length=1, max_length=100)


class CommitIn(Body):
    seed_commitment: str = Field(pattern=r"^[0-9a-f]{64}$", description="SHA-256 (hex) of the seed, published now")


class RevealIn(Body):
    seed: str = Field(min_length=32, max_length=256, description="The seed whose SHA-256 was committed")
    reserve_ratio: str = Field(default="0.2", pattern=r"^[0-9]+(\.[0-9]+)?$")


class WithdrawIn(Body):
    reason: Literal["withdrawal", "unreachable", "refused", "ineligible"]


async def _unit_campaign(conn: AsyncConnection, unit_id: str) -> str:
    joined = select(draws.c.campaign_id).join(sample_units, sample_units.c.draw_id == draws.c.draw_id)
    found = (await conn.execute(joined
                                .where(sample_units.c.unit_id == unit_id))).scalar()
    if found is None:
        raise Problem(404, "Not found", f"no sampled unit {unit_id}")
    return str(found)


@router.post("/campaigns/{campaign_id}/frames", status_code=201,
             summary="Upload a frame (CSV or XLSX body, streamed): every row checked, contacts encrypted")
async def upload_frame(campaign_id: str, request: Request, ctx: Ctx, who: Manager,
                       mode: Literal["all_or_nothing", "accept_valid"] = "all_or_nothing",
                       filename: Annotated[str, Query(min_length=1, max_length=200)] = "frame.csv") -> JSONResponse:
    async with ctx.engine.connect() as conn:
        campaign = await campaign_for(conn, who, campaign_id)
    if campaign["status"] not in ("opened",):
        raise Problem(409, "Conflict", f"campaign {campaign_id} is {campaign['status']}: frames come before approval")
    if design_of(campaign) == "resident":
        raise Problem(409, "Conflict", f"campaign {campaign_id} uses the resident design: open a round at "
                                       f"/v1/campaigns/{campaign_id}/resident-rounds")
    async with spooled(request, ctx.settings.max_frame_bytes) as (spool, sha256):  # type: ignore[attr-defined]
        result = await import_frame(ctx.engine, ctx.store, keys_of(request), campaign=campaign, spool=spool,
                                    filename=filename, file_sha256=sha256, mode=mode, meta=metadata(request, who))
    body = {"frame_id": result.frame_id, "status": result.status, "rows": result.rows,
            "rejected_rows": result.rejected_rows, "digest": result.digest,
            "report_url": f"/v1/frames/{result.frame_id}/report.csv"}
    return upload_response(request, body, f"{result.rejected_rows} rows were rejected; nothing was kept")


@router.get("/frames/{frame_id}", summary="A frame: counts, digest, status")
async def get_frame(frame_id: str, ctx: Ctx, who: CurrentPrincipal) -> dict[str, Any]:
    async with ctx.engine.connect() as conn:
        await campaign_for(conn, who, await _campaign_of(conn, frames, "frame_id", frame_id))
        row = (await conn.execute(select(frames).where(frames.c.frame_id == frame_id))).mappings().one()
    return {k: (v.isoformat() if isinstance(v, dt.datetime) else v) for k, v in row.items()}


@router.get("/frames/{frame_id}/report.csv", response_class=PlainTextResponse,
            summary="Per-row report: line, field, code, message (never the rejected value)")
async def frame_report(frame_id: str, ctx: Ctx, who: CurrentPrincipal) -> PlainTextResponse:
    async with ctx.engine.connect() as conn:
        await campaign_for(conn, who, await _campaign_of(conn, frames, "frame_id", frame_id))
        lines = ["line,field,code,message"]
        async for line, field, code, message in error_report(conn, frame_id):
            lines.append(f'{line},{field},{code},"{message.replace(chr(34), chr(39))}"')
    return PlainTextResponse("\n".join(lines) + "\n", media_type="text/csv; charset=utf-8")


@router.post("/campaigns/{campaign_id}/plans", status_code=201, summary="Propose sample sizes per stratum")
async def propose_plan(campaign_id: str, body: PlanIn, request: Request, ctx: Ctx, who: Manager) -> JSONResponse:
    async def decide(conn: AsyncConnection) -> tuple[int, Any]:
        campaign = await campaign_for(conn, who, campaign_id)
        return 201, await rounds.propose_plan(conn, ctx.store, campaign, body.frame_id, metadata(request, who))

    return await run_command(ctx, request, who, decide)


@router.get("/plans/{plan_id}", summary="A plan: strata, sizes, expected margins, status")
async def get_plan(plan_id: str, ctx: Ctx, who: CurrentPrincipal) -> dict[str, Any]:
    async with ctx.engine.connect() as conn:
        await campaign_for(conn, who, await _campaign_of(conn, plans, "plan_id", plan_id))
        row = (await conn.execute(select(plans).where(plans.c.plan_id == plan_id))).mappings().one()
    return dict(row["body"]) | {"status": row["status"], "approved_by": row["approved_by"]}


@router.post("/plans/{plan_id}/approve", summary="Approve a plan (ministry, or the campaign's province)")
async def approve_plan(plan_id: str, request: Request, ctx: Ctx, who: Manager) -> JSONResponse:
    async def decide(conn: AsyncConnection) -> tuple[int, Any]:
        await campaign_for(conn, who, await _campaign_of(conn, plans, "plan_id", plan_id))
        await rounds.approve_plan(conn, ctx.store, plan_id, metadata(request, who))
        return 200, {"plan_id": plan_id, "status": "approved", "approved_by": who.subject}

    return await run_command(ctx, request, who, decide)


@router.post("/plans/{plan_id}/draws", status_code=201, summary="Commit: publish the seed's SHA-256 before drawing")
async def commit_draw(plan_id: str, body: CommitIn, request: Request, ctx: Ctx, who: Manager) -> JSONResponse:
    async def decide(conn: AsyncConnection) -> tuple[int, Any]:
        await campaign_for(conn, who, await _campaign_of(conn, plans, "plan_id", plan_id))
        draw_id = await rounds.commit_draw(conn, ctx.store, plan_id, body.seed_commitment, metadata(request, who))
        return 201, {"draw_id": draw_id, "seed_commitment": body.seed_commitment, "status": "committed"}

    return await run_command(ctx, request, who, decide)


@router.post("/draws/{draw_id}/reveal",
             summary="Reveal the seed and draw (a plan, or a resident stage); SampleDrawn carries the units")
async def reveal(draw_id: str, body: RevealIn, request: Request, ctx: Ctx, who: Manager) -> JSONResponse:
    async def decide(conn: AsyncConnection) -> tuple[int, Any]:
        await campaign_for(conn, who, await _campaign_of(conn, draws, "draw_id", draw_id))
        reveal = resident_draws.reveal_stage if await resident_draws.is_stage_draw(conn, draw_id) \
            else rounds.reveal_draw
        return 200, await reveal(conn, ctx.store, keys_of(request), draw_id, body.seed, body.reserve_ratio,
                                 metadata(request, who))

    return await run_command(ctx, request, who, decide)


@router.get("/draws/{draw_id}/units", summary="The drawn units (pseudonymous): sample and ordered reserves")
async def draw_units(draw_id: str, ctx: Ctx, who: CurrentPrincipal,
                     role: Literal["selected", "reserve"] | None = None) -> list[dict[str, Any]]:
    su = sample_units.c
    stmt = select(su.unit_id, su.agency_id, su.agency_code, su.stratum, su.role, su.rank, su.status, su.weight).where(
        su.draw_id == draw_id).order_by(su.stratum, su.role.desc(), su.rank)
    if role:
        stmt = stmt.where(su.role == role)
    async with ctx.engine.connect() as conn:
        await campaign_for(conn, who, await _campaign_of(conn, draws, "draw_id", draw_id))
        return [dict(r) | {"weight": str(r["weight"])} for r in (await conn.execute(stmt)).mappings()]


@router.get("/draws/{draw_id}/verification",
            summary="What an auditor needs to re-run the draw (or a resident stage) offline")
async def verification_kit(draw_id: str, request: Request, ctx: Ctx, who: Verifier) -> dict[str, Any]:
    async with ctx.engine.connect() as conn:
        draw = (await conn.execute(select(draws).where(draws.c.draw_id == draw_id))).mappings().first()
        if draw is None or draw["seed"] is None:
            raise Problem(404, "Not found", f"no revealed draw {draw_id}")
        if draw["plan_id"] is None:  # a resident stage: re-run from its stage frame file
            return await resident.verification_kit(conn, keys_of(request), dict(draw))
        plan = (await conn.execute(select(plans).where(plans.c.plan_id == draw["plan_id"]))).mappings().one()
        salt = await pseudonym_salt(conn, keys_of(request), draw["campaign_id"])
        fu = frame_units.c
        agencies = {r.agency_code: {"level": r.level, "area": r.area} for r in await conn.execute(
            select(fu.agency_code, fu.level, fu.area).where(fu.frame_id == plan["frame_id"]).distinct())}
        units = await draw_units(draw_id, ctx, who)
    return {"draw_id": draw_id, "seed": draw["seed"], "seed_commitment": draw["seed_commitment"],
            "campaign_salt": salt.hex(), "plan": plan["body"], "agencies": agencies, "units": units}


@router.post("/units/{unit_id}/withdraw", summary="Take a unit out of the sample; the next reserve replaces it")
async def withdraw(unit_id: str, body: WithdrawIn, request: Request, ctx: Ctx, who: FieldStaff) -> JSONResponse:
    async def decide(conn: AsyncConnection) -> tuple[int, Any]:
        campaign = await campaign_for(conn, who, await _unit_campaign(conn, unit_id))
        return 200, await rounds.withdraw(conn, ctx.store, unit_id, body.reason, metadata(request, who),
                                          campaign["province"])

    return await run_command(ctx, request, who, decide)


@router.get("/units/{unit_id}/contact", summary="A sampled respondent's name and contact (every read is logged)")
async def contact(unit_id: str, request: Request, ctx: Ctx, who: FieldStaff,
                  purpose: Annotated[str, Query(min_length=3, max_length=200, description="Why you read it")]
                  ) -> dict[str, Any]:
    async with ctx.engine.begin() as conn:
        await campaign_for(conn, who, await _unit_campaign(conn, unit_id))
        mark_personal_data_read(request, purpose)
        return await rounds.read_contact(conn, keys_of(request), unit_id, who.subject, purpose)


@router.post("/campaigns/{campaign_id}/shred", summary="Destroy the campaign's personal data now (crypto-shredding)")
async def shred_now(campaign_id: str, request: Request, ctx: Ctx, who: Admin) -> JSONResponse:
    async def decide(conn: AsyncConnection) -> tuple[int, Any]:
        campaign = await campaign_for(conn, who, campaign_id)
        rows = await rounds.shred_campaign(conn, ctx.store, campaign_id, campaign["province"], "ordered",
                                           metadata(request, who))
        return 200, {"campaign_id": campaign_id, "rows_made_unreadable": rows}

    return await run_command(ctx, request, who, decide)


@router.post("/ops/retention/run", summary="Shred every campaign whose retention period has ended (run daily)")
async def retention_run(request: Request, ctx: Ctx, who: Admin) -> dict[str, Any]:
    today = dt.datetime.now(dt.UTC).date().isoformat()
    c = reference.campaigns.c
    done = {}
    async with ctx.engine.begin() as conn:
        expired = (await conn.execute(select(c.campaign_id, c.province).where(
            c.definition["retention_until"].astext < today))).all()
        for campaign_id, province in expired:
            rows = await rounds.shred_campaign(conn, ctx.store, campaign_id, province, "retention_ended",
                                               metadata(request, who))
            if rows or campaign_id not in done:
                done[campaign_id] = rows
    return {"shredded": done}


class AssignIn(Body):
    enumerators: list[Annotated[str, Field(min_length=1, max_length=200)]] = Field(min_length=1, max_length=5000)
    by: Literal["agency", "stratum"] = "agency"


@router.post("/draws/{draw_id}/assignments", summary="Share the live sample among enumerators, balanced by area")
async def assign_units(draw_id: str, body: AssignIn, request: Request, ctx: Ctx, who: Manager) -> JSONResponse:
    async def decide(conn: AsyncConnection) -> tuple[int, Any]:
        await campaign_for(conn, who, await _campaign_of(conn, draws, "draw_id", draw_id))
        return 200, {"draw_id": draw_id, "units": await field.assign_draw(conn, draw_id, body.enumerators, body.by)}

    return await run_command(ctx, request, who, decide)


LIST_COLUMNS = [("unit_id", "Mã đơn vị", 52), ("agency_code", "Cơ quan", 28), ("rank", "TT", 10),
                ("assigned_to", "Điều tra viên", 36)]
CONTACT_COLUMNS = [("name", "Họ tên", 50), ("phone", "Điện thoại", 28), ("address", "Địa chỉ", 70)]


async def _field_list(draw_id: str, request: Request, ctx: Any, who: Principal,
                      enumerator: str | None) -> tuple[list[dict[str, Any]], bool]:
    if who.role == Role.ENUMERATOR:
        enumerator = who.subject  # an enumerator sees their own list, nobody else's
    with_contacts = who.role in (Role.MINISTRY_ADMIN, Role.PROVINCE_OPERATOR, Role.ENUMERATOR)
    async with ctx.engine.begin() as conn:
        await campaign_for(conn, who, await _campaign_of(conn, draws, "draw_id", draw_id))
        if with_contacts:
            mark_personal_data_read(request, "field list")
        rows = await field.field_list(conn, keys_of(request), draw_id, enumerator, with_contacts, who.subject)
    return rows, with_contacts


@router.get("/draws/{draw_id}/field-list.csv", response_class=PlainTextResponse,
            summary="A printable field list (names and contacts only for roles allowed to see them; logged)")
async def field_list_csv(draw_id: str, request: Request, ctx: Ctx, who: CurrentPrincipal,
                         enumerator: str | None = None) -> PlainTextResponse:
    import csv
    import io

    rows, with_contacts = await _field_list(draw_id, request, ctx, who, enumerator)
    columns = LIST_COLUMNS + (CONTACT_COLUMNS if with_contacts else [])
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([key for key, _, _ in columns])
    writer.writerows([[row.get(key, "") for key, _, _ in columns] for row in rows])
    return PlainTextResponse(out.getvalue(), media_type="text/csv; charset=utf-8")


@router.get("/draws/{draw_id}/field-list.pdf", summary="The same list as a printable PDF (A4 landscape)")
async def field_list_pdf(draw_id: str, request: Request, ctx: Ctx, who: CurrentPrincipal,
                         enumerator: str | None = None) -> Response:
    rows, with_contacts = await _field_list(draw_id, request, ctx, who, enumerator)
    columns = LIST_COLUMNS + (CONTACT_COLUMNS if with_contacts else [])
    title = f"Danh sách khảo sát — đợt chọn mẫu {draw_id}" + (f" — {enumerator}" if enumerator else "")
    return Response(printing.field_list_pdf(title, rows, columns), media_type="application/pdf")


@router.post("/draws/{draw_id}/weights", summary="Adjust weights for non-response within strata (at fieldwork close)")
async def adjust_weights(draw_id: str, request: Request, ctx: Ctx, who: Manager) -> JSONResponse:
    async def decide(conn: AsyncConnection) -> tuple[int, Any]:
        await campaign_for(conn, who, await _campaign_of(conn, draws, "draw_id", draw_id))
        return 200, await rounds.adjust_weights(conn, ctx.store, draw_id, metadata(request, who))

    return await run_command(ctx, request, who, decide)
