"""Scores: current figures, snapshots, comparisons across years — as JSON, CSV and XLSX.

Provisional figures are for the ministry, provinces (their own units only), auditors and services;
partners read published releases from publishing, never provisional figures.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from sqlalchemy import select

from sipas_events import canonical
from sipas_kit.auth import Principal, Role, require_roles
from sipas_kit.context import ServiceContext
from sipas_kit.downloads import table_download
from sipas_kit.http import Ctx
from sipas_kit.problems import Problem
from sipas_scoring.adapters.tables import reference, snapshots
from sipas_scoring.application import scores
from sipas_scoring.application.comparison import compare
from sipas_scoring.application.definitions import definitions
from sipas_scoring.application.figures import units_of
from sipas_scoring.application.recount import verify

router = APIRouter(prefix="/v1", tags=["scores"])
Reader = Annotated[Principal, Depends(require_roles(Role.MINISTRY_ADMIN, Role.PROVINCE_OPERATOR, Role.AUDITOR,
                                                    Role.SERVICE))]
Freezer = Annotated[Principal, Depends(require_roles(Role.MINISTRY_ADMIN, Role.PROVINCE_OPERATOR))]
Operator = Annotated[Principal, Depends(require_roles(Role.MINISTRY_ADMIN))]
Format = Literal["json", "csv", "xlsx"]
Level = Literal["national", "province", "agency"]

COLUMNS = ["level", "unit_id", "code", "name", "province", "figure", "figure_code", "value", "exact", "n",
           "ci_low", "ci_high", "ci_method", "weighted_value", "weighted_se", "weighted_ci_low", "weighted_ci_high",
           "design_effect", "effective_n", "suppressed", "rank", "rank_best", "rank_worst", "rank_of"]


async def _campaign(ctx: ServiceContext, who: Principal, campaign_id: str) -> dict[str, Any]:
    async with ctx.engine.connect() as conn:
        row = (await conn.execute(select(reference.campaigns).where(
            reference.campaigns.c.campaign_id == campaign_id))).mappings().first()
    if row is None:
        raise Problem(404, "Not found", f"no campaign {campaign_id} known to scoring")
    if row["province"] is not None:
        who.require_province(row["province"], f"campaign {campaign_id}")
    return dict(row)


def _visible(who: Principal, rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """A province operator sees their province and its agencies, not other provinces nor the nation."""
    if who.role != Role.PROVINCE_OPERATOR:
        return list(rows)
    return [r for r in rows if r.get("province") == who.province]


def _narrowed(rows: list[dict[str, Any]], factor: str | None, item: str | None) -> list[dict[str, Any]]:
    """Keep only one factor's or one item's figure (beside each unit's overall index)."""
    if factor is None and item is None:
        return rows
    return [r | {"factors": {k: v for k, v in r.get("factors", {}).items() if k == factor},
                 "items": {k: v for k, v in r.get("items", {}).items() if k == item},
                 "expectations": {}} for r in rows]


def _flat(rows: Iterable[dict[str, Any]]) -> Iterator[list[Any]]:
    for r in rows:
        rank = r.get("rank") or {}
        figures = [("overall", "", r["overall"])]
        figures += [("factor", code, f) for code, f in r.get("factors", {}).items()]
        figures += [("item", code, f) for code, f in r.get("items", {}).items()]
        figures += [("expectation", code, f) for code, f in r.get("expectations", {}).items()]
        for kind, code, f in figures:
            weighted = f.get("weighted") or {}
            ci, wci = f.get("ci") or [None, None], weighted.get("ci") or [None, None]
            value = f.get("value", f.get("points"))
            yield [r["level"], r["id"], r.get("code"), r.get("name"), r.get("province"), kind, code, value,
                   f.get("exact"), f.get("n"), ci[0], ci[1], f.get("ci_method"), weighted.get("value"),
                   weighted.get("se"), wci[0], wci[1], weighted.get("deff"), weighted.get("effective_n"),
                   f.get("suppressed") or r.get("suppressed"), *([rank.get(k) for k in ("rank", "best", "worst", "of")]
                                                                 if kind == "overall" else [None] * 4)]


def _render(body: dict[str, Any], rows: list[dict[str, Any]], fmt: Format, name: str) -> Any:
    if fmt == "json":
        return body | {"units": rows}
    about = [(key, body[key]) for key in ("campaign_id", "snapshot_id", "digest", "computed_at", "taken_at")
             if key in body]
    return table_download(fmt, COLUMNS, _flat(rows), name, sheet="scores", about_sheet="about",
                          about=[*about, ("positions", body.get("positions"))])


@router.get("/campaigns/{campaign_id}/scores", summary="Current (provisional) figures of a campaign")
async def current_scores(
    campaign_id: str, ctx: Ctx, who: Reader, level: Level | None = None, unit: str | None = None,
    province: str | None = None, factor: str | None = None, item: str | None = None, format: Format = "json",
) -> Any:
    await _campaign(ctx, who, campaign_id)
    found = await scores.latest(ctx, campaign_id)
    document = found.pop("document")
    rows = _narrowed(_visible(who, units_of(document, level, unit, province)), factor, item)
    head = {k: v for k, v in document.items() if k != "units"} | found | {"provisional": True}
    return _render(head, rows, format, f"scores-{campaign_id}")


@router.post("/campaigns/{campaign_id}/scores/refresh", summary="Recompute a campaign's figures now")
async def refresh_scores(campaign_id: str, ctx: Ctx, who: Freezer) -> dict[str, Any]:
    await _campaign(ctx, who, campaign_id)
    return await scores.refresh(ctx, campaign_id, document=False)


@router.post("/campaigns/{campaign_id}/snapshots", status_code=201,
             summary="Freeze the figures: a snapshot of exactly the positions and chain heads they cover")
async def take_snapshot(campaign_id: str, request: Request, ctx: Ctx, who: Freezer) -> dict[str, Any]:
    campaign = await _campaign(ctx, who, campaign_id)
    if who.role == Role.PROVINCE_OPERATOR and campaign["province"] is None:
        raise Problem(403, "Forbidden", "only the ministry freezes a national campaign's scores",
                      type_="https://sipas.gov.vn/problems/out-of-scope")
    taken = await scores.snapshot(ctx, campaign_id, who.actor, request.state.correlation_id)
    return {k: v for k, v in taken.items() if k != "document"}


@router.get("/campaigns/{campaign_id}/snapshots", summary="A campaign's snapshots, newest first")
async def list_snapshots(campaign_id: str, ctx: Ctx, who: Reader) -> list[dict[str, Any]]:
    await _campaign(ctx, who, campaign_id)
    async with ctx.engine.connect() as conn:
        rows = (await conn.execute(select(
            snapshots.c.snapshot_id, snapshots.c.taken_at, snapshots.c.taken_by, snapshots.c.positions,
            snapshots.c.chain_heads, snapshots.c.digest).where(snapshots.c.campaign_id == campaign_id)
            .order_by(snapshots.c.taken_at.desc()))).mappings().all()
    return [dict(r) | {"taken_at": r["taken_at"].isoformat()} for r in rows]


@router.get("/snapshots/{snapshot_id}", summary="A frozen snapshot's figures")
async def get_snapshot(
    snapshot_id: str, ctx: Ctx, who: Reader, level: Level | None = None, unit: str | None = None,
    province: str | None = None, factor: str | None = None, item: str | None = None, format: Format = "json",
) -> Any:
    async with ctx.engine.connect() as conn:
        row = (await conn.execute(select(snapshots).where(snapshots.c.snapshot_id == snapshot_id))).mappings().first()
    if row is None:
        raise Problem(404, "Not found", f"no snapshot {snapshot_id}")
    await _campaign(ctx, who, row["campaign_id"])
    document = row["document"]
    head = {k: v for k, v in document.items() if k != "units"} | {
        "snapshot_id": snapshot_id, "taken_at": row["taken_at"].isoformat(), "taken_by": row["taken_by"],
        "positions": row["positions"], "chain_heads": row["chain_heads"], "digest": row["digest"],
        "provisional": False}
    rows = _narrowed(_visible(who, units_of(document, level, unit, province)), factor, item)
    return _render(head, rows, format, f"snapshot-{snapshot_id}")


@router.get("/snapshots/{snapshot_id}/document",
            summary="A snapshot's figures document exactly as frozen: its canonical SHA-256 is the snapshot's digest")
async def snapshot_document(snapshot_id: str, ctx: Ctx, who: Reader) -> Response:
    async with ctx.engine.connect() as conn:
        row = (await conn.execute(select(snapshots.c.campaign_id, snapshots.c.document).where(
            snapshots.c.snapshot_id == snapshot_id))).first()
    if row is None:
        raise Problem(404, "Not found", f"no snapshot {snapshot_id}")
    campaign = await _campaign(ctx, who, row.campaign_id)
    if who.role == Role.PROVINCE_OPERATOR and campaign["province"] is None:  # it holds every province's figures
        raise Problem(403, "Forbidden", "a national snapshot's document is the ministry's; read your province's "
                      f"figures at /v1/snapshots/{snapshot_id}", type_="https://sipas.gov.vn/problems/out-of-scope")
    return Response(canonical.dumpb(row.document), media_type="application/json")


@router.get("/campaigns/{campaign_id}/comparison", summary="This campaign beside an earlier one restated on "
                                                               "today's units (via the registry's crosswalk)")
async def comparison(campaign_id: str, ctx: Ctx, who: Reader,
                     against: Annotated[str, Query(description="The earlier campaign")]) -> dict[str, Any]:
    await _campaign(ctx, who, campaign_id)
    await _campaign(ctx, who, against)
    async with ctx.engine.connect() as conn:
        result = await compare(conn, campaign_id, against)
    result["units"] = _visible(who, result["units"])
    return result


@router.post("/campaigns/{campaign_id}/tallies/verify",
             summary="Recount the campaign's tallies from its counted ballots and compare (apply=true repairs)")
async def verify_tallies(campaign_id: str, ctx: Ctx, who: Operator, apply: bool = False) -> dict[str, Any]:
    await _campaign(ctx, who, campaign_id)
    async with ctx.engine.begin() as conn:
        result = await verify(conn, await definitions.basis(conn, campaign_id), apply=apply)
    if result["applied"]:
        await scores.refresh(ctx, campaign_id, document=False)
    return result
