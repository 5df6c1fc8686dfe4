"""The public report: server-rendered, Vietnamese first (``?lang=en`` for English), phone-first,
no JavaScript; charts are inline SVG. Only published (and, flagged, retracted) releases appear."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.templating import Jinja2Templates
from sqlalchemy import select

from sipas_kit.http import Ctx
from sipas_publishing.adapters.tables import reference, releases
from sipas_publishing.application import queries
from sipas_publishing.domain import comparison as yoy
from sipas_publishing.domain.releases import PUBLIC
from sipas_publishing.entrypoints.edge import PathId
from sipas_publishing.entrypoints.exports import render
from sipas_publishing.entrypoints.words import WORDS, Lang

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))


def _page(request: Request, name: str, lang: Lang, status: int = 200, **context: Any) -> HTMLResponse:
    other = "vi" if lang == "en" else "en"
    return templates.TemplateResponse(request, name, {"t": WORDS[lang], "lang": lang, "other_lang": other,
                                                      "suffix": "?lang=en" if lang == "en" else ""} | context,
                                      status_code=status)


def _num(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def bar(unit: dict[str, Any]) -> dict[str, Any] | None:
    """Where a unit's value and CI fall on a 0-100 scale (None when suppressed)."""
    overall = unit.get("overall") or {}
    value = _num(overall.get("value"))
    if value is None:
        return None
    low, high = (_num(x) for x in (overall.get("ci") or [None, None])[:2])
    return {"value": value, "low": low if low is not None else value, "high": high if high is not None else value}


async def _release(ctx: Ctx, release_id: str) -> dict[str, Any]:
    """The public release, its province rows named from the registry (scoring's rows carry codes)."""
    agencies = reference.agencies
    async with ctx.engine.connect() as conn:
        row = await queries.one(conn, release_id, public_only=True)
        row["superseded_by"] = (await queries.superseded_by(conn, [release_id])).get(release_id)
        names = {r.code: r.name for r in await conn.execute(
            select(agencies.c.code, agencies.c.name).where(agencies.c.level == "province")
            .order_by(agencies.c.valid_from))}
    for unit in row["document"]["units"]:
        if unit["level"] == "province" and not unit.get("name"):
            unit["name"] = names.get(unit.get("province") or unit["id"], unit["id"])
    for unit in (row.get("comparison") or {}).get("units", []):
        unit["name"] = unit.get("name") or names.get(unit["province"], unit["province"])
        unit["earlier"]["from_names"] = [names.get(code, code) for code in unit["earlier"]["from"] or []]
    return row


@router.get("/report", response_class=HTMLResponse)
async def index(request: Request, ctx: Ctx, lang: Lang = "vi") -> Response:
    async with ctx.engine.connect() as conn:
        rows = (await conn.execute(select(releases.c.release_id, releases.c.title, releases.c.status,
                                          releases.c.published_at).where(releases.c.status.in_(PUBLIC))
                                   .order_by(releases.c.published_at.desc()))).mappings().all()
    return _page(request, "report_index.html", lang, releases=rows)


@router.get("/report/{release_id}", response_class=HTMLResponse)
async def release_page(release_id: PathId, request: Request, ctx: Ctx, lang: Lang = "vi") -> Response:
    row = await _release(ctx, release_id)
    units = row["document"]["units"]
    national = next((u for u in units if u["level"] == "national"), None)
    provinces = queries.ranked_provinces(row["document"])
    return _page(request, "report_release.html", lang, release=row, national=national,
                 provinces=[(u, bar(u)) for u in provinces], comparison=row.get("comparison"),
                 restated=yoy.restated(row.get("comparison")))


@router.get("/report/{release_id}/provinces/{province}", response_class=HTMLResponse)
async def province_page(release_id: PathId, province: PathId, request: Request, ctx: Ctx,
                        lang: Lang = "vi") -> Response:
    row = await _release(ctx, release_id)
    head = next((u for u in queries.figures(row["document"], level="province") if u.get("province") == province
                 or u["id"] == province), None)
    agencies = queries.figures(row["document"], level="agency", province=province)
    return _page(request, "report_province.html", lang, 200 if head else 404, release=row, head=head,
                 agencies=[(u, bar(u)) for u in agencies])


@router.get("/report/{release_id}/download.{fmt}")
async def download(release_id: PathId, fmt: Literal["csv", "xlsx", "pdf"], ctx: Ctx, lang: Lang = "vi") -> Response:
    row = await _release(ctx, release_id)
    if fmt == "pdf":
        from sipas_publishing.entrypoints.report_pdf import release_pdf  # fpdf2 at the first PDF, not at start-up

        suffix = "" if lang == "vi" else f"-{lang}"
        return Response(release_pdf(row, lang), media_type="application/pdf", headers={
            "Content-Disposition": f'attachment; filename="sipas-{release_id}{suffix}.pdf"'})
    head = {k: v for k, v in row["document"].items() if k != "units"} | {
        "release_id": release_id, "status": row["status"], "figures_digest": row["figures_digest"]}
    return render(head, row["document"]["units"], fmt, f"sipas-{release_id}")
