"""Bulk agency imports: upload a CSV or XLSX file as the request body; get a per-row report."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from sipas_kit.auth import CurrentPrincipal, Principal, Role, require_roles
from sipas_kit.http import Ctx, metadata, run_command
from sipas_kit.problems import Problem
from sipas_registry.adapters.tables import agency_imports
from sipas_registry.application.imports import handle_import, report_csv

router = APIRouter(prefix="/v1", tags=["agency imports"])
Manager = Annotated[Principal, Depends(require_roles(Role.MINISTRY_ADMIN, Role.PROVINCE_OPERATOR))]
MAX_BYTES = 50 * 1024 * 1024
CSV_TYPES = {"text/csv", "application/csv", "text/plain"}
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


class ImportOut(BaseModel):
    import_id: str
    status: str
    filename: str
    sha256: str
    rows: int
    errors: list[dict[str, Any]]
    report_url: str


def _out(row: Any) -> dict[str, Any]:
    return ImportOut(import_id=row["import_id"], status=row["status"], filename=row["filename"], sha256=row["sha256"],
                     rows=row["rows"], errors=row["errors"][:100],
                     report_url=f"/v1/agency-imports/{row['import_id']}/report.csv").model_dump()


@router.post("/agency-imports", status_code=201, response_model=ImportOut,
             summary="Import agencies from a CSV or XLSX body: every row checked, all rows or none committed",
             responses={422: {"description": "Rows were rejected; nothing was written. The body lists them "
                                             "and report_url serves the full per-row report as CSV."}})
async def import_agencies(request: Request, ctx: Ctx, who: Manager,
                          filename: Annotated[str, Query(min_length=1, max_length=200)] = "agencies.csv",
                          ) -> JSONResponse:
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media not in CSV_TYPES | {XLSX_TYPE, "application/octet-stream"}:
        raise Problem(415, "Unsupported media type",
                      f"send the file as text/csv or {XLSX_TYPE}, not {media or 'nothing'}")
    content = await request.body()
    if len(content) > MAX_BYTES:
        raise Problem(413, "Content too large", f"{len(content)} bytes: at most {MAX_BYTES} per file")
    if media == XLSX_TYPE and not filename.lower().endswith(".xlsx"):
        filename += ".xlsx"

    async def decide(conn: AsyncConnection) -> tuple[int, Any]:
        result = await handle_import(conn, ctx.store, filename, content, who.can_act_in,
                                     who.province if who.role == Role.PROVINCE_OPERATOR else None,
                                     metadata(request, who))
        row = (await conn.execute(select(agency_imports).where(agency_imports.c.import_id == result.import_id))
               ).mappings().one()
        body = _out(row)
        if result.errors:
            detail = f"{len(result.errors)} problems in {result.rows} rows; nothing was imported"
            return 422, {"type": "https://sipas.gov.vn/problems/rejected-rows", "title": "Rejected rows",
                         "status": 422, "detail": detail, "instance": request.url.path} | body
        return 201, body

    return await run_command(ctx, request, who, decide)


async def _load(ctx: Any, who: Principal, import_id: str) -> Any:
    async with ctx.engine.connect() as conn:
        row = (await conn.execute(select(agency_imports).where(agency_imports.c.import_id == import_id))
               ).mappings().first()
    if row is None or not (who.role in (Role.MINISTRY_ADMIN, Role.AUDITOR) or
                           (row["province"] is not None and who.can_act_in(row["province"]))
                           or row["actor"] == who.subject):
        raise Problem(404, "Not found", f"no import {import_id}")
    return row


@router.get("/agency-imports/{import_id}", response_model=ImportOut, summary="An import and its first 100 problems")
async def get_import(import_id: str, ctx: Ctx, who: CurrentPrincipal) -> dict[str, Any]:
    return _out(await _load(ctx, who, import_id))


@router.get("/agency-imports/{import_id}/report.csv", response_class=PlainTextResponse,
            summary="The full per-row report: row, field, value, reason")
async def import_report(import_id: str, ctx: Ctx, who: CurrentPrincipal) -> PlainTextResponse:
    row = await _load(ctx, who, import_id)
    return PlainTextResponse(report_csv(row["errors"]), media_type="text/csv; charset=utf-8",
                             headers={"Content-Disposition": f'attachment; filename="{import_id}-report.csv"'})
