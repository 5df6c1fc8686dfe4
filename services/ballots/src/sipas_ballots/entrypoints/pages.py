"""The respondent's pages: server-rendered Vietnamese HTML, phone-first, usable without JavaScript.

``/b`` asks for the code, ``/b/{code}`` (what the QR code opens) shows the campaign's instrument and
takes the answers through the same validation path as every other channel.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from sipas_ballots.adapters.tables import ballots, reference
from sipas_ballots.application.intake import submit, today_in_vietnam
from sipas_ballots.domain.codes import display, parse_code
from sipas_ballots.domain.errors import InvalidCode
from sipas_ballots.domain.validation import Accepted, Submission
from sipas_events.store import Metadata
from sipas_kit import csrf
from sipas_kit.http import Ctx
from sipas_kit.problems import Problem

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
REASONS_VI = {
    "unknown_code": "Mã phiếu không đúng. Xin kiểm tra lại mã in trên phiếu.",
    "cancelled_code": "Mã phiếu này đã bị hủy. Xin liên hệ cơ quan phát phiếu để được cấp mã mới.",
    "used_code": "Phiếu này đã được gửi trước đó. Mỗi mã phiếu chỉ được gửi một lần.",
    "wrong_campaign": "Mã phiếu không thuộc đợt khảo sát này.",
    "outside_window": "Đợt khảo sát chưa bắt đầu hoặc đã kết thúc.",
    "not_sampled": "Mã phiếu không thuộc danh sách được chọn khảo sát.",
    "unknown_item": "Phiếu có câu hỏi không thuộc bộ câu hỏi.",
    "off_scale": "Có câu trả lời không hợp lệ.",
    "unknown_option": "Có lựa chọn mong muốn không hợp lệ.",
    "too_many_choices": "Ông/Bà đã chọn quá số mong muốn cho phép.",
    "too_few_answers": "Xin trả lời thêm: phiếu cần có câu trả lời cho phần lớn các câu hỏi, "
                       "và ít nhất một câu trong mỗi phần có áp dụng.",
}
RESEND_VI = ("Phiếu chưa được gửi: trang đã mở quá lâu hoặc phiếu không được gửi từ trang này. "
             "Các câu trả lời vẫn còn; xin kiểm tra lại rồi bấm Gửi.")


def _page(request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
    return templates.TemplateResponse(request, name, {"title": "Phiếu khảo sát"} | context, status_code=status)


@router.get("/b", response_class=HTMLResponse)
async def enter_code(request: Request, code: str | None = None) -> Response:
    if code:
        try:
            return RedirectResponse(f"/b/{parse_code(code)}", status_code=303)
        except InvalidCode:
            return _page(request, "enter_code.html", 422, code=code, message=REASONS_VI["unknown_code"])
    return _page(request, "enter_code.html")


async def _ballot_form(conn: AsyncConnection, code: str) -> dict[str, Any] | str:
    row = (await conn.execute(select(ballots).where(ballots.c.code == code))).first()
    if row is None:
        return "unknown_code"
    if row.status != "issued":
        return "used_code" if row.status == "used" else "cancelled_code"
    c, d = reference.campaigns.c, reference.definitions.c
    campaign = (await conn.execute(select(reference.campaigns).where(c.campaign_id == row.campaign_id))
                ).mappings().first()
    if campaign is None:
        return "wrong_campaign"
    ref = campaign["definition"]["instrument"]
    definition = (await conn.execute(select(d.definition).where(d.kind == "instrument", d.def_id == ref["id"],
                                                                d.version == ref["version"]))).scalar()
    if definition is None:
        return "wrong_campaign"
    factors = [f | {"optional": i == len(definition["factors"]) - 1} for i, f in enumerate(definition["factors"])]
    return {"campaign_id": row.campaign_id, "campaign_name": campaign["definition"]["name"], "factors": factors,
            "scale": definition["scale"], "expectations": definition.get("expectations"),
            "overall_item": definition.get("overall_item")}


@router.get("/b/{code}", response_class=HTMLResponse)
async def ballot_page(code: str, request: Request, ctx: Ctx) -> Response:
    try:
        canonical = parse_code(code)
    except InvalidCode:
        return _page(request, "enter_code.html", 404, code=code, message=REASONS_VI["unknown_code"])
    async with ctx.engine.connect() as conn:
        form = await _ballot_form(conn, canonical)
    if isinstance(form, str):
        return _page(request, "enter_code.html", 404 if form == "unknown_code" else 409, message=REASONS_VI[form])
    return _ballot(request, canonical, form)


def _ballot(request: Request, code: str, form: dict[str, Any], status: int = 200,
            answers: dict[str, str] | None = None, message: str | None = None) -> HTMLResponse:
    """The ballot form for ``code``, with a fresh CSRF token bound to that code."""
    return _page(request, "ballot.html", status, code=code, display_code=display(code), answers=answers or {},
                 message=message, csrf_token=csrf.issue(request, "ballot", code), **form)


@router.post("/b/{code}", response_class=HTMLResponse)
async def submit_page(code: str, request: Request, ctx: Ctx) -> Response:
    body = await request.body()
    if len(body) > 64 * 1024:
        raise Problem(413, "Content too large", "a ballot form is far smaller than this")
    fields = parse_qs(body.decode("utf-8", errors="replace"), keep_blank_values=True)
    try:
        canonical = parse_code(code)
    except InvalidCode:
        return _page(request, "enter_code.html", 404, code=code, message=REASONS_VI["unknown_code"])
    answers: dict[str, Any] = {}
    for key, values in fields.items():
        if key.startswith("a_"):
            value = values[-1].strip()
            answers[key[2:]] = None if value == "" else int(value) if value.isdigit() else value
    async with ctx.engine.connect() as conn:
        form = await _ballot_form(conn, canonical)
    shown = {k: ("" if v is None else str(v)) for k, v in answers.items()}
    try:  # a post not sent from this code's own page records nothing: the page comes back, answers kept
        csrf.check(request, fields, "ballot", canonical)
    except csrf.CsrfRefused:
        if not isinstance(form, dict):
            return _page(request, "enter_code.html", 403, message=RESEND_VI)
        return _ballot(request, canonical, form, 403, shown, RESEND_VI)
    campaign_id = form["campaign_id"] if isinstance(form, dict) else ""
    sub = Submission(code=canonical, campaign_id=campaign_id, received_on=today_in_vietnam(), answers=answers,
                     channel="online", expectations=frozenset(fields.get("e", [])),
                     not_applicable_factors=frozenset(fields.get("na_factor", [])))
    actor = "respondent:" + hashlib.sha256(canonical.encode()).hexdigest()[:16]
    meta = Metadata(correlation_id=request.state.correlation_id, actor=actor)
    async with ctx.engine.begin() as conn:
        _, outcome = await submit(conn, ctx.store, sub, meta, ctx.metrics)
    if isinstance(outcome, Accepted):
        return _page(request, "done.html")
    message = REASONS_VI[outcome.reason_code]
    if not isinstance(form, dict) or outcome.reason_code in ("used_code", "cancelled_code", "unknown_code"):
        return _page(request, "enter_code.html", 409, message=message)
    return _ballot(request, canonical, form, 422, shown, message)
