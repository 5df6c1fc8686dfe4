"""Intake over HTTP: one endpoint for every channel, all through the same validation path.

Online respondents need no account: the ballot code is their credential. Every other channel is
keyed by staff (clerk, enumerator) or sent by a partner system (service role).
"""

from __future__ import annotations

import csv
import hashlib
import io
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from sipas_ballots.adapters.tables import ballots, reference, submissions
from sipas_ballots.application import imports, issuance, ratings
from sipas_ballots.application.intake import submit, today_in_vietnam
from sipas_ballots.domain.validation import Accepted, Submission
from sipas_kit import idempotency
from sipas_kit.auth import CurrentPrincipal, Principal, Role, authenticate, require_roles
from sipas_kit.http import Ctx, metadata, run_command
from sipas_kit.printing import font_path
from sipas_kit.problems import Problem

router = APIRouter(prefix="/v1", tags=["intake"])
Manager = Annotated[Principal, Depends(require_roles(Role.MINISTRY_ADMIN, Role.PROVINCE_OPERATOR))]
STAFF = {Role.MINISTRY_ADMIN, Role.PROVINCE_OPERATOR, Role.CLERK, Role.ENUMERATOR, Role.SERVICE}


class SubmissionIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    code: str = Field(min_length=1, max_length=40, description="As typed or scanned; hyphens, case, O/0 forgiven")
    campaign_id: str = Field(min_length=1, max_length=100)
    answers: dict[Annotated[str, Field(max_length=40)], int | None] = Field(max_length=200)
    expectations: list[Annotated[str, Field(max_length=40)]] = Field(default_factory=list, max_length=50)
    not_applicable_factors: list[Annotated[str, Field(max_length=40)]] = Field(default_factory=list, max_length=20)
    channel: Literal["online", "paper", "import", "kiosk"] = "online"
    entry_seconds: float | None = Field(default=None, ge=0, le=86_400)


def _principal(request: Request, body: SubmissionIn) -> Principal:
    if body.channel == "online" and "authorization" not in request.headers:
        # The code is the respondent's credential: it never goes into an event, not even as the actor.
        digest = hashlib.sha256(body.code.upper().replace("-", "").encode()).hexdigest()[:16]
        return Principal(subject=f"respondent:{digest}", role=Role.PARTNER)
    who = authenticate(request)
    if who.role not in STAFF:
        raise Problem(403, "Forbidden", f"a {who.role} cannot submit ballots on the {body.channel} channel")
    return who


@router.post("/submissions", status_code=201, summary="Submit a ballot on any channel; the outcome is recorded",
             responses={422: {"description": "Rejected, with the METHODOLOGY §2 reason; the rejection is recorded"}})
async def post_submission(body: SubmissionIn, request: Request, ctx: Ctx) -> JSONResponse:
    who = _principal(request, body)
    sub = Submission(code=body.code, campaign_id=body.campaign_id, received_on=today_in_vietnam(),
                     answers=body.answers, channel=body.channel, expectations=frozenset(body.expectations),
                     entered_by=None if who.role == Role.PARTNER else who.subject, entry_seconds=body.entry_seconds,
                     not_applicable_factors=frozenset(body.not_applicable_factors))

    async def decide(conn: AsyncConnection) -> tuple[int, Any]:
        if who.role in (Role.PROVINCE_OPERATOR, Role.CLERK, Role.ENUMERATOR):
            c = reference.campaigns.c
            province = (await conn.execute(select(c.province).where(c.campaign_id == body.campaign_id))).scalar()
            who.require_province(province, f"campaign {body.campaign_id}")
        submission_id, outcome = await submit(conn, ctx.store, sub, metadata(request, who), ctx.metrics)
        if isinstance(outcome, Accepted):
            return 201, {"submission_id": submission_id, "outcome": "accepted", "ballot_id": outcome.ballot.ballot_id}
        return 422, {"type": f"https://sipas.gov.vn/problems/ballot-{outcome.reason_code.replace('_', '-')}",
                     "title": "Ballot rejected", "status": 422, "detail": outcome.detail,
                     "instance": request.url.path, "submission_id": submission_id, "reason": outcome.reason_code,
                     "errors": [{"field": f"body.{outcome.field}" if outcome.field else "body",
                                 "message": outcome.detail, "type": outcome.reason_code}]}

    return await run_command(ctx, request, who, decide)


@router.get("/campaigns/{campaign_id}/progress", summary="Issued, returned, valid, rejected by reason")
async def progress(campaign_id: str, ctx: Ctx, who: CurrentPrincipal) -> dict[str, Any]:
    async with ctx.engine.connect() as conn:
        c = reference.campaigns.c
        province = (await conn.execute(select(c.province).where(c.campaign_id == campaign_id))).scalar()
        if who.role == Role.PARTNER or not who.can_act_in(province):
            raise Problem(404, "Not found", f"no campaign {campaign_id} in your scope")
        issued: dict[str, int] = dict((await conn.execute(select(ballots.c.status, func.count()).where(
            ballots.c.campaign_id == campaign_id).group_by(ballots.c.status))).all())
        outcomes = (await conn.execute(select(submissions.c.outcome, submissions.c.reason, func.count()).where(
            submissions.c.campaign_id == campaign_id).group_by(submissions.c.outcome, submissions.c.reason))).all()
    rejected = {reason: n for outcome, reason, n in outcomes if outcome == "rejected"}
    return {"campaign_id": campaign_id, "issued": sum(issued.values()), "by_status": issued,
            "valid": sum(n for outcome, _, n in outcomes if outcome == "accepted"),
            "rejected": sum(rejected.values()), "rejected_by_reason": rejected}


class ReasonIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    reason: str = Field(min_length=3, max_length=300)


async def _ballot_province(conn: AsyncConnection, who: Principal, ballot_id: str) -> str | None:
    c = reference.campaigns.c
    row = (await conn.execute(select(c.province).join(ballots, ballots.c.campaign_id == c.campaign_id)
                              .where(ballots.c.ballot_id == ballot_id))).first()
    if row is None or not who.can_act_in(row.province):
        raise Problem(404, "Not found", f"no ballot {ballot_id} in your scope")
    return row.province  # type: ignore[no-any-return]


@router.post("/ballots/{ballot_id}/cancel", summary="Cancel an unused ballot code, with a reason")
async def cancel_ballot(ballot_id: str, body: ReasonIn, request: Request, ctx: Ctx, who: Manager) -> JSONResponse:
    async def decide(conn: AsyncConnection) -> tuple[int, Any]:
        province = await _ballot_province(conn, who, ballot_id)
        await issuance.cancel(conn, ctx.store, ballot_id, body.reason, province, metadata(request, who))
        return 200, {"ballot_id": ballot_id, "status": "cancelled", "reason": body.reason}

    return await run_command(ctx, request, who, decide)


@router.post("/ballots/{ballot_id}/reissue", status_code=201,
             summary="Cancel a lost or disclosed code and issue a new one to the same unit")
async def reissue_ballot(ballot_id: str, body: ReasonIn, request: Request, ctx: Ctx, who: Manager) -> JSONResponse:
    async def decide(conn: AsyncConnection) -> tuple[int, Any]:
        province = await _ballot_province(conn, who, ballot_id)
        new = await issuance.reissue(conn, ctx.store, ballot_id, body.reason, province, metadata(request, who))
        return 201, {"cancelled": ballot_id, "ballot_id": new}

    return await run_command(ctx, request, who, decide)


@router.get("/campaigns/{campaign_id}/ballot-sheets.pdf",
            summary="Printable ballot sheets (A5): the code and a QR of the respondent page, one per open ballot")
async def ballot_sheets(campaign_id: str, ctx: Ctx, who: Manager, agency_code: str | None = None) -> Response:
    async with ctx.engine.connect() as conn:
        c = reference.campaigns.c
        province = (await conn.execute(select(c.province).where(c.campaign_id == campaign_id))).scalar()
        if not who.can_act_in(province):
            raise Problem(404, "Not found", f"no campaign {campaign_id} in your scope")
        rows = await issuance.open_ballots(conn, campaign_id, agency_code)
        title = await issuance.campaign_name(conn, campaign_id)
    if not rows:
        raise Problem(404, "Not found", "no open ballot to print for this campaign and agency")
    pdf = issuance.sheets_pdf(title, rows, ctx.settings.public_base_url, str(font_path()))  # type: ignore[attr-defined]
    return Response(pdf, media_type="application/pdf",
                    headers={"Content-Disposition": f'attachment; filename="ballots-{campaign_id}.pdf"'})


@router.post("/campaigns/{campaign_id}/ballot-imports",
             summary="Import keyed ballots (CSV/XLSX body): each row validated and recorded; a per-row report")
async def import_ballots(campaign_id: str, request: Request, ctx: Ctx, who: CurrentPrincipal,
                         filename: str = "ballots.csv", report: Literal["json", "csv"] = "json") -> Response:
    if who.role not in STAFF:
        raise Problem(403, "Forbidden", f"a {who.role} cannot import ballots")
    async with ctx.engine.connect() as conn:
        c = reference.campaigns.c
        province = (await conn.execute(select(c.province).where(c.campaign_id == campaign_id))).scalar()
    who.require_province(province, f"campaign {campaign_id}")
    content = await request.body()
    if len(content) > 100 * 1024 * 1024:
        raise Problem(413, "Content too large", "at most 100 MB per file")
    # A re-sent file with the same Idempotency-Key (the postal service's retry after a lost answer) gets the
    # first report again, recorded in the import's own transaction: never "used code" for its own rows.
    key = idempotency.key_of(request)
    digest = idempotency.request_hash("POST", request.url.path, hashlib.sha256(content).hexdigest() + filename)
    replayed = None
    async with ctx.engine.begin() as conn:
        if key:
            replayed = await idempotency.claim(conn, who.subject, key, "POST", request.url.path, digest)
        if replayed is None:
            rows = await imports.import_ballots(conn, ctx.store, campaign_id, content, filename, who.subject,
                                                metadata(request, who), ctx.metrics)
            if key:
                await idempotency.store(conn, who.subject, key, 200, {"report": rows})
        else:
            rows = replayed.body["report"]
    if report == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=["line", "outcome", "reason", "detail", "submission_id"],
                                lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return Response(out.getvalue(), media_type="text/csv; charset=utf-8")
    accepted = sum(r["outcome"] == "accepted" for r in rows)
    return JSONResponse({"rows": len(rows), "accepted": accepted, "rejected": len(rows) - accepted, "report": rows},
                        headers={"Idempotent-Replayed": "true"} if replayed is not None else None)


class RatingsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    items: list[dict[str, Any]] = Field(min_length=1, max_length=10_000,
                                        description="source_system, dossier_id, agency_code, completed_on, "
                                                    "rated_unsatisfied, complained, overdue")


@router.post("/campaigns/{campaign_id}/online-ratings",
             summary="Per-dossier online ratings (online-766) from kiosks and portals: batched and idempotent")
async def online_ratings(campaign_id: str, body: RatingsIn, request: Request, ctx: Ctx,
                         who: CurrentPrincipal) -> JSONResponse:
    if who.role not in (Role.SERVICE, Role.MINISTRY_ADMIN, Role.PROVINCE_OPERATOR):
        raise Problem(403, "Forbidden", f"a {who.role} cannot send ratings")

    async def decide(conn: AsyncConnection) -> tuple[int, Any]:
        c = reference.campaigns.c
        province = (await conn.execute(select(c.province).where(c.campaign_id == campaign_id))).scalar()
        who.require_province(province, f"campaign {campaign_id}")
        result = await ratings.record(conn, ctx.store, campaign_id, province, body.items, metadata(request, who))
        return (200 if not result["errors"] else 207), result

    return await run_command(ctx, request, who, decide)
