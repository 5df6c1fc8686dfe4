"""The resident design's API: a round, its three stage frames, each stage's commitment; the reveal is
``POST /v1/draws/{id}/reveal`` as for plans, and the households' live sample is served by the draw routes."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from pydantic import Field
from sqlalchemy.ext.asyncio import AsyncConnection

from sipas_kit.auth import CurrentPrincipal, Principal
from sipas_kit.http import Ctx, metadata, run_command
from sipas_kit.problems import Problem
from sipas_sampling.adapters.tables import resident_rounds
from sipas_sampling.application import resident
from sipas_sampling.application.stage_frames import import_stage_frame
from sipas_sampling.entrypoints.edge import (
    Body,
    Manager,
    campaign_for,
    campaign_of,
    keys_of,
    spooled,
    upload_response,
)

router = APIRouter(prefix="/v1", tags=["sampling: resident design"])
StageName = Literal["communes", "villages", "households"]


class StageCommitIn(Body):
    stage: StageName
    frame_id: str = Field(min_length=1, max_length=100, description="The imported stage frame to draw from")
    seed_commitment: str = Field(pattern=r"^[0-9a-f]{64}$", description="SHA-256 (hex) of the seed, published now")


async def _open_campaign(conn: AsyncConnection, who: Principal, campaign_id: str) -> dict[str, Any]:
    campaign = await campaign_for(conn, who, campaign_id)
    if campaign["status"] != "opened":
        raise Problem(409, "Conflict", f"campaign {campaign_id} is {campaign['status']}: the sample is drawn while "
                                       "it is opened")
    return campaign


@router.post("/campaigns/{campaign_id}/resident-rounds", status_code=201,
             summary="Open a resident-design round (communes → villages → households); its sizes are pinned")
async def open_round(campaign_id: str, request: Request, ctx: Ctx, who: Manager) -> JSONResponse:
    async def decide(conn: AsyncConnection) -> tuple[int, Any]:
        campaign = await _open_campaign(conn, who, campaign_id)
        return 201, await resident.open_round(conn, ctx.store, campaign, metadata(request, who))

    return await run_command(ctx, request, who, decide)


@router.get("/resident-rounds/{round_id}",
            summary="A round: settings, every stage frame, each stage's commitment, seed and per-parent digests")
async def get_round(round_id: str, ctx: Ctx, who: CurrentPrincipal) -> dict[str, Any]:
    async with ctx.engine.connect() as conn:
        await campaign_for(conn, who, await campaign_of(conn, resident_rounds, "round_id", round_id))
        return await resident.round_view(conn, round_id)


@router.post("/resident-rounds/{round_id}/frames/{stage}", status_code=201,
             summary="Upload a stage frame (CSV or XLSX body, streamed): rows checked, household contacts encrypted")
async def upload_stage_frame(round_id: str, stage: StageName, request: Request, ctx: Ctx, who: Manager,
                             mode: Literal["all_or_nothing", "accept_valid"] = "all_or_nothing",
                             filename: Annotated[str, Query(min_length=1, max_length=200)] = "stage.csv",
                             ) -> JSONResponse:
    async with ctx.engine.connect() as conn:
        campaign = await _open_campaign(conn, who, await campaign_of(conn, resident_rounds, "round_id", round_id))
    async with spooled(request, ctx.settings.max_stage_frame_bytes, "stage files") as (spool, sha256):  # type: ignore[attr-defined]
        result = await import_stage_frame(ctx.engine, ctx.store, keys_of(request), campaign=campaign,
                                          round_id=round_id, stage=stage, spool=spool, filename=filename,
                                          file_sha256=sha256, mode=mode, meta=metadata(request, who))
    body = {"frame_id": result.frame_id, "round_id": round_id, "stage": stage, "status": result.status,
            "rows": result.rows, "rejected_rows": result.rejected_rows, "unlisted": result.unlisted,
            "digest": result.digest, "report_url": f"/v1/frames/{result.frame_id}/report.csv"}
    gaps = f"; {result.unlisted} units it must cover have no accepted row" if result.unlisted else ""
    return upload_response(request, body, f"{result.rejected_rows} rows were rejected{gaps}; nothing was kept")


@router.post("/resident-rounds/{round_id}/draws", status_code=201,
             summary="Commit a stage: publish the seed's SHA-256 and pin the stage frame, before the reveal")
async def commit_stage(round_id: str, body: StageCommitIn, request: Request, ctx: Ctx, who: Manager) -> JSONResponse:
    async def decide(conn: AsyncConnection) -> tuple[int, Any]:
        await _open_campaign(conn, who, await campaign_of(conn, resident_rounds, "round_id", round_id))
        draw_id = await resident.commit_stage(conn, ctx.store, round_id, body.stage, body.frame_id,
                                              body.seed_commitment, metadata(request, who))
        return 201, {"draw_id": draw_id, "round_id": round_id, "stage": body.stage, "frame_id": body.frame_id,
                     "seed_commitment": body.seed_commitment, "status": "committed",
                     "reveal_url": f"/v1/draws/{draw_id}/reveal"}

    return await run_command(ctx, request, who, decide)


@router.get("/resident-rounds/{round_id}/stages/{stage}",
            summary="What a drawn stage selected, with conditional and overall inclusion probabilities")
async def stage_units(round_id: str, stage: StageName, ctx: Ctx, who: CurrentPrincipal) -> list[dict[str, Any]]:
    async with ctx.engine.connect() as conn:
        await campaign_for(conn, who, await campaign_of(conn, resident_rounds, "round_id", round_id))
        return await resident.stage_selection(conn, round_id, stage)
