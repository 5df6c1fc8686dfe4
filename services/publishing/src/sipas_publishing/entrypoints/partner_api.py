"""The partner API: published releases, their signed manifests, figures by unit and level, history,
the public signing key, and the API keys partners use (created by the ministry)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from sipas_kit.auth import Principal, Role, require_roles
from sipas_kit.http import Ctx
from sipas_kit.pagination import MAX_LIMIT, decode_cursor, encode_cursor
from sipas_kit.problems import Problem
from sipas_publishing.adapters.tables import api_keys, releases
from sipas_publishing.application import access, queries
from sipas_publishing.application.context import signing_key
from sipas_publishing.domain.releases import PUBLIC
from sipas_publishing.entrypoints.edge import NO_NUL, PathId, ProvinceCode, QueryText, Reader, cached, reader
from sipas_publishing.entrypoints.exports import render
from sipas_publishing.entrypoints.releases_api import summary

router = APIRouter(prefix="/v1", tags=["partner API"])
ReleaseReader = Annotated[Reader, Depends(reader("releases:read"))]
Admin = Annotated[Principal, Depends(require_roles(Role.MINISTRY_ADMIN))]
Level = Literal["national", "province", "agency"]
Status = Literal["draft", "submitted", "approved", "scheduled", "published", "retracted"]


@router.get("/keys", summary="The public keys that sign releases (Ed25519)")
async def keys(request: Request, ctx: Ctx) -> Response:
    key = signing_key(ctx)
    return cached(request, {"keys": [{"key_id": key.key_id, "algorithm": "Ed25519",
                                      "public_key": key.public_raw.hex(), "pem": key.public_pem()}]}, 3600)


@router.get("/releases", summary="Releases, newest first (partners see published and retracted ones)")
async def list_releases(
    request: Request, ctx: Ctx, who: ReleaseReader, campaign_id: QueryText = None, status: Status | None = None,
    cursor: QueryText = None, limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 50,
) -> Response:
    stmt = select(releases).order_by(releases.c.drafted_at.desc(), releases.c.release_id.desc())
    if not who.staff:
        stmt = stmt.where(releases.c.status.in_(PUBLIC))
    if status is not None:
        stmt = stmt.where(releases.c.status == status)
    if campaign_id is not None:
        stmt = stmt.where(releases.c.campaign_id == campaign_id)
    after = decode_cursor(cursor)
    if after is not None:
        stmt = stmt.where(releases.c.release_id < str(after[0]))
    async with ctx.engine.connect() as conn:
        rows = [dict(r) for r in (await conn.execute(stmt.limit(limit + 1))).mappings()]
        rows = [r for r in rows if who.sees(r["province"])]
        later = await queries.superseded_by(conn, [r["release_id"] for r in rows])
    more, rows = len(rows) > limit, rows[:limit]
    body = {"items": [summary(r, later.get(r["release_id"])) for r in rows],
            "next_cursor": encode_cursor([rows[-1]["release_id"]]) if more and rows else None}
    return cached(request, body, 30)


async def _visible(ctx: Ctx, who: Reader, release_id: str) -> dict[str, Any]:
    async with ctx.engine.connect() as conn:
        row = await queries.one(conn, release_id, public_only=not who.staff)
    if not who.sees(row["province"]):
        raise Problem(404, "Not found", f"no published release {release_id}")
    return row


@router.get("/releases/{release_id}", summary="One release: its state, who did what, what supersedes it")
async def get_release(release_id: PathId, request: Request, ctx: Ctx, who: ReleaseReader) -> Response:
    row = await _visible(ctx, who, release_id)
    async with ctx.engine.connect() as conn:
        later = await queries.superseded_by(conn, [release_id])
    return cached(request, summary(row, later.get(release_id)), 60)


@router.get("/releases/{release_id}/manifest", summary="The signed release file (verify with sipas publishing "
                                                         "verify-release)")
async def get_manifest(release_id: PathId, request: Request, ctx: Ctx, who: ReleaseReader) -> Response:
    row = await _visible(ctx, who, release_id)
    key = signing_key(ctx)
    body = queries.release_file(row, key.public_raw if key.key_id == row["key_id"] else None)
    return cached(request, body, 31536000, immutable=True)


@router.get("/releases/{release_id}/scores", summary="A release's figures by unit and level (JSON, CSV, XLSX)")
async def release_scores(
    release_id: PathId, request: Request, ctx: Ctx, who: ReleaseReader, level: Level | None = None,
    unit: QueryText = None, province: ProvinceCode = None, format: Literal["json", "csv", "xlsx"] = "json",
) -> Response:
    row = await _visible(ctx, who, release_id)
    document = row["document"]
    units = queries.figures(document, level, unit, province)
    head = {k: v for k, v in document.items() if k != "units"} | {
        "release_id": release_id, "status": row["status"], "figures_digest": row["figures_digest"]}
    if format != "json":
        return render(head, units, format, f"release-{release_id}")
    return cached(request, head | {"units": units}, 60)


@router.get("/units/{unit_id}/history", summary="A unit's published figures across releases")
async def unit_history(unit_id: PathId, request: Request, ctx: Ctx, who: ReleaseReader) -> Response:
    async with ctx.engine.connect() as conn:
        found = await queries.history(conn, unit_id)
    return cached(request, {"unit_id": unit_id, "releases": found}, 60)


Scope = Literal["releases:read", "feed:read", "webhooks:manage"]


def _reading() -> list[Scope]:
    return ["releases:read", "feed:read"]


class NewKey(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200, pattern=NO_NUL)
    scopes: list[Scope] = Field(default_factory=_reading, min_length=1)
    rate_per_minute: int = Field(default=120, ge=1, le=100000)


@router.post("/api-keys", status_code=201, tags=["administration"],
             summary="Create a partner API key (shown once; only its hash is kept)")
async def create_api_key(body: NewKey, ctx: Ctx, who: Admin) -> dict[str, Any]:
    async with ctx.engine.begin() as conn:
        made = await access.create_key(conn, body.name, body.scopes, body.rate_per_minute, who.actor)
    return made | {"created_at": made["created_at"].isoformat()}


@router.get("/api-keys", tags=["administration"], summary="Partner API keys (never their secrets)")
async def list_api_keys(ctx: Ctx, who: Admin) -> list[dict[str, Any]]:
    async with ctx.engine.connect() as conn:
        rows = (await conn.execute(select(api_keys).order_by(api_keys.c.created_at))).mappings().all()
    return [{k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in access.public(r).items()} for r in rows]


@router.delete("/api-keys/{key_id}", status_code=204, tags=["administration"], summary="Revoke an API key")
async def revoke_api_key(key_id: PathId, ctx: Ctx, who: Admin) -> Response:
    async with ctx.engine.begin() as conn:
        await access.revoke(conn, key_id)
    return Response(status_code=204)
