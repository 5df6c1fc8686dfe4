"""Quality over HTTP: scan for flags, the review queue, reviews with reasons, back-checks, enumerators."""

from __future__ import annotations

import csv
import io
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from sipas_ballots.adapters.tables import accepted, backchecks, reference, review_log
from sipas_ballots.application import quality
from sipas_kit.auth import CurrentPrincipal, Principal, Role, require_roles
from sipas_kit.http import Ctx, metadata, run_command
from sipas_kit.problems import Problem

router = APIRouter(prefix="/v1", tags=["quality"])
Reviewer = Annotated[Principal, Depends(require_roles(Role.MINISTRY_ADMIN, Role.PROVINCE_OPERATOR))]
Caller = Annotated[Principal, Depends(require_roles(Role.MINISTRY_ADMIN, Role.PROVINCE_OPERATOR, Role.ENUMERATOR,
                                                    Role.CLERK))]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class ReviewIn(Body):
    action: Literal["clear", "escalate", "void"]
    comment: str = Field(min_length=3, max_length=1000, description="Why: kept in the exportable history")


class SeedIn(Body):
    seed: str = Field(min_length=32, max_length=128, pattern=r"^[0-9a-f]+$")


class OutcomeIn(Body):
    outcome: Literal["confirmed", "fabricated", "unreachable"]


async def _scoped(conn: AsyncConnection, who: Principal, campaign_id: str) -> str | None:
    c = reference.campaigns.c
    row = (await conn.execute(select(c.province).where(c.campaign_id == campaign_id))).first()
    if row is None or who.role == Role.PARTNER or not who.can_act_in(row.province):
        raise Problem(404, "Not found", f"no campaign {campaign_id} in your scope")
    return row.province  # type: ignore[no-any-return]


async def _campaign_of(conn: AsyncConnection, table: Any, ballot_id: str) -> str:
    found = (await conn.execute(select(table.c.campaign_id).where(table.c.ballot_id == ballot_id))).scalar()
    if found is None:
        raise Problem(404, "Not found", f"no ballot {ballot_id}")
    return str(found)


@router.post("/campaigns/{campaign_id}/quality/scan", summary="Raise flags: straight-lining, speeders, near-identical")
async def scan(campaign_id: str, request: Request, ctx: Ctx, who: Reviewer) -> JSONResponse:
    async def decide(conn: AsyncConnection) -> tuple[int, Any]:
        await _scoped(conn, who, campaign_id)
        return 200, {"campaign_id": campaign_id, "new_flags": await quality.scan(conn, campaign_id)}

    return await run_command(ctx, request, who, decide)


@router.get("/campaigns/{campaign_id}/review-queue", summary="Flagged ballots awaiting review at a level")
async def review_queue(campaign_id: str, ctx: Ctx, who: Reviewer,
                       level: Literal["province", "ministry"] = "province") -> list[dict[str, Any]]:
    async with ctx.engine.connect() as conn:
        await _scoped(conn, who, campaign_id)
        return await quality.queue(conn, campaign_id, level)


@router.post("/ballots/{ballot_id}/review", summary="Clear, escalate to the ministry, or void a flagged ballot")
async def review(ballot_id: str, body: ReviewIn, request: Request, ctx: Ctx, who: Reviewer) -> JSONResponse:
    async def decide(conn: AsyncConnection) -> tuple[int, Any]:
        await _scoped(conn, who, await _campaign_of(conn, accepted, ballot_id))
        return 200, await quality.review(conn, ctx.store, ballot_id, body.action, body.comment,
                                         who.role == Role.MINISTRY_ADMIN, metadata(request, who))

    return await run_command(ctx, request, who, decide)


@router.get("/campaigns/{campaign_id}/review-history.csv", summary="Every review action with its actor and reason")
async def review_history(campaign_id: str, ctx: Ctx, who: CurrentPrincipal) -> Response:
    async with ctx.engine.connect() as conn:
        await _scoped(conn, who, campaign_id)
        rows = (await conn.execute(select(review_log).where(review_log.c.campaign_id == campaign_id)
                                   .order_by(review_log.c.id))).mappings().all()
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["at", "ballot_id", "actor", "action", "comment"])
    writer.writerows([[r["at"].isoformat(), r["ballot_id"], r["actor"], r["action"], r["comment"]] for r in rows])
    return Response(out.getvalue(), media_type="text/csv; charset=utf-8")


@router.post("/campaigns/{campaign_id}/backchecks", status_code=201,
             summary="Draw the back-checks: per enumerator 10% of accepted ballots, at least 2, from a seed")
async def draw_backchecks(campaign_id: str, body: SeedIn, request: Request, ctx: Ctx, who: Reviewer) -> JSONResponse:
    async def decide(conn: AsyncConnection) -> tuple[int, Any]:
        await _scoped(conn, who, campaign_id)
        return 201, {"campaign_id": campaign_id, "per_enumerator": await quality.draw_backchecks(
            conn, campaign_id, body.seed)}

    return await run_command(ctx, request, who, decide)


@router.get("/campaigns/{campaign_id}/backchecks", summary="The call-back worksheet (contacts: sampling, logged)")
async def backcheck_sheet(campaign_id: str, ctx: Ctx, who: Caller) -> list[dict[str, Any]]:
    async with ctx.engine.connect() as conn:
        await _scoped(conn, who, campaign_id)
        return await quality.worksheet(conn, campaign_id)


@router.post("/backchecks/{ballot_id}", summary="Record a call-back's outcome; a fabrication voids the ballot")
async def record(ballot_id: str, body: OutcomeIn, request: Request, ctx: Ctx, who: Caller) -> JSONResponse:
    async def decide(conn: AsyncConnection) -> tuple[int, Any]:
        await _scoped(conn, who, await _campaign_of(conn, backchecks, ballot_id))
        return 200, await quality.record_backcheck(conn, ctx.store, ballot_id, body.outcome, metadata(request, who))

    return await run_command(ctx, request, who, decide)


@router.get("/campaigns/{campaign_id}/enumerators", summary="Per enumerator: accepted, voided, flagged, error rate")
async def enumerators(campaign_id: str, ctx: Ctx, who: CurrentPrincipal) -> list[dict[str, Any]]:
    async with ctx.engine.connect() as conn:
        await _scoped(conn, who, campaign_id)
        return await quality.enumerators(conn, campaign_id)
