"""A sampling round over real PostgreSQL: frame upload (every kind of bad row), plan, approval,
commit-reveal draw, withdrawal with replacement, logged contact reads, crypto-shredding."""

from __future__ import annotations

import hashlib
import json

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from sipas_events.catalogue import registry as ev
from sipas_kit.reference import reference_projection
from sipas_sampling.adapters.tables import reference

pytestmark = pytest.mark.asyncio
SEED = "5eed" * 16
HEADER = "agency_code,procedure,service_field,dossier_id,completed_on,respondent_type,name,phone,address\n"


async def feed_registry(api, events):
    from conftest import apply_events

    await apply_events(api.database_url, reference_projection(reference), events, "registry")


async def scalar(api, sql, **params):
    engine = create_async_engine(api.database_url)
    async with engine.connect() as conn:
        value = (await conn.execute(text(sql), params)).scalar()
    await engine.dispose()
    return value


@pytest.fixture
async def sampling(open_api):
    api = await open_api("sampling")
    campaign = ev.CampaignOpened(
        campaign_id="c-2026", name="Vòng 2026", year=2026, scope="province", province="01",
        collection_window={"start": "2026-06-01", "end": "2026-09-30"},
        frame_window={"start": "2025-10-01", "end": "2026-05-31"}, target_unit_ids=["a1"],
        instrument={"id": "sipas-2017", "version": 1}, scheme={"id": "share-satisfied", "version": 1},
        sampling={"method": "slovin", "margin": "0.05", "strata": ["agency"], "floor_per_unit": 5},
        retention_until="2027-12-31")
    await feed_registry(api, [
        ev.AgencyRegistered(agency_id="p01", code="01", name="Hà Nội", level="province", province="01",
                            valid_from="2008-08-01"),
        ev.AgencyRegistered(agency_id="a1", code="H01.1", name="Phường A", level="commune", province="01",
                            parent_id="p01", valid_from="2025-07-01"),
        ev.AgencyRegistered(agency_id="a2", code="H01.2", name="Phường B", level="commune", province="01",
                            parent_id="p01", valid_from="2025-07-01"),
        campaign])
    return api


def frame(rows: int, *, bad: dict[int, str] | None = None) -> bytes:
    lines = [HEADER]
    for i in range(1, rows + 1):
        agency = "H01.1" if i % 3 else "H01.2"
        line = f"{agency},Đăng ký khai sinh,hộ tịch,HS-{i:05d},2026-0{1 + i % 5}-1{i % 9},cá nhân,Nguyễn Văn {i},09{i:08d},Số {i} phố Huế\n"
        lines.append((bad or {}).get(i, line))
    return "".join(lines).encode("utf-8")


async def upload(api, content, mode="all_or_nothing", who=None):
    headers = (who or api.auth("province-operator", "01")) | {"Content-Type": "text/csv"}
    return await api.client.post("/v1/campaigns/c-2026/frames", params={"mode": mode, "filename": "f.csv"},
                                 content=content, headers=headers)


async def test_every_kind_of_bad_row_is_reported_and_all_or_nothing_keeps_nothing(sampling):
    api = sampling
    bad = {
        2: "H01.9,Thủ tục,hộ tịch,HS-00002,2026-01-12,cá nhân,Trần B,0912345678,Hà Nội\n",   # unknown agency
        3: "H01.1,Thủ tục,hộ tịch,HS-00003,2024-01-12,cá nhân,Trần C,0912345678,Hà Nội\n",   # outside window
        4: "H01.1,Thủ tục,hộ tịch,HS-00001,2026-01-12,cá nhân,Trần D,0912345678,Hà Nội\n",   # duplicate dossier
        5: "H01.1,Thủ tục,hộ tịch,HS-00005,2026-01-12,cá nhân,Trần E,12345,\n",               # malformed phone
        6: "H01.1,Thủ tục,hộ tịch,HS-00006,2026-01-12,cá nhân,,0912345678,Hà Nội\n",         # missing name
    }
    r = await upload(api, frame(40, bad=bad))
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json" and r.json()["rejected_rows"] == 5
    report = (await api.client.get(r.json()["report_url"], headers=api.auth("province-operator", "01"))).text
    codes = {(int(line.split(",")[0]), line.split(",")[2]) for line in report.splitlines()[1:]}
    expected = {(3, "unknown_agency"), (4, "outside_window"), (5, "duplicate"), (6, "malformed"), (7, "missing")}
    assert expected <= codes and {line for line, _ in codes} == {3, 4, 5, 6, 7}  # the header is line 1
    assert "0912345678" not in report and "Trần" not in report  # the report never repeats personal data
    assert await scalar(api, "SELECT count(*) FROM frame_units") == 0
    assert await scalar(api, "SELECT count(*) FROM event_store") == 0
    kept = await upload(api, frame(40, bad=bad), mode="accept_valid")
    assert kept.status_code == 201 and kept.json()["rows"] == 35 and kept.json()["rejected_rows"] == 5


async def test_a_full_round_from_frame_to_replacement(sampling):
    api = sampling
    op = api.auth("province-operator", "01")
    r = await upload(api, frame(300))
    assert r.status_code == 201, r.text
    frame_id, digest = r.json()["frame_id"], r.json()["digest"]
    # The contacts are ciphertext at rest: no name or phone in any column of the table.
    raw = await scalar(api, "SELECT string_agg(t::text, '|') FROM frame_units t")
    assert "Nguyễn" not in raw and "0900000001" not in raw
    # Same rows in another order and spacing: the same digest.
    lines = frame(300).decode().splitlines(keepends=True)
    shuffled = lines[0] + "".join(reversed(lines[1:])).replace("Nguyễn Văn", "Nguyễn  Văn")
    again = (await api.client.post("/v1/campaigns/c-2026/frames", content=shuffled.encode(),
                                   headers=op | {"Content-Type": "text/csv"})).json()
    assert again["digest"] == digest

    plan = await api.client.post("/v1/campaigns/c-2026/plans", json={"frame_id": frame_id}, headers=op)
    assert plan.status_code == 201, plan.text
    body = plan.json()
    assert [(s["key"], s["population"], s["sample"]) for s in body["strata"]] == [
        (["H01.1"], 200, 134), (["H01.2"], 100, 80)]  # Slovin: 200/(1+200·0.0025)=133.3→134, 100/1.25=80
    plan_id = body["plan_id"]
    commit = await api.client.post(f"/v1/plans/{plan_id}/draws",
                                   json={"seed_commitment": hashlib.sha256(SEED.encode()).hexdigest()}, headers=op)
    assert commit.status_code == 409 and "approved" in commit.json()["detail"]
    assert (await api.client.post(f"/v1/plans/{plan_id}/approve", headers=op)).status_code == 200
    commit = await api.client.post(f"/v1/plans/{plan_id}/draws",
                                   json={"seed_commitment": hashlib.sha256(SEED.encode()).hexdigest()}, headers=op)
    assert commit.status_code == 201
    draw_id = commit.json()["draw_id"]
    wrong = await api.client.post(f"/v1/draws/{draw_id}/reveal", json={"seed": "ab" * 32}, headers=op)
    assert wrong.status_code == 422 and wrong.json()["errors"][0]["field"] == "body.seed"
    drawn = await api.client.post(f"/v1/draws/{draw_id}/reveal", json={"seed": SEED}, headers=op)
    assert drawn.status_code == 200, drawn.text
    assert drawn.json()["selected"] == 214 and drawn.json()["frame_digest"] == digest
    units = (await api.client.get(f"/v1/draws/{draw_id}/units", headers=op)).json()
    selected = [u for u in units if u["role"] == "selected"]
    assert len(selected) == 214 and len({u["unit_id"] for u in units}) == len(units)
    assert {u["weight"][:6] for u in selected if u["agency_code"] == "H01.2"} == {"1.25"}

    # Withdrawal: the unit leaves, its contact is erased, the first reserve of its stratum comes in.
    victim = next(u for u in selected if u["agency_code"] == "H01.2")
    first_reserve = next(u for u in units if u["role"] == "reserve" and u["stratum"] == "H01.2" and u["rank"] == 1)
    out = await api.client.post(f"/v1/units/{victim['unit_id']}/withdraw", json={"reason": "withdrawal"},
                                headers=api.auth("enumerator", "01"))
    assert out.status_code == 200 and out.json()["replacement"]["unit_id"] == first_reserve["unit_id"]
    gone = await api.client.get(f"/v1/units/{victim['unit_id']}/contact", params={"purpose": "gọi lại"},
                                headers=op)
    assert gone.status_code == 409
    # Contact reads: allowed roles only, every read logged with actor and purpose.
    unit = first_reserve["unit_id"]
    seen = await api.client.get(f"/v1/units/{unit}/contact", params={"purpose": "phát phiếu"},
                                headers=api.auth("enumerator", "01", subject="enum-7"))
    assert seen.status_code == 200 and seen.json()["name"].startswith("Nguyễn Văn")
    assert (await api.client.get(f"/v1/units/{unit}/contact", params={"purpose": "x y z"},
                                 headers=api.auth("clerk", "01"))).status_code == 403
    assert (await api.client.get(f"/v1/units/{unit}/contact", params={"purpose": "tò mò"},
                                 headers=api.auth("enumerator", "79"))).status_code == 404
    log = await scalar(api, "SELECT string_agg(actor || ':' || purpose, ',') FROM contact_reads")
    assert log.split(",") == ["enum-7:phát phiếu"]  # refused attempts read nothing and log nothing

    # No event carries a name, phone or address.
    events = await scalar(api, "SELECT string_agg(body, '\n') FROM event_store")
    assert "Nguyễn" not in events and "09000" not in events and "phố Huế" not in events
    types = [json.loads(line)["type"].split(".")[-2] for line in events.splitlines()]
    assert {"FrameImported", "SamplePlanProposed", "SamplePlanApproved", "DrawCommitted", "SampleDrawn",
            "UnitWithdrawn", "UnitReplaced"} <= set(types)

    # Crypto-shredding: the key goes, every contact becomes unreadable, an event records it.
    shred = await api.client.post("/v1/campaigns/c-2026/shred", headers=api.auth("ministry-admin"))
    assert shred.status_code == 200 and shred.json()["rows_made_unreadable"] > 0
    after = await api.client.get(f"/v1/units/{unit}/contact", params={"purpose": "sau hạn"}, headers=op)
    assert after.status_code == 410 and "destroyed" in after.json()["detail"]
    assert await scalar(api, "SELECT count(*) FROM frame_units WHERE contact IS NOT NULL") == 0
    assert await scalar(api, "SELECT count(*) FROM campaign_keys WHERE wrapped_key IS NOT NULL") == 0


async def test_verify_draw_offline_matches_and_catches_a_one_row_change(sampling, tmp_path):
    from typer.testing import CliRunner

    from sipas_cli.main import app
    from sipas_cli.verify_draw import verify

    api = sampling
    op = api.auth("province-operator", "01")
    content = frame(120)
    frame_id = (await upload(api, content)).json()["frame_id"]
    plan_id = (await api.client.post("/v1/campaigns/c-2026/plans", json={"frame_id": frame_id}, headers=op)
               ).json()["plan_id"]
    await api.client.post(f"/v1/plans/{plan_id}/approve", headers=api.auth("ministry-admin"))
    draw_id = (await api.client.post(f"/v1/plans/{plan_id}/draws", headers=op, json={
        "seed_commitment": hashlib.sha256(SEED.encode()).hexdigest()})).json()["draw_id"]
    assert (await api.client.post(f"/v1/draws/{draw_id}/reveal", json={"seed": SEED}, headers=op)).status_code == 200
    assert (await api.client.get(f"/v1/draws/{draw_id}/verification", headers=op)).status_code == 403
    kit = (await api.client.get(f"/v1/draws/{draw_id}/verification", headers=api.auth("auditor"))).json()
    (tmp_path / "kit.json").write_text(json.dumps(kit), encoding="utf-8")
    (tmp_path / "frame.csv").write_bytes(content)
    verdict = verify(tmp_path / "frame.csv", kit)
    assert verdict.ok and verdict.units_checked == sum(s["sample"] for s in kit["plan"]["strata"])
    result = CliRunner().invoke(app, ["sampling", "verify-draw", str(tmp_path / "frame.csv"), str(tmp_path / "kit.json")])
    assert result.exit_code == 0 and "the draw matches" in result.output

    changed = content.replace(b"S\xe1\xbb\x91 7 ph\xe1\xbb\x91", b"S\xe1\xbb\x91 8 ph\xe1\xbb\x91", 1)  # one address
    assert changed != content
    (tmp_path / "changed.csv").write_bytes(changed)
    verdict = verify(tmp_path / "changed.csv", kit)
    assert not verdict.ok and "digest" in verdict.problems[0]
    result = CliRunner().invoke(app, ["sampling", "verify-draw", str(tmp_path / "changed.csv"), str(tmp_path / "kit.json")])
    assert result.exit_code == 1

    tampered = kit | {"units": [u | {"unit_id": "x" * 24} if i == 0 else u for i, u in enumerate(kit["units"])]}
    assert not verify(tmp_path / "frame.csv", tampered).ok  # a published unit that the seed did not select


async def draw_round(api, rows=120):
    return await draw_frame(api, (await upload(api, frame(rows))).json()["frame_id"])


async def draw_frame(api, frame_id):
    """Plan, approve, commit and reveal a draw of an uploaded frame."""
    op = api.auth("province-operator", "01")
    plan_id = (await api.client.post("/v1/campaigns/c-2026/plans", json={"frame_id": frame_id}, headers=op)
               ).json()["plan_id"]
    await api.client.post(f"/v1/plans/{plan_id}/approve", headers=op)
    draw_id = (await api.client.post(f"/v1/plans/{plan_id}/draws", headers=op, json={
        "seed_commitment": hashlib.sha256(SEED.encode()).hexdigest()})).json()["draw_id"]
    assert (await api.client.post(f"/v1/draws/{draw_id}/reveal", json={"seed": SEED}, headers=op)).status_code == 200
    return draw_id


async def test_field_lists_are_balanced_and_show_contacts_only_to_those_allowed(sampling):
    api = sampling
    draw_id = await draw_round(api)
    op = api.auth("province-operator", "01")
    r = await api.client.post(f"/v1/draws/{draw_id}/assignments", headers=op,
                              json={"enumerators": ["enum-a", "enum-b", "enum-c"], "by": "stratum"})
    assert r.status_code == 200, r.text
    counts = r.json()["units"]
    units = (await api.client.get(f"/v1/draws/{draw_id}/units", params={"role": "selected"}, headers=op)).json()
    sizes = {}
    for u in units:
        sizes[u["stratum"]] = sizes.get(u["stratum"], 0) + 1
    assert sum(counts.values()) == len(units)  # every active unit has exactly one enumerator
    assert max(counts.values()) - min(counts.values()) <= max(sizes.values())  # balanced up to one area
    mine = await api.client.get(f"/v1/draws/{draw_id}/field-list.csv", params={"enumerator": "enum-b"},
                                headers=api.auth("enumerator", "01", subject="enum-a"))
    lines = mine.text.splitlines()
    assert lines[0] == "unit_id,agency_code,rank,assigned_to,name,phone,address"
    assert all(line.split(",")[3] == "enum-a" for line in lines[1:])  # their own list, whatever they ask for
    assert all("Nguyễn Văn" in line for line in lines[1:]) and len(lines) - 1 == counts["enum-a"]
    reads = await scalar(api, "SELECT count(*) FROM contact_reads WHERE actor = 'enum-a' AND purpose = 'field list'")
    assert reads == counts["enum-a"]
    audit = await api.client.get(f"/v1/draws/{draw_id}/field-list.csv", headers=api.auth("auditor"))
    assert audit.text.splitlines()[0] == "unit_id,agency_code,rank,assigned_to" and "Nguyễn" not in audit.text
    assert len(audit.text.splitlines()) - 1 == sum(counts.values())
    pdf = await api.client.get(f"/v1/draws/{draw_id}/field-list.pdf", params={"enumerator": "enum-c"}, headers=op)
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF") and pdf.headers["content-type"] == "application/pdf"


async def test_non_response_adjustment_within_strata(sampling):
    from conftest import apply_events

    from sipas_events.catalogue.ballots import BallotAccepted, BallotVoided
    from sipas_sampling.projections.responses import projection as responses

    api = sampling
    draw_id = await draw_round(api)
    op = api.auth("province-operator", "01")
    selected = (await api.client.get(f"/v1/draws/{draw_id}/units", params={"role": "selected"}, headers=op)).json()
    by_stratum: dict[str, list[str]] = {}
    for u in selected:
        by_stratum.setdefault(u["stratum"], []).append(u["unit_id"])
    answered = by_stratum["H01.1"][:40] + by_stratum["H01.2"][:10]
    accepted = [BallotAccepted(ballot_id=f"b-{u}", campaign_id="c-2026", unit_id=u, agency_id="a1", stratum="s",
                               weight_ref=draw_id, channel="online", answers={"1.1": 4}) for u in answered]
    voided = BallotVoided(ballot_id=f"b-{answered[0]}", campaign_id="c-2026", reason="fabricated")
    await apply_events(api.database_url, responses, [*accepted, voided], "ballots")
    r = await api.client.post(f"/v1/draws/{draw_id}/weights", headers=op)
    assert r.status_code == 200, r.text
    strata = {s["stratum"]: s for s in r.json()["strata"]}
    one, two = strata["H01.1"], strata["H01.2"]
    assert one["responded"] == 39 and two["responded"] == 10  # the voided ballot is not a response
    assert one["adjustment"].startswith(str(round(one["sampled"] / 39, 4))[:5])
    from decimal import Decimal

    assert Decimal(two["final_weight"]) == Decimal(two["design_weight"]) * Decimal(two["sampled"]) / 10
    again = await api.client.post(f"/v1/draws/{draw_id}/weights", headers=op)
    assert again.json()["revision"] == 2 and r.json()["revision"] == 1


async def test_a_draw_written_in_small_chunks_and_parts_is_the_same_draw(sampling, tmp_path, monkeypatch):
    """The draw streams: positions fetched, rows COPYed and SampleDrawn parts appended a few at a time. With
    tiny chunks and parts, the sample is still exactly the offline re-run, and the parts cut it in order."""
    from decimal import Decimal

    from sipas_cli.verify_draw import verify
    from sipas_sampling.application import rounds, sample_writer

    monkeypatch.setattr(rounds, "POSITIONS_CHUNK", 7)
    monkeypatch.setattr(sample_writer, "PART_SIZE", 10)
    monkeypatch.setattr(sample_writer, "CHUNK", 13)
    api = sampling
    draw_id = await draw_round(api, rows=300)  # 134 + 80 selected, 27 + 16 reserves (see the full round)
    kit = (await api.client.get(f"/v1/draws/{draw_id}/verification", headers=api.auth("auditor"))).json()
    (tmp_path / "frame.csv").write_bytes(frame(300))
    verdict = verify(tmp_path / "frame.csv", kit)
    assert verdict.ok and verdict.units_checked == 214, verdict.problems
    assert await scalar(api, "SELECT count(*) FROM sample_units WHERE draw_id = :d", d=draw_id) == 214 + 43

    engine = create_async_engine(api.database_url)
    async with engine.connect() as conn:
        stream = (await conn.execute(text("SELECT version, type, body FROM event_store WHERE stream_id = :s "
                                          "ORDER BY version"), {"s": f"draw-{draw_id}"})).all()
    await engine.dispose()
    assert [v for v, _, _ in stream] == list(range(1, 24))  # DrawCommitted, then 22 parts with no gap
    parts = [json.loads(body)["data"] for _, kind, body in stream if kind.endswith("SampleDrawn.v1")]
    assert [(p["part"], p["parts"]) for p in parts] == [(i, 22) for i in range(1, 23)]
    assert [len(p["units"]) for p in parts] == [10] * 21 + [4]
    assert {p["seed"] for p in parts} == {SEED} and {p["frame_digest"] for p in parts} == {kit["plan"]["frame_digest"]}
    published = [(u["unit_id"], u["stratum"], Decimal(u["weight"])) for p in parts for u in p["units"]]
    ranked = [u for u in kit["units"] if u["role"] == "selected"]  # by stratum, then rank
    assert published == [(u["unit_id"], u["stratum"], Decimal(u["weight"])) for u in ranked]
    assert {w for _, s, w in published if s == "H01.1"} == {Decimal(200) / Decimal(134)}  # N_h/n_h, once a stratum
    assert {w for _, s, w in published if s == "H01.2"} == {Decimal("1.25")}


async def test_a_unit_id_collision_refuses_the_draw_and_keeps_nothing(sampling, monkeypatch):
    from sipas_sampling.application import rounds

    api = sampling
    op = api.auth("province-operator", "01")
    frame_id = (await upload(api, frame(60))).json()["frame_id"]
    plan_id = (await api.client.post("/v1/campaigns/c-2026/plans", json={"frame_id": frame_id}, headers=op)
               ).json()["plan_id"]
    await api.client.post(f"/v1/plans/{plan_id}/approve", headers=op)
    draw_id = (await api.client.post(f"/v1/plans/{plan_id}/draws", headers=op, json={
        "seed_commitment": hashlib.sha256(SEED.encode()).hexdigest()})).json()["draw_id"]
    monkeypatch.setattr(rounds, "unit_ids", lambda _salt: lambda dossier: "a" * 23 + dossier[-1])  # repeat every 10
    refused = await api.client.post(f"/v1/draws/{draw_id}/reveal", json={"seed": SEED}, headers=op)
    assert refused.status_code == 422 and "two dossiers share a unit id" in refused.text, refused.text
    assert await scalar(api, "SELECT count(*) FROM sample_units") == 0
    assert await scalar(api, "SELECT status FROM draws WHERE draw_id = :d", d=draw_id) == "committed"
    assert await scalar(api, "SELECT count(*) FROM event_store WHERE type LIKE '%SampleDrawn%'") == 0


async def test_positions_are_stored_in_canonical_order_and_a_frame_without_them_draws_the_same(sampling, tmp_path):
    """The import ranks each row in canonical order (``canonical_pos``), by which the draw fetches a stratum's
    picks; a frame imported before that column (NULL) is drawn by numbering each stratum: the same draw."""
    from sipas_cli.verify_draw import verify

    api = sampling
    content = frame(300, bad={9: frame(9).decode().splitlines()[-1].replace("HS-00009", "HS-00004") + "\n"})
    frame_id = (await upload(api, content, mode="accept_valid")).json()["frame_id"]
    ranks = await scalar(api, 'SELECT array_agg(canonical_pos ORDER BY agency_code COLLATE "C", dossier_id COLLATE "C") '
                              "FROM frame_units WHERE frame_id = :f", f=frame_id)
    assert ranks == list(range(299))  # line 9 repeats HS-00004's dossier: rejected, no gap left by it
    kits = {}
    for stored in (True, False):
        if not stored:
            engine = create_async_engine(api.database_url)
            async with engine.begin() as conn:
                await conn.execute(text("UPDATE frame_units SET canonical_pos = NULL WHERE frame_id = :f"),
                                   {"f": frame_id})
            await engine.dispose()
        draw_id = await draw_frame(api, frame_id)
        kits[stored] = (await api.client.get(f"/v1/draws/{draw_id}/verification", headers=api.auth("auditor"))).json()
    (tmp_path / "frame.csv").write_bytes(content)
    for kit in kits.values():
        verdict = verify(tmp_path / "frame.csv", kit)
        assert verdict.ok and verdict.units_checked == sum(s["sample"] for s in kit["plan"]["strata"]), verdict.problems
    assert [u["unit_id"] for u in kits[True]["units"]] == [u["unit_id"] for u in kits[False]["units"]]
    assert len(kits[True]["units"]) > 200
