"""Issuance from the sample and the one validation path, over real PostgreSQL: a test per rejection
reason, nothing kept of a rejected ballot but its record, and one acceptance per code under load."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest
from conftest import apply_events
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from sipas_ballots.adapters.tables import reference
from sipas_ballots.projections.sample import projection as sample
from sipas_events.catalogue import registry as reg
from sipas_events.catalogue import sampling as smp
from sipas_kit import csrf
from sipas_kit.reference import reference_projection

pytestmark = pytest.mark.asyncio
REFERENCE = Path(__file__).resolve().parents[4] / "data" / "reference"
CAMPAIGN = "c-ballots"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def builtin(kind: str, ident: str) -> dict:
    return json.loads((REFERENCE / f"{kind}s" / f"{ident}.json").read_text(encoding="utf-8"))["definition"]


async def rows(api, sql, **params):
    engine = create_async_engine(api.database_url)
    async with engine.connect() as conn:
        result = [tuple(r) for r in await conn.execute(text(sql), params)]
    await engine.dispose()
    return result


def unit(i: int) -> smp.SampledUnit:
    return smp.SampledUnit(unit_id=f"u{i:03d}", agency_id="a1", agency_code="H01.1", stratum="H01.1", weight="2.5")


@pytest.fixture
async def ballots_api(open_api):
    api = await open_api("ballots")
    window = {"start": "2026-01-01", "end": "2099-12-31"}
    await apply_events(api.database_url, reference_projection(reference), [
        reg.InstrumentPublished(instrument_id="sipas-2017", instrument_version=1,
                                definition=builtin("instrument", "sipas-2017")),
        reg.SchemePublished(scheme_id="share-satisfied", scheme_version=1, definition=builtin("scheme", "share-satisfied")),
        reg.CampaignOpened(campaign_id=CAMPAIGN, name="Vòng thử", year=2026, scope="province", province="01",
                           collection_window=window, frame_window={"start": "2025-10-01", "end": "2025-12-31"},
                           target_unit_ids=["a1"], instrument={"id": "sipas-2017", "version": 1},
                           scheme={"id": "share-satisfied", "version": 1}, retention_until="2100-01-01"),
        reg.CampaignOpened(campaign_id="c-other", name="Vòng khác", year=2026, scope="province", province="01",
                           collection_window={"start": "2020-01-01", "end": "2020-12-31"},
                           frame_window={"start": "2019-01-01", "end": "2019-12-31"}, target_unit_ids=["a1"],
                           instrument={"id": "sipas-2017", "version": 1}, scheme={"id": "share-satisfied", "version": 1},
                           retention_until="2021-01-01"),
    ], "registry")
    drawn = smp.SampleDrawn(draw_id="d1", campaign_id=CAMPAIGN, province="01", frame_digest="0" * 64,
                            seed_commitment="1" * 64, seed="2" * 32, algorithm_version="v1", part=1, parts=1,
                            units=[unit(i) for i in range(60)])
    await apply_events(api.database_url, sample, [drawn, drawn], "sampling")  # a redelivery issues nothing twice
    return api


def full_answers(value: int = 4) -> dict[str, int | None]:
    items = [i["code"] for f in builtin("instrument", "sipas-2017")["factors"] for i in f["items"]]
    return {code: value for code in items}


async def codes(api) -> dict[str, str]:
    return dict(await rows(api, "SELECT unit_id, code FROM ballots ORDER BY unit_id"))


async def post(api, code, answers=None, campaign=CAMPAIGN, **extra):
    return await api.client.post("/v1/submissions", json={
        "code": code, "campaign_id": campaign, "answers": full_answers() if answers is None else answers} | extra)


async def test_one_ballot_per_sampled_unit_and_the_code_never_in_an_event(ballots_api):
    api = ballots_api
    issued = await codes(api)
    assert len(issued) == 60 and len(set(issued.values())) == 60
    events = "\n".join(b for (b,) in await rows(api, "SELECT body FROM event_store"))
    assert events.count("BallotIssued") == 60
    assert not any(code in events for code in issued.values())


async def test_every_rejection_reason_with_its_message_and_nothing_else_kept(ballots_api):
    api = ballots_api
    issued = await codes(api)
    good = issued["u001"]
    answers = full_answers()
    cases = [
        ("unknown_code", dict(code="ZZZZ-ZZZZ-ZZ"), "not a ballot code"),
        ("unknown_code", dict(code="0000-0000-000"), "no ballot"),
        ("wrong_campaign", dict(code=issued["u002"], campaign="c-other"), "campaign"),
        ("unknown_item", dict(code=issued["u003"], answers=answers | {"9.9": 4}), "9.9"),
        ("off_scale", dict(code=issued["u004"], answers=answers | {"1.1": 7}), "1.1"),
        ("unknown_option", dict(code=issued["u005"], expectations=["E99"]), "E99"),
        ("too_many_choices", dict(code=issued["u006"], expectations=["E1", "E2", "E3", "E4"]), "3"),
        ("too_few_answers", dict(code=issued["u007"], answers={k: v for k, v in list(answers.items())[:10]}),
         "answered"),
    ]
    for reason, args, says in cases:
        r = await post(api, args.pop("code"), args.pop("answers", None), args.pop("campaign", CAMPAIGN), **args)
        assert r.status_code == 422, (reason, r.text)
        assert r.json()["reason"] == reason and says in r.json()["detail"], (reason, r.json())
        assert r.headers["content-type"] == "application/problem+json"
    assert (await post(api, good)).status_code == 201
    used = await post(api, good.lower().replace("-", ""))  # the same code, typed differently
    assert used.status_code == 422 and used.json()["reason"] == "used_code"
    await apply_events(api.database_url, sample, [smp.UnitWithdrawn(
        draw_id="d1", campaign_id=CAMPAIGN, province="01", unit_id="u008", reason="withdrawal")], "sampling")
    cancelled = await post(api, issued["u008"])
    assert cancelled.status_code == 422 and cancelled.json()["reason"] == "cancelled_code"
    # A rejection keeps its record and its event, never the answers.
    assert await rows(api, "SELECT count(*) FROM accepted_ballots") == [(1,)]
    recorded = await rows(api, "SELECT reason, count(*) FROM submissions WHERE outcome = 'rejected' GROUP BY reason")
    assert dict(recorded) == {"unknown_code": 2, "wrong_campaign": 1, "unknown_item": 1, "off_scale": 1,
                              "unknown_option": 1, "too_many_choices": 1, "too_few_answers": 1, "used_code": 1,
                              "cancelled_code": 1}
    rejected = [b for (b,) in await rows(api, "SELECT body FROM event_store WHERE type LIKE '%BallotRejected%'")]
    assert len(rejected) == 10 and not any('"answers":' in b for b in rejected)
    assert not any(code in b for b in rejected for code in issued.values())  # nor any code, not even as actor
    progress = (await api.client.get(f"/v1/campaigns/{CAMPAIGN}/progress", headers=api.auth("auditor"))).json()
    assert progress["valid"] == 1 and progress["rejected_by_reason"]["used_code"] == 1


async def test_a_code_submitted_50_times_at_once_is_accepted_once(ballots_api):
    api = ballots_api
    code = (await codes(api))["u010"]
    results = await asyncio.gather(*(post(api, code) for _ in range(50)))
    statuses = sorted(r.status_code for r in results)
    assert statuses.count(201) == 1 and statuses.count(422) == 49
    assert {r.json()["reason"] for r in results if r.status_code == 422} == {"used_code"}
    assert await rows(api, "SELECT count(*) FROM accepted_ballots") == [(1,)]
    accepted = await rows(api, "SELECT count(*) FROM event_store WHERE type LIKE '%BallotAccepted%'")
    assert accepted == [(1,)]
    metrics = (await api.client.get("/metrics")).text
    assert f'sipas_ballots_intake_outcomes_total{{campaign="{CAMPAIGN}",channel="online",outcome="accepted",reason=""}} 1.0' in metrics
    assert 'outcome="rejected",reason="used_code"} 49.0' in metrics


async def test_staff_channels_need_staff_in_scope(ballots_api):
    api = ballots_api
    code = (await codes(api))["u011"]
    r = await post(api, code, channel="paper")
    assert r.status_code == 401
    r = await api.client.post("/v1/submissions", headers=api.auth("clerk", "79"), json={
        "code": code, "campaign_id": CAMPAIGN, "answers": full_answers(), "channel": "paper"})
    assert r.status_code == 403
    r = await api.client.post("/v1/submissions", headers=api.auth("clerk", "01"), json={
        "code": code, "campaign_id": CAMPAIGN, "answers": full_answers(), "channel": "paper"})
    assert r.status_code == 201


async def test_reissue_cancels_the_old_code_and_sheets_print_the_open_ones(ballots_api):
    api = ballots_api
    issued = await codes(api)
    old_code = issued["u020"]
    [(ballot_id,)] = await rows(api, "SELECT ballot_id FROM ballots WHERE unit_id = 'u020'")
    op = api.auth("province-operator", "01")
    assert (await api.client.post(f"/v1/ballots/{ballot_id}/reissue", json={"reason": "phiếu bị mất"},
                                  headers=api.auth("province-operator", "79"))).status_code == 404
    r = await api.client.post(f"/v1/ballots/{ballot_id}/reissue", json={"reason": "phiếu bị mất"}, headers=op)
    assert r.status_code == 201, r.text
    again = await api.client.post(f"/v1/ballots/{ballot_id}/reissue", json={"reason": "lần nữa"}, headers=op)
    assert again.status_code == 409 and "already cancelled" in again.json()["detail"]
    rejected = await post(api, old_code)
    assert rejected.status_code == 422 and rejected.json()["reason"] == "cancelled_code"
    [(new_code,)] = await rows(api, "SELECT code FROM ballots WHERE ballot_id = :b", b=r.json()["ballot_id"])
    assert (await post(api, new_code)).status_code == 201
    used = await api.client.post(f"/v1/ballots/{r.json()['ballot_id']}/cancel", json={"reason": "nhầm"}, headers=op)
    assert used.status_code == 409 and "void it instead" in used.json()["detail"]
    pdf = await api.client.get(f"/v1/campaigns/{CAMPAIGN}/ballot-sheets.pdf", headers=op)
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    import re

    assert len(re.findall(rb"/Type\s*/Page[^s]", pdf.content)) == 59  # 60 issued, one used: 59 open sheets


async def test_the_respondent_page_takes_a_ballot_without_javascript(ballots_api):
    api = ballots_api
    code = (await codes(api))["u030"]
    page = await api.client.get(f"/b/{code}")
    assert page.status_code == 200 and "<script" not in page.text and 'lang="vi"' in page.text
    assert page.text.count('type="radio"') == (22 + 5 + 1) * 6  # five levels and "not applicable" each
    token = csrf.token_in(page.text)
    few = await api.client.post(f"/b/{code}", content=f"a_1.1=4&csrf_token={token}".encode(), headers=FORM)
    assert few.status_code == 422 and "Xin trả lời thêm" in few.text and 'value="4"\n          checked' in few.text
    form = "&".join(f"a_{item}=5" for item in full_answers()) + f"&e=E1&e=E2&csrf_token={csrf.token_in(few.text)}"
    done = await api.client.post(f"/b/{code}", content=form.encode(),
                                 headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert done.status_code == 200 and "Cảm ơn" in done.text
    again = await api.client.get(f"/b/{code.lower()}")
    assert again.status_code == 409 and "đã được gửi" in again.text
    typed = await api.client.get("/b", params={"code": f"{code[:4]}-{code[4:8]}-{code[8:]}".lower()})
    assert typed.status_code == 303 and typed.headers["location"] == f"/b/{code}"


async def login(api, role, province=None, subject=None):
    token = api.identity.mint(subject or f"{role}@test", role, province)
    r = await api.client.get("/clerk/login", params={"token": token})
    assert r.status_code == 303
    return {"Cookie": f"sipas_session={token}"}


async def token_of(api, path: str, headers: dict[str, str]) -> str:
    """The CSRF token of the form on a page, as a browser would send it back."""
    page = await api.client.get(path, headers=headers)
    assert page.status_code == 200, page.text
    token = csrf.token_in(page.text)
    assert token, page.text
    return token


def keyed(code: str, answers: dict[str, int | None], token: str | None = None) -> bytes:
    fields = [("campaign_id", CAMPAIGN), ("code", code), ("entry_seconds", "41.5"), ("e", "E1 E2")]
    fields += [("csrf_token", token)] if token is not None else []
    fields += [(f"q_{k}", "0" if v is None else str(v)) for k, v in answers.items()]
    from urllib.parse import urlencode

    return urlencode(fields).encode()


async def test_double_entry_catches_one_differing_answer_and_counts_the_adjudicated_ballot(ballots_api):
    api = ballots_api
    code = (await codes(api))["u040"]
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    clerk_a, clerk_b = await login(api, "clerk", "01", "clerk-a"), await login(api, "clerk", "01", "clerk-b")
    token_a, token_b = await token_of(api, "/clerk", clerk_a), await token_of(api, "/clerk", clerk_b)
    first = await api.client.post("/clerk/key", content=keyed(code, full_answers(4), token_a), headers=form | clerk_a)
    assert first.status_code == 200 and "lần nhập thứ nhất" in first.text
    # The same keying sent again (a retry after a lost answer) gets the first answer; another one by the
    # same clerk is refused: the second keying must be someone else's.
    retried = await api.client.post("/clerk/key", content=keyed(code, full_answers(4), token_a), headers=form | clerk_a)
    assert retried.status_code == 200 and "lần nhập thứ nhất" in retried.text
    twice = await api.client.post("/clerk/key", content=keyed(code, full_answers(5), token_a), headers=form | clerk_a)
    assert twice.status_code == 409 and "another clerk" in twice.text
    second_answers = full_answers(4) | {"3.2": 2}  # one answer keyed differently
    second = await api.client.post("/clerk/key", content=keyed(code, second_answers, token_b), headers=form | clerk_b)
    assert "chuyển sang đối chiếu" in second.text
    resent = await api.client.post("/clerk/key", content=keyed(code, second_answers, token_b), headers=form | clerk_b)
    assert resent.status_code == 200 and "chuyển sang đối chiếu" in resent.text
    assert await rows(api, "SELECT count(*) FROM paper_keyings WHERE code = :c", c=code) == [(2,)]
    assert await rows(api, "SELECT count(*) FROM accepted_ballots") == [(0,)]  # nothing counted while in dispute
    [(disagreements,)] = await rows(api, "SELECT disagreements FROM paper_status WHERE code = :c", c=code)
    assert disagreements == [{"field": "answers.3.2", "first": 4, "second": 2}]
    assert (await api.client.get("/clerk/disputes", headers=clerk_a)).status_code == 403  # a clerk cannot settle
    judge = await login(api, "province-operator", "01", "judge")
    listed = await api.client.get("/clerk/disputes", headers=judge)
    assert code in listed.text
    token = await token_of(api, f"/clerk/disputes/{code}", judge)
    settled = await api.client.post(f"/clerk/disputes/{code}", content=f"answers.3.2=2&csrf_token={token}".encode(),
                                    headers=form | judge)
    assert "đã được chấp nhận" in settled.text, settled.text
    [(answers,)] = await rows(api, "SELECT answers FROM accepted_ballots")
    assert answers["3.2"] == 2 and answers["3.1"] == 4  # the adjudicated version is the one counted
    late = await api.client.post("/clerk/key", content=keyed(code, second_answers, token_b), headers=form | clerk_b)
    assert late.status_code == 200 and "đã được chấp nhận" in late.text  # a retry after settling: its outcome
    events = [b for (b,) in await rows(api, "SELECT body FROM event_store WHERE type LIKE '%BallotAccepted%'")]
    assert len(events) == 1 and '"channel":"paper"' in events[0]


async def test_every_form_refuses_a_post_without_its_own_fresh_csrf_token(ballots_api):
    """Respondent page, keying form and adjudication form: a post with no token, a wrong one, one made
    for another form or another session, an expired one, or from another site is a 403 that records
    nothing; the page's own token (and a browser's ``Origin: null``, our pages sending no referrer) works."""
    api = ballots_api
    issued = await codes(api)
    code, other = issued["u050"], issued["u051"]
    answers = "&".join(f"a_{item}=4" for item in full_answers())

    async def respond(extra: str, **headers: str):
        return await api.client.post(f"/b/{code}", content=f"{answers}{extra}".encode(), headers=FORM | headers)

    page_token = csrf.token_in((await api.client.get(f"/b/{code}")).text)
    other_token = csrf.token_in((await api.client.get(f"/b/{other}")).text)
    secret = api.app.state.csrf_secret
    expired = csrf.mint(secret, "ballot", code, int(time.time() - csrf.DEFAULT_MAX_AGE - 60))
    for extra, headers in [("", {}), ("&csrf_token=", {}), ("&csrf_token=1.abc", {}), (f"&csrf_token={other_token}", {}),
                           (f"&csrf_token={page_token}x", {}), (f"&csrf_token={expired}", {}),
                           (f"&csrf_token={page_token}", {"Origin": "https://evil.example"}),
                           (f"&csrf_token={page_token}", {"Referer": "https://evil.example/b"})]:
        refused = await respond(extra, **headers)
        assert refused.status_code == 403 and "Phiếu chưa được gửi" in refused.text, (extra, headers)
        assert 'value="4"\n          checked' in refused.text  # the answers are kept for sending again
        assert csrf.verify(api.app.state.csrf_secret, csrf.token_in(refused.text), "ballot", code, time.time(),
                           60) is None  # with a fresh token to send it again
    assert await rows(api, "SELECT status FROM ballots WHERE code = :c", c=code) == [("issued",)]
    sent = await respond(f"&csrf_token={page_token}", Origin="null")
    assert sent.status_code == 200 and "Cảm ơn" in sent.text

    clerk_a, clerk_b = await login(api, "clerk", "01", "clerk-a"), await login(api, "clerk", "01", "clerk-b")
    token_a, token_b = await token_of(api, "/clerk", clerk_a), await token_of(api, "/clerk", clerk_b)
    key_code = issued["u052"]
    old = csrf.mint(secret, "clerk-key", csrf.session_binding_of(clerk_a["Cookie"].split("=", 1)[1]),
                    int(time.time() - csrf.DEFAULT_MAX_AGE - 60))
    for token, headers, reason in [(None, {}, "no CSRF token"), ("0.0", {}, "not valid"),
                                   (token_b, {}, "not valid"),  # another clerk's session
                                   (page_token, {}, "not valid"),  # another form
                                   (old, {}, "expired"), (token_a, {"Origin": "http://evil.example"}, "another site")]:
        r = await api.client.post("/clerk/key", content=keyed(key_code, full_answers(4), token),
                                  headers=FORM | clerk_a | headers)
        assert r.status_code == 403 and r.headers["content-type"] == "application/problem+json", r.text
        assert r.json()["type"].endswith("/csrf") and reason in r.json()["detail"], r.json()
    assert await rows(api, "SELECT count(*) FROM paper_status WHERE code = :c", c=key_code) == [(0,)]
    for token, clerk in ((token_a, clerk_a), (token_b, clerk_b)):
        r = await api.client.post("/clerk/key", content=keyed(key_code, full_answers(4) | (
            {"3.2": 2} if clerk is clerk_b else {}), token), headers=FORM | clerk)
        assert r.status_code == 200, r.text

    judge = await login(api, "province-operator", "01", "judge")
    judge_key = await token_of(api, "/clerk", judge)
    elsewhere = await token_of(api, f"/clerk/disputes/{key_code}", await login(api, "province-operator", "01", "j2"))
    for token in (None, judge_key, elsewhere):  # none, the keying form's, another session's
        r = await api.client.post(f"/clerk/disputes/{key_code}", headers=FORM | judge,
                                  content=b"answers.3.2=2" + (f"&csrf_token={token}".encode() if token else b""))
        assert r.status_code == 403 and r.json()["type"].endswith("/csrf"), r.text
    assert await rows(api, "SELECT status FROM paper_status WHERE code = :c", c=key_code) == [("disputed",)]
    token = await token_of(api, f"/clerk/disputes/{key_code}", judge)
    r = await api.client.post(f"/clerk/disputes/{key_code}", content=f"answers.3.2=2&csrf_token={token}".encode(),
                              headers=FORM | judge)
    assert r.status_code == 200 and "đã được chấp nhận" in r.text, r.text


async def test_bulk_import_reports_every_row_and_keeps_the_good_ones(ballots_api):
    api = ballots_api
    issued = await codes(api)
    items = list(full_answers())
    header = ",".join(["code", *items, "expectations"])
    good = ",".join([issued["u050"], *["5"] * len(items), "E1 E2"])
    off = ",".join([issued["u051"], "9", *["4"] * (len(items) - 1), ""])
    unknown = ",".join(["0000-0000-000", *["4"] * len(items), ""])
    content = "\n".join([header, good, off, unknown, good]).encode()
    clerk = api.auth("clerk", "01")
    r = await api.client.post(f"/v1/campaigns/{CAMPAIGN}/ballot-imports", content=content,
                              headers=clerk | {"Content-Type": "text/csv"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["rows"], body["accepted"], body["rejected"]) == (4, 1, 3)
    assert [(row["line"], row["outcome"], row["reason"]) for row in body["report"]] == [
        (2, "accepted", ""), (3, "rejected", "off_scale"), (4, "rejected", "unknown_code"), (5, "rejected", "used_code")]
    csv_report = await api.client.post(f"/v1/campaigns/{CAMPAIGN}/ballot-imports", params={"report": "csv"},
                                       content="\n".join([header, off]).encode(),
                                       headers=clerk | {"Content-Type": "text/csv"})
    assert csv_report.text.splitlines()[0] == "line,outcome,reason,detail,submission_id"
    assert csv_report.text.splitlines()[1].startswith("2,rejected,off_scale,")  # still unused: off scale again
    outsider = await api.client.post(f"/v1/campaigns/{CAMPAIGN}/ballot-imports", content=content,
                                     headers=api.auth("clerk", "79") | {"Content-Type": "text/csv"})
    assert outsider.status_code == 403


async def test_online_ratings_are_batched_idempotent_and_reported_per_item(ballots_api):
    api = ballots_api
    portal = api.auth("service", subject="service:portal-01")
    item = {"source_system": "portal-01", "dossier_id": "HS-1", "agency_code": "H01.1", "completed_on": "2026-03-01"}
    items = [item, item | {"dossier_id": "HS-2", "overdue": True}, item | {"dossier_id": "HS-3", "completed_on": "x"}]
    r = await api.client.post(f"/v1/campaigns/{CAMPAIGN}/online-ratings", json={"items": items}, headers=portal)
    assert r.status_code == 207 and r.json()["recorded"] == 2
    assert [(e["index"], e["field"]) for e in r.json()["errors"]] == [(2, "completed_on")]
    again = await api.client.post(f"/v1/campaigns/{CAMPAIGN}/online-ratings", json={"items": items[:2]},
                                  headers=portal)  # a retried batch changes nothing
    assert again.status_code == 200 and again.json()["recorded"] == 0 and again.json()["repeats"] == 2
    changed = await api.client.post(f"/v1/campaigns/{CAMPAIGN}/online-ratings",
                                    json={"items": [item | {"complained": True}]}, headers=portal)
    assert changed.status_code == 207 and "other values" in changed.json()["errors"][0]["message"]
    # Each error names the row it is about, also when a malformed row comes before it in the batch.
    mixed = await api.client.post(f"/v1/campaigns/{CAMPAIGN}/online-ratings", headers=portal, json={"items": [
        item | {"dossier_id": "HS-9", "completed_on": "x"}, item | {"complained": True}]})
    assert [(e["index"], e["field"]) for e in mixed.json()["errors"]] == [(0, "completed_on"), (1, "dossier_id")]
    assert await rows(api, "SELECT count(*) FROM online_ratings") == [(2,)]
    events = await rows(api, "SELECT count(*) FROM event_store WHERE type LIKE '%OnlineRatingsRecorded%'")
    assert events == [(1,)]
    assert (await api.client.post(f"/v1/campaigns/{CAMPAIGN}/online-ratings", json={"items": items},
                                  headers=api.auth("partner"))).status_code == 403


async def test_flags_review_queue_and_back_checks_with_their_consequences(ballots_api):
    api = ballots_api
    issued = await codes(api)
    items = list(full_answers())
    enum_a, enum_b = api.auth("enumerator", "01", "enum-a"), api.auth("enumerator", "01", "enum-b")
    varied = {k: 4 if i % 2 else 5 for i, k in enumerate(items)}
    for n, unit_id in enumerate([f"u{i:03d}" for i in range(21, 27)]):
        who = enum_a if n < 4 else enum_b
        # u021 straight-lines; u022-u024 (enum-a) differ from each other in at most one answer
        answers = full_answers(5) if n == 0 else varied if n in (1, 2) else varied | {items[n]: 3}
        r = await api.client.post("/v1/submissions", headers=who, json={
            "code": issued[unit_id], "campaign_id": CAMPAIGN, "answers": answers, "channel": "paper",
            "entry_seconds": 10 if n == 5 else 100})
        assert r.status_code == 201, r.text
    op, admin = api.auth("province-operator", "01"), api.auth("ministry-admin")
    scan = await api.client.post(f"/v1/campaigns/{CAMPAIGN}/quality/scan", headers=op)
    assert scan.json()["new_flags"] == {"straight_lining": 1, "speeder": 1, "near_identical": 3}
    again = await api.client.post(f"/v1/campaigns/{CAMPAIGN}/quality/scan", headers=op)
    assert again.json()["new_flags"] == {}  # idempotent
    queue = (await api.client.get(f"/v1/campaigns/{CAMPAIGN}/review-queue", headers=op)).json()
    straight = next(f for f in queue if f["kind"] == "straight_lining")
    r = await api.client.post(f"/v1/ballots/{straight['ballot_id']}/review", headers=op,
                              json={"action": "escalate", "comment": "cần bộ xem xét"})
    assert r.status_code == 200
    assert (await api.client.post(f"/v1/ballots/{straight['ballot_id']}/review", headers=op,
                                  json={"action": "clear", "comment": "không"})).status_code == 403
    ministry = (await api.client.get(f"/v1/campaigns/{CAMPAIGN}/review-queue", params={"level": "ministry"},
                                     headers=admin)).json()
    assert [f["ballot_id"] for f in ministry] == [straight["ballot_id"]]
    r = await api.client.post(f"/v1/ballots/{straight['ballot_id']}/review", headers=admin,
                              json={"action": "void", "comment": "phiếu không đáng tin"})
    assert r.status_code == 200
    history = (await api.client.get(f"/v1/campaigns/{CAMPAIGN}/review-history.csv", headers=op)).text.splitlines()
    assert [line.split(",")[3] for line in history[1:]] == ["escalate", "void"]

    draw = await api.client.post(f"/v1/campaigns/{CAMPAIGN}/backchecks", json={"seed": "ab" * 16}, headers=op)
    assert draw.status_code == 201 and draw.json()["per_enumerator"] == {"enum-a": 2, "enum-b": 2}
    sheet = (await api.client.get(f"/v1/campaigns/{CAMPAIGN}/backchecks", headers=enum_a)).json()
    target = next(s for s in sheet if s["enumerator"] == "enum-b")
    r = await api.client.post(f"/v1/backchecks/{target['ballot_id']}", json={"outcome": "fabricated"}, headers=op)
    assert r.status_code == 200 and r.json()["voided"] == [target["ballot_id"]] and r.json()["under_review"] == 1
    voided = await rows(api, "SELECT count(*) FROM event_store WHERE type LIKE '%BallotVoided%'")
    assert voided == [(2,)]
    stats = {s["enumerator"]: s for s in (await api.client.get(f"/v1/campaigns/{CAMPAIGN}/enumerators",
                                                               headers=op)).json()}
    assert stats["enum-b"]["fabricated"] == 1 and stats["enum-b"]["error_rate"] == 1.0
    assert stats["enum-a"]["voided"] == 1
    per_enumerator = await rows(api, "SELECT coalesce(entered_by, '(online)'), count(*), count(*) FILTER (WHERE voided) "
                                     f"FROM accepted_ballots WHERE campaign_id = '{CAMPAIGN}' GROUP BY 1")
    assert {e: (s["accepted"], s["voided"]) for e, s in stats.items()} == {e: (n, v) for e, n, v in per_enumerator}
