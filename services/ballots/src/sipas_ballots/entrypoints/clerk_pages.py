"""Clerk pages: fast paper entry (double entry) and the adjudication screen.

Browsers carry the same signed token as the API, in an HttpOnly cookie set by ``/clerk/login``
(production: the identity provider's callback sets it). Every form carries a CSRF token bound to that
session and to the form (``sipas_kit.csrf``); a post without a good one is a 403 problem and records
nothing. Out-of-scope campaigns and ballots are refused (404) before the token is looked at, as they
are on the pages that render the forms.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select

from sipas_ballots.adapters.tables import paper_status, reference
from sipas_ballots.application import paper
from sipas_ballots.domain.codes import parse_code
from sipas_ballots.domain.double_entry import PaperBallot
from sipas_ballots.domain.errors import BallotsError, InvalidCode
from sipas_ballots.entrypoints.pages import _page
from sipas_kit import csrf
from sipas_kit.auth import Principal, Role
from sipas_kit.http import Ctx, metadata
from sipas_kit.problems import Problem

router = APIRouter(include_in_schema=False)
COOKIE = "sipas_session"
KEYERS = {Role.CLERK, Role.ENUMERATOR, Role.PROVINCE_OPERATOR, Role.MINISTRY_ADMIN}
ADJUDICATORS = {Role.PROVINCE_OPERATOR, Role.MINISTRY_ADMIN}


def _who(request: Request, allowed: set[Role]) -> Principal:
    token = request.cookies.get(COOKIE)
    verifier = getattr(request.app.state, "token_verifier", None)
    if not token or verifier is None:
        raise Problem(401, "Unauthorized", "sign in first (/clerk/login)")
    who: Principal = verifier.verify(token)
    if who.role not in allowed:
        raise Problem(403, "Forbidden", f"a {who.role} cannot use this page")
    request.state.principal = who
    return who


def _token(request: Request, form: str) -> str:
    return csrf.issue(request, form, csrf.session_binding(request, COOKIE))


def _checked(request: Request, fields: dict[str, list[str]], form: str) -> None:
    csrf.check(request, fields, form, csrf.session_binding(request, COOKIE))


@router.get("/clerk/keying.js", include_in_schema=False)
async def keying_script() -> Response:
    """The keying page's optional script (auto-advance, entry timing), as a file: no inline scripts."""
    script = (Path(__file__).parent / "templates" / "keying.js").read_bytes()
    return Response(script, media_type="text/javascript; charset=utf-8", headers={"Cache-Control": "max-age=3600"})


@router.get("/clerk/login")
async def login(token: str, request: Request) -> Response:
    verifier = getattr(request.app.state, "token_verifier", None)
    if verifier is None:
        raise Problem(503, "Service unavailable", "authentication is not configured")
    verifier.verify(token)
    response = RedirectResponse("/clerk", status_code=303)
    response.set_cookie(COOKIE, token, httponly=True, samesite="strict", secure=request.url.scheme == "https")
    return response


async def _form(request: Request, ctx: Any, who: Principal, campaign_id: str | None, **extra: Any) -> Response:
    async with ctx.engine.connect() as conn:
        d = reference.definitions.c
        rows = (await conn.execute(select(reference.campaigns))).mappings().all()
        mine = [r for r in rows if who.can_act_in(r["province"])]
        if campaign_id:  # asked for by name: never key into another campaign instead
            campaign = next((r for r in mine if r["campaign_id"] == campaign_id), None)
            if campaign is None:
                return _page(request, "enter_code.html", 404, message=f"Đợt khảo sát {campaign_id} chưa có ở đây "
                             "hoặc ngoài phạm vi của bạn; xin thử lại sau ít phút.")
        else:
            campaign = mine[0] if mine else None
        if campaign is None:
            return _page(request, "enter_code.html", 404, message="Không có đợt khảo sát nào trong phạm vi của bạn.")
        ref = campaign["definition"]["instrument"]
        definition = (await conn.execute(select(d.definition).where(
            d.kind == "instrument", d.def_id == ref["id"], d.version == ref["version"]))).scalar()
    items = [i["code"] for f in definition["factors"] for i in f["items"]]
    return _page(request, "clerk.html", extra.pop("status", 200), campaign_id=campaign["campaign_id"],
                 campaign_name=campaign["definition"]["name"], items=items,
                 last_factor=definition["factors"][-1]["code"], csrf_token=_token(request, "clerk-key"), **extra)


@router.get("/clerk", response_class=HTMLResponse)
async def clerk_form(request: Request, ctx: Ctx, campaign_id: str | None = None) -> Response:
    return await _form(request, ctx, _who(request, KEYERS), campaign_id)


MESSAGES = {"keyed_once": "Đã lưu lần nhập thứ nhất. Phiếu chờ người thứ hai nhập.",
            "disputed": "Hai lần nhập khác nhau: phiếu đã chuyển sang đối chiếu.",
            "accepted": "Hai lần nhập khớp: phiếu đã được chấp nhận.",
            "rejected": "Hai lần nhập khớp nhưng phiếu không hợp lệ: "}


@router.post("/clerk/key", response_class=HTMLResponse)
async def clerk_key(request: Request, ctx: Ctx) -> Response:
    who = _who(request, KEYERS)
    fields = parse_qs((await request.body()).decode("utf-8", errors="replace"), keep_blank_values=True)
    campaign_id = fields.get("campaign_id", [""])[0]
    async with ctx.engine.connect() as conn:
        c = reference.campaigns.c
        province = (await conn.execute(select(c.province).where(c.campaign_id == campaign_id))).scalar()
    if not who.can_act_in(province):
        return await _form(request, ctx, who, None, status=404, message="Không có đợt khảo sát này trong phạm vi "
                           "của bạn.", ok=False)
    _checked(request, fields, "clerk-key")
    try:
        code = parse_code(fields.get("code", [""])[0])
    except InvalidCode as exc:
        return await _form(request, ctx, who, campaign_id, status=422, message=f"Mã phiếu sai: {exc}", ok=False)
    answers: dict[str, int | None] = {}
    for name, values in fields.items():
        if name.startswith("q_"):
            digit = values[-1].strip()
            answers[name[2:]] = int(digit) if digit in {"1", "2", "3", "4", "5"} else None
    seconds = fields.get("entry_seconds", [""])[0]
    ballot = PaperBallot(code=code, answers=answers, expectations=frozenset(fields.get("e", [""])[0].upper().split()),
                         not_applicable_factors=frozenset(fields.get("na_factor", [])))
    try:
        async with ctx.engine.begin() as conn:
            result = await paper.key(conn, ctx.store, campaign_id, who.subject, ballot,
                                     float(seconds) if seconds else None, metadata(request, who))
    except BallotsError as exc:
        return await _form(request, ctx, who, campaign_id, status=409, message=str(exc), ok=False)
    state = result.get("outcome", result["status"])
    message = MESSAGES[state] + (result.get("detail", "") if state == "rejected" else "")
    return await _form(request, ctx, who, campaign_id, message=message, ok=state != "rejected")


@router.get("/clerk/disputes", response_class=HTMLResponse)
async def disputes(request: Request, ctx: Ctx) -> Response:
    who = _who(request, ADJUDICATORS)
    async with ctx.engine.connect() as conn:
        rows = (await conn.execute(select(paper_status).where(paper_status.c.status == "disputed")
                                   .order_by(paper_status.c.code))).mappings().all()
    return _page(request, "disputes.html", disputes=[r for r in rows if who.can_act_in(r["province"])])


@router.get("/clerk/disputes/{code}", response_class=HTMLResponse)
async def dispute(code: str, request: Request, ctx: Ctx) -> Response:
    who = _who(request, ADJUDICATORS)
    async with ctx.engine.connect() as conn:
        row = (await conn.execute(select(paper_status).where(paper_status.c.code == code))).mappings().first()
    if row is None or row["status"] != "disputed" or not who.can_act_in(row["province"]):
        return _page(request, "disputes.html", 404, disputes=[], message="Không có phiếu này để đối chiếu.", ok=False)
    return _page(request, "disputes.html", dispute=row, csrf_token=_token(request, f"clerk-dispute:{code}"))


@router.post("/clerk/disputes/{code}", response_class=HTMLResponse)
async def settle(code: str, request: Request, ctx: Ctx) -> Response:
    who = _who(request, ADJUDICATORS)
    async with ctx.engine.connect() as conn:
        row = (await conn.execute(select(paper_status.c.province).where(paper_status.c.code == code))).first()
    if row is None or not who.can_act_in(row.province):
        return _page(request, "disputes.html", 404, disputes=[], message="Không có phiếu này để đối chiếu.", ok=False)
    fields = parse_qs((await request.body()).decode("utf-8", errors="replace"), keep_blank_values=True)
    _checked(request, fields, f"clerk-dispute:{code}")
    choices: dict[str, Any] = {}
    for name, values in fields.items():
        if name == csrf.FIELD:
            continue
        value = values[-1]
        if name.startswith("answers."):
            choices[name] = int(value) if value.isdigit() else None
        elif name in ("expectations", "not_applicable_factors"):
            choices[name] = set(value.strip("[]").replace("'", "").replace(",", " ").split())
        else:
            choices[name] = value
    try:
        async with ctx.engine.begin() as conn:
            result = await paper.resolve(conn, ctx.store, code, who.subject, choices, metadata(request, who))
    except BallotsError as exc:
        return _page(request, "disputes.html", 409, disputes=[], message=str(exc), ok=False)
    message = MESSAGES[result["outcome"]] + (result.get("detail", "") if result["outcome"] == "rejected" else "")
    return _page(request, "disputes.html", disputes=[], message=message, ok=result["outcome"] == "accepted")
