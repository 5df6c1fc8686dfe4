"""Instruments (questionnaires) and scoring schemes: versioned data, drafted then published."""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from sipas_events.catalogue.registry import InstrumentDefinition, SchemeDefinition
from sipas_kit.auth import CurrentPrincipal, Principal, Role, require_roles
from sipas_kit.http import Ctx, metadata, run_command
from sipas_kit.problems import Problem
from sipas_registry.adapters.tables import definitions
from sipas_registry.application import definitions as app
from sipas_registry.entrypoints.schemas import VERSION_MAX, Body

router = APIRouter(prefix="/v1")
Admin = Annotated[Principal, Depends(require_roles(Role.MINISTRY_ADMIN))]
Ident = Annotated[str, Path(min_length=1, max_length=60, pattern=r"^[a-z0-9][a-z0-9._-]*$")]
Version = Annotated[int, Path(ge=1, le=VERSION_MAX)]


class VersionOut(BaseModel):
    kind: str
    id: str
    version: int
    status: Literal["draft", "published"]
    title: str
    definition: dict[str, Any]


class InstrumentIn(Body):
    instrument_id: Annotated[str, Field(min_length=1, max_length=60, pattern=r"^[a-z0-9][a-z0-9._-]*$")]
    definition: InstrumentDefinition


class SchemeIn(Body):
    scheme_id: Annotated[str, Field(min_length=1, max_length=60, pattern=r"^[a-z0-9][a-z0-9._-]*$")]
    definition: SchemeDefinition


def _out(row: Any) -> dict[str, Any]:
    return VersionOut(kind=row["kind"], id=row["def_id"], version=row["version"], status=row["status"],
                      title=row["title"], definition=row["definition"]).model_dump(mode="json")


async def _answer(conn: AsyncConnection, kind: app.Kind, ident: str, version: int) -> dict[str, Any]:
    row = await app.get(conn, kind, ident, version)
    assert row is not None
    return _out(row)


def _routes(kind: app.Kind, plural: str, body_model: type[InstrumentIn] | type[SchemeIn]) -> None:
    tag: list[str | Enum] = [plural]
    id_field = f"{kind}_id"

    async def create(body: Any, request: Request, ctx: Ctx, who: Admin) -> JSONResponse:
        ident = getattr(body, id_field)

        async def decide(conn: AsyncConnection) -> tuple[int, Any]:
            env = await app.handle_draft(conn, ctx.store, kind, ident, body.definition, metadata(request, who))
            return 201, await _answer(conn, kind, ident, env.data[f"{kind}_version"])

        return await run_command(ctx, request, who, decide)

    create.__annotations__["body"] = body_model
    router.add_api_route(f"/{plural}", create, methods=["POST"], status_code=201, response_model=VersionOut, tags=tag,
                         summary=f"Draft the next version of a {kind}")

    async def redraft(ident: Ident, version: Version, body: Any, request: Request, ctx: Ctx,
                      who: Admin) -> JSONResponse:
        if getattr(body, id_field) != ident:
            raise Problem(422, "Invalid request", f"body {id_field} differs from the path")

        async def decide(conn: AsyncConnection) -> tuple[int, Any]:
            await app.handle_redraft(conn, ctx.store, kind, ident, version, body.definition, metadata(request, who))
            return 200, await _answer(conn, kind, ident, version)

        return await run_command(ctx, request, who, decide)

    redraft.__annotations__["body"] = body_model
    router.add_api_route(f"/{plural}/{{ident}}/versions/{{version}}", redraft, methods=["PUT"],
                         response_model=VersionOut, tags=tag,
                         summary=f"Replace a draft {kind} version (a published one is immutable)")

    async def publish(ident: Ident, version: Version, request: Request, ctx: Ctx, who: Admin) -> JSONResponse:
        async def decide(conn: AsyncConnection) -> tuple[int, Any]:
            await app.handle_publish(conn, ctx.store, kind, ident, version, metadata(request, who))
            return 200, await _answer(conn, kind, ident, version)

        return await run_command(ctx, request, who, decide)

    router.add_api_route(f"/{plural}/{{ident}}/versions/{{version}}/publish", publish, methods=["POST"],
                         response_model=VersionOut, tags=tag, summary=f"Publish a {kind} version: immutable from now")

    async def get_version(ident: Ident, version: Version, ctx: Ctx, who: CurrentPrincipal) -> dict[str, Any]:
        async with ctx.engine.connect() as conn:
            row = await app.get(conn, kind, ident, version)
        if row is None:
            raise Problem(404, "Not found", f"no {kind} {ident} version {version}")
        return _out(row)

    router.add_api_route(f"/{plural}/{{ident}}/versions/{{version}}", get_version, methods=["GET"],
                         response_model=VersionOut, tags=tag, summary=f"One {kind} version")

    async def list_all(ctx: Ctx, who: CurrentPrincipal) -> list[dict[str, Any]]:
        stmt = select(definitions).where(definitions.c.kind == kind).order_by(definitions.c.def_id,
                                                                              definitions.c.version)
        async with ctx.engine.connect() as conn:
            return [_out(r) for r in (await conn.execute(stmt)).mappings()]

    router.add_api_route(f"/{plural}", list_all, methods=["GET"], response_model=list[VersionOut], tags=tag,
                         summary=f"Every {kind} version")


_routes("instrument", "instruments", InstrumentIn)
_routes("scheme", "schemes", SchemeIn)
