"""The resident design over real PostgreSQL: communes → villages (PPS) → households, each stage a commit-reveal
draw; per-row reports for bad stage files; determinism; no name or phone in any event."""

from __future__ import annotations

import hashlib
import json
from decimal import Decimal
from fractions import Fraction

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from sipas_events.catalogue import registry as ev
from sipas_kit.reference import reference_projection
from sipas_sampling.adapters.tables import reference
from sipas_sampling.domain.weights import as_decimal

pytestmark = pytest.mark.asyncio
SEEDS = {"communes": "c0" * 16, "villages": "7a" * 16, "households": "4e" * 16}
VILLAGE_SIZES = [120, 80, 300, 60]  # 2·300/560 > 1: the third village of a commune is always taken
LISTED = 12                         # households listed per selected village
COMMUNES = "commune_code,households\nH01.1,1200\nH01.2,800\nH01.3,1.500\nH01.4,950\n"


async def rows(api, sql, **params):
    engine = create_async_engine(api.database_url)
    async with engine.connect() as conn:
        found = (await conn.execute(text(sql), params)).all()
    await engine.dispose()
    return found


def campaign(campaign_id: str) -> ev.CampaignOpened:
    return ev.CampaignOpened(
        campaign_id=campaign_id, name="Khảo sát hộ gia đình 2026", year=2026, scope="province", province="01",
        collection_window={"start": "2026-06-01", "end": "2026-09-30"},
        frame_window={"start": "2025-10-01", "end": "2026-05-31"}, target_unit_ids=["p01"],
        instrument={"id": "sipas-2017", "version": 1}, scheme={"id": "share-satisfied", "version": 1},
        sampling={"design": "resident", "communes": 2, "commune_method": "srs", "villages_per_commune": 2,
                  "households_per_village": 4},
        retention_until="2027-12-31")


@pytest.fixture
async def resident(open_api):
    from conftest import apply_events

    api = await open_api("sampling")
    communes = [ev.AgencyRegistered(agency_id=f"a{i}", code=f"H01.{i}", name=f"Xã {i}", level="commune",
                                    province="01", parent_id="p01", valid_from="2025-07-01") for i in range(1, 5)]
    await apply_events(api.database_url, reference_projection(reference), [
        ev.AgencyRegistered(agency_id="p01", code="01", name="Hà Nội", level="province", province="01",
                            valid_from="2008-08-01"),
        *communes,
        ev.AgencyRegistered(agency_id="a9", code="H01.9", name="Xã đã nhập", level="commune", province="01",
                            parent_id="p01", valid_from="2008-08-01", valid_to="2025-06-30"),
        ev.AgencyRegistered(agency_id="b1", code="H79.1", name="Phường khác tỉnh", level="commune", province="79",
                            valid_from="2025-07-01"),
        campaign("c-res"), campaign("c-res2")], "registry")
    return api


def villages_csv(communes: list[str]) -> str:
    lines = ["commune_code,village_code,village_name,households"]
    for c in communes:
        lines += [f"{c},{c}-V{j},Thôn {j},{n}" for j, n in enumerate(VILLAGE_SIZES, 1)]
    return "\n".join(lines) + "\n"


def person(village: str, i: int) -> tuple[str, str]:
    digits = int(hashlib.sha256(f"{village}/{i}".encode()).hexdigest()[:6], 16) % 1_000_000
    return f"Trần Thị {village} {i}", f"0912{digits:06d}"


def households_csv(villages: list[str], *, skip: str | None = None) -> str:
    lines = ["village_code,household_id,head_name,phone,address"]
    for v in villages:
        if v != skip:
            lines += [f"{v},{i},{person(v, i)[0]},{person(v, i)[1]},Số {i} ngõ Chợ" for i in range(1, LISTED + 1)]
    return "\n".join(lines) + "\n"


class Round:
    """Drives one round through the API as an operator would."""

    def __init__(self, api, campaign_id: str = "c-res") -> None:
        self.api, self.campaign_id = api, campaign_id
        self.op = api.auth("province-operator", "01")
        self.round_id = ""

    async def open(self):
        r = await self.api.client.post(f"/v1/campaigns/{self.campaign_id}/resident-rounds", headers=self.op)
        assert r.status_code == 201, r.text
        self.round_id = r.json()["round_id"]
        return r.json()

    async def upload(self, stage: str, content: str, mode: str = "all_or_nothing"):
        return await self.api.client.post(f"/v1/resident-rounds/{self.round_id}/frames/{stage}",
                                          params={"mode": mode, "filename": f"{stage}.csv"},
                                          content=content.encode("utf-8"),
                                          headers=self.op | {"Content-Type": "text/csv"})

    async def commit(self, stage: str, frame_id: str, seed: str | None = None):
        seed = seed or SEEDS[stage]
        return await self.api.client.post(f"/v1/resident-rounds/{self.round_id}/draws", headers=self.op, json={
            "stage": stage, "frame_id": frame_id, "seed_commitment": hashlib.sha256(seed.encode()).hexdigest()})

    async def stage(self, stage: str, content: str) -> dict:
        """Upload, commit, reveal: the reveal's body."""
        up = await self.upload(stage, content)
        assert up.status_code == 201, up.text
        commit = await self.commit(stage, up.json()["frame_id"])
        assert commit.status_code == 201, commit.text
        drawn = await self.api.client.post(commit.json()["reveal_url"], json={"seed": SEEDS[stage]}, headers=self.op)
        assert drawn.status_code == 200, drawn.text
        return drawn.json() | {"frame_digest_uploaded": up.json()["digest"]}

    async def selection(self, stage: str) -> list[dict]:
        r = await self.api.client.get(f"/v1/resident-rounds/{self.round_id}/stages/{stage}", headers=self.op)
        assert r.status_code == 200, r.text
        return r.json()

    async def chosen(self, stage: str) -> list[str]:
        return sorted(u["code"] for u in await self.selection(stage) if u["role"] == "selected")

    async def run(self) -> dict:
        await self.open()
        out = {"communes": await self.stage("communes", COMMUNES)}
        out["villages"] = await self.stage("villages", villages_csv(await self.chosen("communes")))
        out["households"] = await self.stage("households", households_csv(await self.chosen("villages")))
        return out


async def test_a_full_three_stage_round(resident):
    api = resident
    rnd = Round(api)
    opened = await rnd.open()
    assert opened["status"] == "communes" and opened["communes"] == 2 and opened["households_per_village"] == 4
    early = await rnd.upload("villages", villages_csv(["H01.1"]))
    assert early.status_code == 409 and "communes stage is next" in early.json()["detail"]

    # Stage 1: every registry commune of the province with its household count; SRS of 2 of the 4.
    up = await rnd.upload("communes", COMMUNES)
    assert up.status_code == 201 and up.json()["rows"] == 4, up.text
    assert (await rnd.commit("communes", "no-such-frame")).status_code == 404
    commit = await rnd.commit("communes", up.json()["frame_id"])
    assert commit.status_code == 201
    assert (await rnd.commit("communes", up.json()["frame_id"])).status_code == 409  # one commitment per stage
    wrong = await api.client.post(commit.json()["reveal_url"], json={"seed": "ab" * 32}, headers=rnd.op)
    assert wrong.status_code == 422 and wrong.json()["errors"][0]["field"] == "body.seed"
    drawn = await api.client.post(commit.json()["reveal_url"], json={"seed": SEEDS["communes"]}, headers=rnd.op)
    assert drawn.status_code == 200 and drawn.json()["selected"] == 2 and drawn.json()["next"] == "villages"
    assert drawn.json()["frame_digest"] == up.json()["digest"]
    communes = await rnd.selection("communes")
    assert len(communes) == 2 and {(c["conditional"], c["inclusion"]) for c in communes} == {("1/2", "1/2")}
    households_of = {"H01.1": 1200, "H01.2": 800, "H01.3": 1500, "H01.4": 950}
    assert all(c["households"] == households_of[c["code"]] for c in communes)  # '1.500' read as 1500

    # Stage 2: the selected communes' villages; 2 per commune by systematic PPS, the 300-household one certain.
    other = next(c for c in households_of if c not in {c["code"] for c in communes})
    stray = await rnd.upload("villages", villages_csv([c["code"] for c in communes] + [other]))
    assert stray.status_code == 422 and stray.json()["rejected_rows"] == 4  # a commune stage 1 did not select
    villages = await rnd.stage("villages", villages_csv([c["code"] for c in communes]))
    assert villages["selected"] == 4
    chosen = await rnd.selection("villages")
    for v in chosen:
        size = VILLAGE_SIZES[int(v["code"].rsplit("-V", 1)[1]) - 1]
        expected = Fraction(1) if size == 300 else Fraction(size, 260)
        assert Fraction(v["conditional"]) == expected and Fraction(v["inclusion"]) == expected / 2
    assert sum(1 for v in chosen if v["households"] == 300) == 2

    # Stage 3: the listings; names, phones and addresses are sealed at rest.
    codes = sorted(v["code"] for v in chosen)
    households = await rnd.stage("households", households_csv(codes))
    assert households["selected"] == 16 and households["reserves"] == 4  # 4 a village, ⌈0.2·4⌉ = 1 reserve
    dump = "|".join(str(r) for r in await rows(api, "SELECT t::text FROM household_listings t"))
    phones = {person(v, i)[1] for v in codes for i in range(1, LISTED + 1)}
    assert "Trần" not in dump and "ngõ" not in dump and not any(phone in dump for phone in phones)

    # The live sample: pseudonymous units, weight = 1 / overall inclusion, ordered reserves per village.
    draw_id = households["draw_id"]
    units = (await api.client.get(f"/v1/draws/{draw_id}/units", headers=rnd.op)).json()
    assert len(units) == 20 and len({u["unit_id"] for u in units}) == 20
    inclusion = {v["code"]: Fraction(v["inclusion"]) for v in chosen}
    for u in units:
        commune, village = u["stratum"].split("/")
        assert u["agency_code"] == commune and u["agency_id"] == f"a{commune[-1]}"
        assert Decimal(u["weight"]) == as_decimal(1 / (inclusion[village] * Fraction(4, LISTED)))
    stage3 = await rnd.selection("households")
    assert all("code" not in u and Fraction(u["inclusion"]) == inclusion[u["parent"]] * Fraction(1, 3)
               for u in stage3)

    # The round's record: every stage committed, revealed and pinned.
    view = (await api.client.get(f"/v1/resident-rounds/{rnd.round_id}", headers=api.auth("auditor"))).json()
    assert view["status"] == "drawn"
    for stage in ("communes", "villages", "households"):
        d = view["stages"][stage]["draw"]
        assert d["status"] == "drawn" and d["seed"] == SEEDS[stage]
        assert d["seed_commitment"] == hashlib.sha256(SEEDS[stage].encode()).hexdigest()
    assert len(view["stages"]["households"]["draw"]["parents"]) == 4

    # Replacement, contacts and field lists work as for the frame design.
    victim = next(u for u in units if u["role"] == "selected")
    reserve = next(u for u in units if u["role"] == "reserve" and u["stratum"] == victim["stratum"])
    out = await api.client.post(f"/v1/units/{victim['unit_id']}/withdraw", json={"reason": "withdrawal"},
                                headers=api.auth("enumerator", "01"))
    assert out.status_code == 200 and out.json()["replacement"]["unit_id"] == reserve["unit_id"]
    gone = await api.client.get(f"/v1/units/{victim['unit_id']}/contact", params={"purpose": "gọi lại"},
                                headers=rnd.op)
    assert gone.status_code == 409
    seen = await api.client.get(f"/v1/units/{reserve['unit_id']}/contact", params={"purpose": "phỏng vấn hộ"},
                                headers=api.auth("enumerator", "01", subject="enum-3"))
    assert seen.status_code == 200 and seen.json()["name"].startswith("Trần Thị " + victim["stratum"].split("/")[1])
    assert seen.json()["phone"].startswith("0912") and seen.json()["address"].endswith("ngõ Chợ")
    listing = await api.client.get(f"/v1/draws/{draw_id}/field-list.csv", headers=rnd.op)
    assert len(listing.text.splitlines()) == 17 and listing.text.count("Trần Thị") == 16

    # Non-response adjustment per village: the design weight is the households' 1/π.
    weights = await api.client.post(f"/v1/draws/{draw_id}/weights", headers=rnd.op)
    assert weights.status_code == 200, weights.text
    for s in weights.json()["strata"]:
        village = s["stratum"].split("/")[1]
        assert s["population"] == LISTED and s["sampled"] == 4 and s["responded"] == 0
        assert abs(Decimal(s["design_weight"]) - as_decimal(1 / (inclusion[village] * Fraction(1, 3)))) < Decimal("1e-9")

    # No event carries a name, phone or address; the households travel as SampleDrawn, as in the frame design.
    bodies = [json.loads(r[0]) for r in await rows(api, "SELECT body FROM event_store ORDER BY position")]
    everything = json.dumps(bodies, ensure_ascii=False)
    assert "Trần" not in everything and "ngõ" not in everything and not any(p in everything for p in phones)
    types = [b["type"].split(".")[-2] for b in bodies]
    assert types.count("StageDrawn") == 3 and types.count("DrawCommitted") == 3
    assert {"ResidentRoundOpened", "FrameImported", "SampleDrawn", "UnitWithdrawn", "UnitReplaced"} <= set(types)
    sample = next(b["data"] for b in bodies if b["type"].endswith("SampleDrawn.v1"))
    assert len(sample["units"]) == 16 and sample["algorithm_version"].startswith("sipas-resident")
    assert sample["frame_digest"] == households["frame_digest"]

    # Crypto-shredding reaches the listings too.
    shred = await api.client.post("/v1/campaigns/c-res/shred", headers=api.auth("ministry-admin"))
    assert shred.status_code == 200 and shred.json()["rows_made_unreadable"] == 4 * LISTED - 1  # one was erased
    assert (await rows(api, "SELECT count(*) FROM household_listings WHERE contact IS NOT NULL"))[0][0] == 0


async def test_bad_stage_rows_are_reported_line_by_line_and_never_repeat_personal_data(resident):
    api = resident
    rnd = Round(api)
    await rnd.open()
    bad_communes = ("commune_code,households\nH01.1,1200\nH79.1,500\nH01.9,40\nH01.2,mười\nH01.3,-4\nH01.1,7\n")
    r = await rnd.upload("communes", bad_communes, mode="accept_valid")
    assert r.status_code == 422 and r.json()["unlisted"] == 3, r.text  # H01.2, H01.3, H01.4 have no good row
    report = (await api.client.get(r.json()["report_url"], headers=rnd.op)).text.splitlines()
    codes = {(int(line.split(",")[0]), line.split(",")[2]) for line in report[1:]}
    assert {(3, "unknown_agency"), (4, "unknown_agency"), (5, "malformed"), (6, "malformed"),
            (7, "duplicate"), (0, "unlisted")} <= codes
    await rnd.stage("communes", COMMUNES)
    await rnd.stage("villages", villages_csv(await rnd.chosen("communes")))
    villages = await rnd.chosen("villages")
    first, second = villages[0], villages[1]
    lines = households_csv(villages, skip=villages[-1]).splitlines()
    lines[1] = f"{first},1,{person(first, 1)[0]},0912-ABC-123,Số 1 ngõ Chợ"            # malformed phone
    lines[2] = f"{first},2,,{person(first, 2)[1]},Số 2 ngõ Chợ"                        # no head's name
    lines[3] = f"{first},3,{person(first, 3)[0]},,"                                    # no way to reach them
    lines[4] = f"{first},3,{person(first, 4)[0]},{person(first, 4)[1]},Số 4 ngõ Chợ"  # household 3 again
    lines[LISTED + 1] = f"X-99,1,{person('X-99', 1)[0]},{person('X-99', 1)[1]},Số 1"  # a village not selected
    content = "\n".join(lines) + "\n"
    r = await rnd.upload("households", content)
    assert r.status_code == 422 and r.json()["rejected_rows"] == 5 and r.json()["unlisted"] == 1, r.text
    report = (await api.client.get(r.json()["report_url"], headers=rnd.op)).text
    found = {(int(line.split(",")[0]), line.split(",")[1], line.split(",")[2]) for line in report.splitlines()[1:]}
    assert found == {(0, "village_code", "unlisted"), (2, "phone", "malformed"), (3, "head_name", "missing"),
                     (4, "phone", "missing"), (5, "household_id", "duplicate"),
                     (LISTED + 2, "village_code", "not_selected")}, report
    assert "Trần" not in report and "ABC" not in report and villages[-1] in report
    assert not any(person(first, i)[1] in report for i in range(1, 5))
    assert (await rows(api, "SELECT count(*) FROM household_listings"))[0][0] == 0
    # Accept-valid keeps the good rows, but never a file that leaves a selected village out.
    again = await rnd.upload("households", content, mode="accept_valid")
    assert again.status_code == 422 and again.json()["unlisted"] == 1
    whole = content + households_csv([villages[-1]]).split("\n", 1)[1]
    kept = await rnd.upload("households", whole, mode="accept_valid")
    assert kept.status_code == 201 and kept.json()["rejected_rows"] == 5, kept.text
    assert kept.json()["rows"] == 4 * LISTED - 5  # every line but the 5 bad ones (one a stray village)
    assert second in {r[0] for r in await rows(api, "SELECT village_code FROM household_listings")}


async def test_same_files_and_seeds_give_the_same_sample(resident):
    api = resident
    one = Round(api, "c-res")
    first = await one.run()
    two = Round(api, "c-res2")  # a second campaign: same files in another order, same seeds
    await two.open()
    reordered = "commune_code,households\n" + "".join(reversed(COMMUNES.splitlines(keepends=True)[1:]))
    second = {"communes": await two.stage("communes", reordered)}
    assert await two.chosen("communes") == await one.chosen("communes")
    second["villages"] = await two.stage("villages", villages_csv(list(reversed(await two.chosen("communes")))))
    assert await two.selection("villages") == await one.selection("villages")
    second["households"] = await two.stage("households", households_csv(list(reversed(await two.chosen("villages")))))
    for stage in ("communes", "villages", "households"):
        assert first[stage]["frame_digest"] == second[stage]["frame_digest"]
    picked = {}
    for rnd in (one, two):
        picked[rnd.campaign_id] = await rows(api, """
            SELECT su.code, su.role, su.rank, su.inclusion, su.unit_id FROM stage_units su
            JOIN draws d ON d.draw_id = su.draw_id JOIN resident_rounds r ON r.round_id = d.round_id
            WHERE r.campaign_id = :c AND d.stage = 'households' ORDER BY su.code""", c=rnd.campaign_id)
    assert [r[:4] for r in picked["c-res"]] == [r[:4] for r in picked["c-res2"]]  # the same households, in order
    assert not {r[4] for r in picked["c-res"]} & {r[4] for r in picked["c-res2"]}  # unlinkable across campaigns
    assert len(picked["c-res"]) == 16 + 4


async def test_one_household_sample_per_campaign_and_design_guards(resident):
    api = resident
    first = Round(api)
    await first.run()
    second = Round(api)
    await second.open()
    await second.stage("communes", COMMUNES)
    await second.stage("villages", villages_csv(await second.chosen("communes")))
    up = await second.upload("households", households_csv(await second.chosen("villages")))
    commit = await second.commit("households", up.json()["frame_id"])
    again = await api.client.post(commit.json()["reveal_url"], json={"seed": SEEDS["households"]}, headers=second.op)
    assert again.status_code == 409 and "already has its household sample" in again.json()["detail"]
    frame = await api.client.post("/v1/campaigns/c-res/frames", content=b"agency_code\n",
                                  headers=first.op | {"Content-Type": "text/csv"})
    assert frame.status_code == 409 and "resident design" in frame.json()["detail"]


async def kit_of(api, draw_id: str) -> dict:
    r = await api.client.get(f"/v1/draws/{draw_id}/verification", headers=api.auth("auditor"))
    assert r.status_code == 200, r.text
    return r.json()


def rerun(tmp_path, name: str, content: str, kit: dict):
    """The offline verdict, through the library and through ``sipas sampling verify-draw``."""
    from typer.testing import CliRunner

    from sipas_cli.main import app
    from sipas_cli.verify_draw import verify

    (tmp_path / name).write_text(content, encoding="utf-8")
    (tmp_path / f"{name}.kit.json").write_text(json.dumps(kit), encoding="utf-8")
    verdict = verify(tmp_path / name, kit)
    cli = CliRunner().invoke(app, ["sampling", "verify-draw", str(tmp_path / name), str(tmp_path / f"{name}.kit.json")])
    printed = " ".join(cli.output.split())  # the console wraps long lines
    assert cli.exit_code == (0 if verdict.ok else 1), cli.output
    assert ("the draw matches" in printed) == verdict.ok
    assert all(" ".join(p.split()) in printed for p in [*verdict.problems, *verdict.notes])
    return verdict


async def test_resident_stage_kits_re_run_offline_and_name_every_discrepancy(resident, tmp_path):
    api = resident
    rnd = Round(api)
    await rnd.open()
    files = {"communes": COMMUNES}
    drawn = {"communes": await rnd.stage("communes", files["communes"])}
    files["villages"] = villages_csv(await rnd.chosen("communes"))
    drawn["villages"] = await rnd.stage("villages", files["villages"])
    villages = await rnd.chosen("villages")
    files["households"] = households_csv(villages)
    drawn["households"] = await rnd.stage("households", files["households"])
    kits = {stage: await kit_of(api, d["draw_id"]) for stage, d in drawn.items()}
    denied = await api.client.get(f"/v1/draws/{drawn['households']['draw_id']}/verification", headers=rnd.op)
    assert denied.status_code == 403

    # What a kit holds: the pinned digest, sizes and seed; households by unit id only, never a name or phone.
    households = kits["households"]
    assert households["kind"] == "resident-stage" and households["frame_digest"] == drawn["households"]["frame_digest"]
    assert households["sizes"] == {"commune_method": "srs", "communes": 2, "villages_per_commune": 2,
                                   "households_per_village": 4}
    assert kits["communes"]["communes"] == {f"H01.{i}": "01" for i in range(1, 5)}
    assert all(set(u) == {"parent", "role", "rank", "conditional", "inclusion", "unit_id"} for u in households["units"])
    phones = {person(v, i)[1] for v in villages for i in range(1, LISTED + 1)}
    dumped = json.dumps(kits, ensure_ascii=False)
    assert "Trần" not in dumped and "ngõ" not in dumped and not any(p in dumped for p in phones)

    # Genuine kits pass, every selected unit re-drawn.
    for stage, expected in (("communes", 2), ("villages", 4), ("households", 16)):
        verdict = rerun(tmp_path, f"{stage}.csv", files[stage], kits[stage])
        assert verdict.ok and verdict.problems == [] and verdict.units_checked == expected, verdict.problems

    # A changed seed: it no longer hashes to the commitment, and the households it selects are others.
    other = rerun(tmp_path, "households.csv", files["households"], households | {"seed": "d1" * 16})
    assert not other.ok and other.problems[0] == "the revealed seed does not hash to the published commitment"
    assert any(p.startswith(f"village {villages[0]}, selected #") for p in other.problems[1:])

    # A swapped unit: a village's first selected household and its first reserve trade places.
    village = villages[0]
    chosen = next(u for u in households["units"] if u["parent"] == village and u["role"] == "selected" and u["rank"] == 1)
    backup = next(u for u in households["units"] if u["parent"] == village and u["role"] == "reserve" and u["rank"] == 1)
    swap = {chosen["unit_id"]: backup["unit_id"], backup["unit_id"]: chosen["unit_id"]}
    swapped = households | {"units": [u | {"unit_id": swap.get(u["unit_id"], u["unit_id"])} for u in households["units"]]}
    verdict = rerun(tmp_path, "households.csv", files["households"], swapped)
    assert not verdict.ok and len(verdict.problems) == 2 and verdict.units_checked == 16, verdict.problems
    assert verdict.problems[0].startswith(f"village {village}, selected #1: the kit has unit {backup['unit_id']} ")
    assert f"the re-run gives unit {chosen['unit_id']} (household " in verdict.problems[0]
    assert verdict.problems[1].startswith(f"village {village}, reserve #1: the kit has unit {chosen['unit_id']} ")

    # An edited frame row: one selected village's household count; the other commune is still re-drawn.
    edited_village = next(v for v in villages if VILLAGE_SIZES[int(v.rsplit("-V", 1)[1]) - 1] != 300)
    commune = edited_village.rsplit("-V", 1)[0]
    size = VILLAGE_SIZES[int(edited_village.rsplit("-V", 1)[1]) - 1]
    edited = files["villages"].replace(f"{edited_village},Thôn {edited_village[-1]},{size}\n",
                                       f"{edited_village},Thôn {edited_village[-1]},{size + 1}\n")
    assert edited != files["villages"]
    verdict = rerun(tmp_path, "villages-edited.csv", edited, kits["villages"])
    assert not verdict.ok and verdict.units_checked == 2, verdict.problems
    assert verdict.problems[0].startswith("the villages file digests to ") and verdict.problems[0].endswith(
        f"the draw was made from {kits['villages']['frame_digest']}")
    assert verdict.problems[1].startswith(f"commune {commune}: its 4 villages in the file digest to ")
    assert verdict.problems[2] == f"commune {commune}: {edited_village} has {size + 1} households in the file, " \
                                  f"{size} when drawn"
    assert len(verdict.problems) == 3

    # A household's id edited in a listing: that village's listing no longer digests as drawn.
    relisted = files["households"].replace(f"{villages[1]},5,", f"{villages[1]},55,", 1)
    verdict = rerun(tmp_path, "households-edited.csv", relisted, households)
    assert not verdict.ok and verdict.units_checked == 12, verdict.problems
    assert verdict.problems[1].startswith(f"village {villages[1]}: its 12 households in the file digest to ")

    # A row the upload's checks refuse (accept-valid would have left it out) changes nothing, and is said.
    padded = files["households"] + f"{villages[2]},99,{person(villages[2], 99)[0]},0912-ABC,\n"
    verdict = rerun(tmp_path, "households-padded.csv", padded, households)
    assert verdict.ok and verdict.notes == ["rows of the file the upload's checks refuse, left out as the upload "
                                            "left them out: 1"]
