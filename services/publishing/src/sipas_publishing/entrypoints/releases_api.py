"""The release workflow over HTTP: draft → submit → approve (someone else) → publish (now or at an
embargo time) → retract; a correction is a new draft that names the release it supersedes.

Every command accepts ``Idempotency-Key`` and appends one event with its actor.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from sipas_events import canonical
from sipas_kit.auth import Principal, Role, require_roles
from sipas_kit.http import Ctx, metadata, run_command
from sipas_kit.problems import Problem
from sipas_publishing.adapters.tables import releases, snapshots
from sipas_publishing.application import releases as app
from sipas_publishing.domain.errors import ReleaseConflict
from sipas_publishing.domain.releases import DRAFT
from sipas_publishing.entrypoints.edge import NO_NUL, PathId

router = APIRouter(prefix="/v1", tags=["release workflow"])
Editor = Annotated[Principal, Depends(require_roles(Role.MINISTRY_ADMIN, Role.PROVINCE_OPERATOR))]
SUMMARY = ("release_id", "campaign_id", "province", "snapshot_id", "status", "version", "title", "supersedes",
           "drafted_by", "drafted_at", "compare_with", "submitted_by", "approved_by", "published_by", "embargo_until",
           "published_at", "figures_digest", "audit_heads", "manifest_sha256", "signature", "key_id", "retraction")


class Draft(BaseModel):
    model_config = ConfigDict(extra="forbid")
    snapshot_id: str = Field(min_length=1, max_length=100, pattern=NO_NUL)
    title: str | None = Field(default=None, min_length=1, max_length=300, pattern=NO_NUL)
    supersedes: str | None = Field(default=None, min_length=1, max_length=100, pattern=NO_NUL,
                                   description="The published release this one corrects")
    compare_with: str | None = Field(default=None, min_length=1, max_length=100, pattern=NO_NUL,
                                     description="An earlier campaign: the release shows year on year, the earlier "
                                                 "year restated on today's provinces (signed with the figures)")


class Publish(BaseModel):
    model_config = ConfigDict(extra="forbid")
    at: dt.datetime | None = Field(default=None, description="Embargo: publish at this time (UTC); now if absent")


class Retract(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(min_length=3, max_length=500, pattern=NO_NUL)


class Edit(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: str = Field(min_length=1, max_length=300, pattern=NO_NUL)


def summary(row: dict[str, Any], superseded_by: str | None = None) -> dict[str, Any]:
    body = {k: row.get(k) for k in SUMMARY} | {"superseded_by": superseded_by}
    return json.loads(canonical.dumps(body))  # type: ignore[no-any-return]


Step = Callable[[AsyncConnection], Awaitable[dict[str, Any]]]


async def _command(ctx: Ctx, request: Request, who: Principal, release_id: str | None, province: str | None,
                   step: Callable[[AsyncConnection], Awaitable[dict[str, Any]]], status: int = 200) -> JSONResponse:
    async def decide(conn: AsyncConnection) -> tuple[int, Any]:
        if release_id is not None:
            who.require_province((await app.load(conn, release_id, lock=False))["province"],
                                 f"release {release_id}")
        elif province is not None or who.role == Role.PROVINCE_OPERATOR:
            who.require_province(province, "this snapshot")
        return status, summary(await step(conn))

    return await run_command(ctx, request, who, decide)


@router.post("/releases", status_code=201, summary="Draft a release from a score snapshot")
async def draft_release(body: Draft, request: Request, ctx: Ctx, who: Editor) -> JSONResponse:
    async with ctx.engine.connect() as conn:
        province = (await conn.execute(select(snapshots.c.province)
                                       .where(snapshots.c.snapshot_id == body.snapshot_id))).scalar()
    return await _command(ctx, request, who, None, province, lambda conn: app.draft(
        ctx, conn, body.snapshot_id, body.title, body.supersedes, metadata(request, who), body.compare_with),
        status=201)


@router.post("/releases/{release_id}/submit", summary="Submit a draft for review")
async def submit_release(release_id: PathId, request: Request, ctx: Ctx, who: Editor) -> JSONResponse:
    return await _command(ctx, request, who, release_id, None,
                          lambda conn: app.submit(ctx, conn, release_id, metadata(request, who)))


@router.post("/releases/{release_id}/approve", summary="Approve a submitted release (not its drafter)")
async def approve_release(release_id: PathId, request: Request, ctx: Ctx, who: Editor) -> JSONResponse:
    return await _command(ctx, request, who, release_id, None,
                          lambda conn: app.approve(ctx, conn, release_id, metadata(request, who)))


@router.post("/releases/{release_id}/publish", summary="Publish an approved release now or at an embargo time")
async def publish_release(release_id: PathId, request: Request, ctx: Ctx, who: Editor,
                          body: Publish | None = None) -> JSONResponse:
    at = body.at if body is not None else None
    if at is not None and at.tzinfo is None:
        raise Problem(422, "Invalid request", "at must carry a time zone (UTC)",
                      errors=[{"field": "body.at", "message": "timezone required", "type": "value_error"}])
    return await _command(ctx, request, who, release_id, None,
                          lambda conn: app.publish(ctx, conn, release_id, at, metadata(request, who)))


@router.post("/releases/{release_id}/retract", summary="Retract a published release, with a reason")
async def retract_release(release_id: PathId, body: Retract, request: Request, ctx: Ctx, who: Editor) -> JSONResponse:
    return await _command(ctx, request, who, release_id, None,
                          lambda conn: app.retract(ctx, conn, release_id, body.reason, metadata(request, who)))


@router.patch("/releases/{release_id}", summary="Edit a draft's title (a published release never changes)")
async def edit_release(release_id: PathId, body: Edit, request: Request, ctx: Ctx, who: Editor) -> JSONResponse:
    async def step(conn: AsyncConnection) -> dict[str, Any]:
        row = await app.load(conn, release_id)
        if row["status"] != DRAFT:
            raise ReleaseConflict(f"release {release_id} is {row['status']}: only a draft can be edited; "
                                  "correct a published release by drafting one that supersedes it")
        await conn.execute(releases.update().where(releases.c.release_id == release_id).values(title=body.title))
        return await app.load(conn, release_id)

    return await _command(ctx, request, who, release_id, None, step)


@router.delete("/releases/{release_id}", summary="Releases are never deleted: always 409")
async def delete_release(release_id: PathId, ctx: Ctx, who: Editor) -> None:
    async with ctx.engine.connect() as conn:
        row = await app.load(conn, release_id, lock=False)
    raise ReleaseConflict(f"release {row['release_id']} cannot be deleted; retract it with a reason instead")
