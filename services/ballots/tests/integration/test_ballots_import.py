"""Bulk import, set-based, over real PostgreSQL: the same outcomes as one submission at a time (a code
twice in a file, a file sent again), every outcome recorded with its event, all of a file or none of
it, and exactly one acceptance per code when imports and online submissions race for the same codes."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from conftest import apply_events
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from sipas_ballots.adapters.tables import reference
from sipas_ballots.application import imports
from sipas_ballots.projections.sample import projection as sample
from sipas_events.catalogue import registry as reg
from sipas_events.catalogue import sampling as smp
from sipas_kit.reference import reference_projection

pytestmark = pytest.mark.asyncio
INSTRUMENT = json.loads((Path(__file__).resolve().parents[4] / "data" / "reference" / "instruments" / "sipas-2017.json")
                        .read_text(encoding="utf-8"))["definition"]
SCHEME = json.loads((Path(__file__).resolve().parents[4] / "data" / "reference" / "schemes" / "share-satisfied.json")
                    .read_text(encoding="utf-8"))["definition"]
ITEMS = [i["code"] for f in INSTRUMENT["factors"] for i in f["items"]]
CAMPAIGN = "c-import"


@pytest.fixture
async def api(open_api):
    """The ballots service with a campaign open until 2099 and 40 drawn units (u00…u39), each with a code."""
    api = await open_api("ballots")
    ref = {"instrument": {"id": "sipas-2017", "version": 1}, "scheme": {"id": "share-satisfied", "version": 1}}
    await apply_events(api.database_url, reference_projection(reference), [
        reg.InstrumentPublished(instrument_id="sipas-2017", instrument_version=1, definition=INSTRUMENT),
        reg.SchemePublished(scheme_id="share-satisfied", scheme_version=1, definition=SCHEME),
        reg.CampaignOpened(campaign_id=CAMPAIGN, name="Nhập lô", year=2026, scope="province", province="01",
                           collection_window={"start": "2026-01-01", "end": "2099-12-31"},
                           frame_window={"start": "2025-10-01", "end": "2025-12-31"}, target_unit_ids=["a1"],
                           retention_until="2100-01-01", **ref),
    ], "registry")
    units = [smp.SampledUnit(unit_id=f"u{i:02d}", agency_id="a1", agency_code="H01.1", stratum="H01.1", weight="2")
             for i in range(40)]
    await apply_events(api.database_url, sample, [smp.SampleDrawn(
        draw_id="d1", campaign_id=CAMPAIGN, province="01", frame_digest="0" * 64, seed_commitment="1" * 64,
        seed="2" * 32, algorithm_version="v1", part=1, parts=1, units=units)], "sampling")
    engine = create_async_engine(api.database_url)
    api.sql = engine
    yield api
    await engine.dispose()


async def query(api, sql: str, **params) -> list[tuple]:
    async with api.sql.connect() as conn:
        return [tuple(r) for r in await conn.execute(text(sql), params)]


async def issued(api) -> dict[str, str]:
    return dict(await query(api, "SELECT unit_id, code FROM ballots"))


def line(code: str, value: str = "4", expectations: str = "", entered_by: str = "") -> str:
    return ",".join([code, *[value] * len(ITEMS), expectations, entered_by])


def csv_file(*lines: str) -> bytes:
    return "\n".join([",".join(["code", *ITEMS, "expectations", "entered_by"]), *lines]).encode()


async def send(api, content: bytes, province: str = "01"):
    return await api.client.post(f"/v1/campaigns/{CAMPAIGN}/ballot-imports", content=content,
                                 headers=api.auth("clerk", province) | {"Content-Type": "text/csv"})


async def test_a_file_is_decided_row_by_row_in_file_order_and_sent_again_changes_nothing(api, monkeypatch):
    monkeypatch.setattr(imports, "CHUNK", 3)  # several chunks of writes and event appends in one transaction
    codes = await issued(api)
    content = csv_file(
        line(codes["u01"], "5", "E1 E2", "enumerator-7"),
        line(codes["u02"].lower().replace("-", "")),  # as typed
        line(codes["u01"]),  # the same code again in the file: a duplicate
        line("0000-0000-000"),
        line("ZZZZ"),
        line(codes["u03"], "9"),
        line(codes["u04"], expectations="E99"),
        line(codes["u05"]),
    )
    first = await send(api, content)
    assert first.status_code == 200, first.text
    body = first.json()
    assert (body["rows"], body["accepted"], body["rejected"]) == (8, 3, 5)
    assert [(r["line"], r["outcome"], r["reason"]) for r in body["report"]] == [
        (2, "accepted", ""), (3, "accepted", ""), (4, "rejected", "used_code"), (5, "rejected", "unknown_code"),
        (6, "rejected", "unknown_code"), (7, "rejected", "off_scale"), (8, "rejected", "unknown_option"),
        (9, "accepted", "")]
    assert "not a ballot code" in body["report"][4]["detail"] and "E99" in body["report"][6]["detail"]
    ids = {r["submission_id"] for r in body["report"]}
    assert len(ids) == 8
    # Every outcome is recorded with its event; a rejection keeps its record and names the ballot it found.
    recorded = await query(api, "SELECT submission_id, outcome, reason, ballot_id IS NOT NULL FROM submissions")
    assert {r[0] for r in recorded} == ids
    assert sorted((o, r or "", b) for _, o, r, b in recorded) == sorted([
        ("accepted", "", True), ("accepted", "", True), ("accepted", "", True), ("rejected", "used_code", True),
        ("rejected", "unknown_code", False), ("rejected", "unknown_code", False), ("rejected", "off_scale", True),
        ("rejected", "unknown_option", True)])
    kept = await query(api, "SELECT b.unit_id, a.channel, a.entered_by, a.answers, a.expectations FROM accepted_ballots a"
                            " JOIN ballots b USING (ballot_id) ORDER BY b.unit_id")
    assert [(u, ch, who) for u, ch, who, _, _ in kept] == [
        ("u01", "import", "enumerator-7"), ("u02", "import", "clerk-01@test"), ("u05", "import", "clerk-01@test")]
    assert kept[0][3] == dict.fromkeys(ITEMS, 5) and kept[0][4] == ["E1", "E2"]
    assert await query(api, "SELECT unit_id FROM ballots WHERE status = 'used' ORDER BY unit_id") == [
        ("u01",), ("u02",), ("u05",)]
    events = await query(api, "SELECT type, stream_id, version, body FROM event_store WHERE type NOT LIKE '%Issued%'")
    accepted = sorted(s for t, s, _, _ in events if "BallotAccepted" in t)
    assert accepted == sorted(f"ballot-{b}" for (b,) in await query(api, "SELECT ballot_id FROM accepted_ballots"))
    assert all(v == 2 for t, _, v, _ in events if "BallotAccepted" in t)  # after each ballot's BallotIssued
    rejected = [json.loads(b)["data"] for t, _, _, b in events if "BallotRejected" in t]
    assert sorted(d["reason"] for d in rejected) == ["off_scale", "unknown_code", "unknown_code", "unknown_option",
                                                     "used_code"]
    assert {d["submission_id"] for d in rejected} <= ids and all(d["channel"] == "import" for d in rejected)
    assert not any(code in b for *_, b in events for code in codes.values())  # codes never in an event

    again = await send(api, content)  # the same file again: every row is now a duplicate or rejected as before
    assert [(r["outcome"], r["reason"]) for r in again.json()["report"]] == [
        ("rejected", "used_code"), ("rejected", "used_code"), ("rejected", "used_code"),
        ("rejected", "unknown_code"), ("rejected", "unknown_code"), ("rejected", "off_scale"),
        ("rejected", "unknown_option"), ("rejected", "used_code")]
    assert await query(api, "SELECT count(*) FROM accepted_ballots") == [(3,)]
    assert await query(api, "SELECT count(*) FROM event_store WHERE type LIKE '%BallotAccepted%'") == [(3,)]
    assert await query(api, "SELECT count(*) FROM submissions") == [(16,)]
    metrics = (await api.client.get("/metrics")).text
    assert f'sipas_ballots_intake_outcomes_total{{campaign="{CAMPAIGN}",channel="import",outcome="accepted",reason=""}} 3.0' in metrics
    assert 'channel="import",outcome="rejected",reason="used_code"} 5.0' in metrics


async def test_a_failure_while_writing_leaves_nothing_of_the_file(api, monkeypatch):
    monkeypatch.setattr(imports, "CHUNK", 2)
    codes = await issued(api)
    (victim,) = await query(api, "SELECT ballot_id FROM ballots WHERE unit_id = 'u14'")
    async with api.sql.begin() as conn:  # the database refuses one row of the third chunk
        await conn.execute(text(
            "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
            f" IF NEW.ballot_id = '{victim[0]}' THEN RAISE EXCEPTION 'refused for the test'; END IF;"
            " RETURN NEW; END $$"))
        await conn.execute(text("CREATE TRIGGER refuse BEFORE INSERT ON accepted_ballots FOR EACH ROW"
                                " EXECUTE FUNCTION refuse()"))
    content = csv_file(*(line(codes[f"u{i}"]) for i in range(10, 16)), line("0000-0000-000"))
    before = await query(api, "SELECT count(*) FROM event_store")
    try:
        failed = await send(api, content)
        assert failed.status_code == 500 and failed.headers["content-type"] == "application/problem+json"
    except Exception as exc:  # the in-process transport may hand the app's error to the caller instead
        assert "refused for the test" in str(exc)
    assert await query(api, "SELECT count(*) FROM submissions") == [(0,)]
    assert await query(api, "SELECT count(*) FROM accepted_ballots") == [(0,)]
    assert await query(api, "SELECT count(*) FROM ballots WHERE status <> 'issued'") == [(0,)]
    assert await query(api, "SELECT count(*) FROM event_store") == before
    async with api.sql.begin() as conn:
        await conn.execute(text("DROP TRIGGER refuse ON accepted_ballots"))
    retried = await send(api, content)
    assert (retried.json()["accepted"], retried.json()["rejected"]) == (6, 1)


async def test_imports_and_online_submissions_racing_for_the_same_codes_accept_each_once(api):
    codes = await issued(api)
    racing = [codes[f"u{i}"] for i in range(20, 32)]
    forward = csv_file(*(line(c) for c in racing), line(codes["u35"]))
    backward = csv_file(*(line(c) for c in reversed(racing)), line(codes["u36"]))

    async def online(code: str):
        return await api.client.post("/v1/submissions", json={
            "code": code, "campaign_id": CAMPAIGN, "answers": dict.fromkeys(ITEMS, 4)})

    results = await asyncio.gather(send(api, forward), send(api, backward), send(api, forward),
                                   *(online(c) for c in racing[::2]), *(online(c) for c in racing[::3]))
    imported, online_answers = results[:3], results[3:]
    assert all(r.status_code == 200 for r in imported), [r.text for r in imported]
    wins: dict[str, int] = dict.fromkeys([*racing, codes["u35"], codes["u36"]], 0)
    for r, content_codes in zip(imported, ([*racing, codes["u35"]], [*reversed(racing), codes["u36"]],
                                           [*racing, codes["u35"]]), strict=True):
        for row, code in zip(r.json()["report"], content_codes, strict=True):
            assert (row["outcome"], row["reason"]) in {("accepted", ""), ("rejected", "used_code")}, row
            wins[code] += row["outcome"] == "accepted"
    for r, code in zip(online_answers, [*racing[::2], *racing[::3]], strict=True):
        assert r.status_code in (201, 422), r.text
        if r.status_code == 422:
            assert r.json()["reason"] == "used_code"
        wins[code] += r.status_code == 201
    assert set(wins.values()) == {1}, wins  # each code accepted exactly once, whoever got it
    assert await query(api, "SELECT count(*), count(DISTINCT ballot_id) FROM accepted_ballots") == [(14, 14)]
    assert await query(api, "SELECT count(*) FROM event_store WHERE type LIKE '%BallotAccepted%'") == [(14,)]
    submitted = 3 * 13 + len(racing[::2]) + len(racing[::3])
    assert await query(api, "SELECT count(*) FROM submissions") == [(submitted,)]
    assert await query(api, "SELECT count(*) FROM submissions WHERE outcome = 'rejected' AND reason = 'used_code'"
                       ) == [(submitted - 14,)]


async def test_a_file_resent_with_its_idempotency_key_gets_its_first_report_not_used_codes(api):
    """The postal service's upload times out after the import committed and it sends the file again: with
    the same Idempotency-Key it gets the first report (nothing recorded twice); a new key is a new import,
    whose rows find their codes used."""
    codes = await issued(api)
    content = csv_file(line(codes["u10"]), line(codes["u11"], "9"), line(codes["u12"]))
    headers = api.auth("clerk", "01") | {"Content-Type": "text/csv", "Idempotency-Key": "vnpost-batch-7"}
    path = f"/v1/campaigns/{CAMPAIGN}/ballot-imports"
    first = await api.client.post(path, content=content, headers=headers)
    again = await api.client.post(path, content=content, headers=headers)
    assert first.status_code == again.status_code == 200, first.text
    assert again.json() == first.json() and again.headers["Idempotent-Replayed"] == "true"
    assert [r["outcome"] for r in first.json()["report"]] == ["accepted", "rejected", "accepted"]
    assert len(await query(api, "SELECT 1 FROM submissions")) == 3
    assert len(await query(api, "SELECT 1 FROM accepted_ballots")) == 2
    # The same key with another file is refused, naming the header; a new key imports anew.
    other = await api.client.post(path, content=csv_file(line(codes["u13"])), headers=headers)
    assert other.status_code == 422 and other.json()["errors"][0]["field"] == "header.Idempotency-Key"
    fresh = await api.client.post(path, content=content, headers=headers | {"Idempotency-Key": "vnpost-batch-8"})
    assert [r["reason"] for r in fresh.json()["report"]] == ["used_code", "off_scale", "used_code"]
    assert len(await query(api, "SELECT 1 FROM accepted_ballots")) == 2
