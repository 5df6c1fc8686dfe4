"""What every sampling route shares: roles, the campaign scope check, the key source, streamed uploads."""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import IO, Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from sipas_kit.auth import Principal, Role, require_roles
from sipas_kit.problems import Problem
from sipas_sampling.adapters.keys import KeySource, LocalKeyFile
from sipas_sampling.adapters.tables import reference

Manager = Annotated[Principal, Depends(require_roles(Role.MINISTRY_ADMIN, Role.PROVINCE_OPERATOR))]
Admin = Annotated[Principal, Depends(require_roles(Role.MINISTRY_ADMIN))]
FieldStaff = Annotated[Principal, Depends(require_roles(Role.MINISTRY_ADMIN, Role.PROVINCE_OPERATOR, Role.ENUMERATOR))]
Verifier = Annotated[Principal, Depends(require_roles(Role.MINISTRY_ADMIN, Role.AUDITOR))]
SPOOL_IN_MEMORY = 8 * 1024 * 1024


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


def keys_of(request: Request) -> KeySource:
    app = request.app
    if getattr(app.state, "keys", None) is None:
        app.state.keys = LocalKeyFile(app.state.ctx.settings.master_key_file)
    return app.state.keys  # type: ignore[no-any-return]


async def campaign_for(conn: AsyncConnection, who: Principal, campaign_id: str) -> dict[str, Any]:
    c = reference.campaigns.c
    row = (await conn.execute(select(reference.campaigns).where(c.campaign_id == campaign_id))).mappings().first()
    if row is None or who.role == Role.PARTNER or not (
            (row["province"] is None and who.role in (Role.MINISTRY_ADMIN, Role.AUDITOR, Role.SERVICE))
            or (row["province"] is not None and who.can_act_in(row["province"]))):
        raise Problem(404, "Not found", f"no campaign {campaign_id} in your scope (or not yet known here)")
    return dict(row)


async def campaign_of(conn: AsyncConnection, table: Any, key: str, value: str) -> str:
    """The campaign a frame, plan, draw or round belongs to (404 if there is none)."""
    found = (await conn.execute(select(table.c.campaign_id).where(table.c[key] == value))).scalar()
    if found is None:
        raise Problem(404, "Not found", f"no {key.removesuffix('_id')} {value}")
    return str(found)


def design_of(campaign: dict[str, Any]) -> str:
    return str((campaign["definition"].get("sampling") or {}).get("design", "frame"))


@asynccontextmanager
async def spooled(request: Request, limit: int, what: str = "frames") -> AsyncIterator[tuple[IO[bytes], str]]:
    """The request body on a temporary file (on disk past 8 MiB: never whole in memory) and its SHA-256."""
    digest, size = hashlib.sha256(), 0
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY) as spool:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise Problem(413, "Content too large", f"{what} are limited to {limit} bytes")
            digest.update(chunk)
            spool.write(chunk)
        yield spool, digest.hexdigest()


def upload_response(request: Request, body: dict[str, Any], detail: str) -> JSONResponse:
    """201 with the frame's counts, or 422 problem+json (same fields) when nothing was kept."""
    if body["status"] == "rejected":
        return JSONResponse({"type": "https://sipas.gov.vn/problems/rejected-rows", "title": "Rejected rows",
                             "status": 422, "detail": detail, "instance": request.url.path} | body, 422,
                            media_type="application/problem+json")
    return JSONResponse(body, 201)
