"""Small seeded worlds for the authorisation matrix: in each service, the same resources once in
province 01 and once in province 79 (and national ones where a service has them), created through
the service's own API where it can, else fed as the producing service's events."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import uuid
from pathlib import Path
from typing import Any

from authz import AWAY, HOME, Pick, Upload, World, sha256_hex

REFERENCE = Path(__file__).resolve().parents[2] / "data" / "reference"
PROVINCES = (AWAY, HOME)
WINDOW = {"start": "2026-01-01", "end": "2099-12-31"}
FRAME_WINDOW = {"start": "2025-10-01", "end": "2026-05-31"}
INSTRUMENT = {"id": "sipas-2017", "version": 1}
SCHEME = {"id": "share-satisfied", "version": 1}
NAMES = {AWAY: "Hà Nội", HOME: "Thành phố Hồ Chí Minh"}
_serial = itertools.count(1)


def builtin(kind: str, ident: str) -> dict[str, Any]:
    return json.loads((REFERENCE / f"{kind}s" / f"{ident}.json").read_text(encoding="utf-8"))["definition"]


def items() -> list[str]:
    return [i["code"] for f in builtin("instrument", "sipas-2017")["factors"] for i in f["items"]]


def fresh(prefix: str) -> str:
    """A code no earlier call used: each legitimate write can succeed once."""
    return f"{prefix}{next(_serial):04d}"


def ok(response: Any, *status: int) -> Any:
    assert response.status_code in (status or (200, 201)), response.text
    return response.json()


def everywhere(value: Any) -> dict[str, Any]:
    return {"*": value}


OPS_SHALLOW = {
    "POST /v1/ops/dead-letters/{dead_letter_id}/replay": "no event was dead-lettered in this world: a random id; "
                                                         "the role refusals are what this row proves",
    "POST /v1/ops/dead-letters/{dead_letter_id}/discard": "no event was dead-lettered in this world (as replay)",
    "POST /v1/ops/projections/{name}/rebuild": "a real rebuild replays from streams this world's fed events never "
                                               "went through (it would empty the world): an unknown name",
    "GET /v1/events/chain": "position 1 may not exist in every service's store; the role refusals are the point",
}
PARTNERS_OUTSIDE = {"partner": "partners read published releases from publishing (docs/publishing.md), never a "
                               "service's frames, samples, ballots or provisional figures"}
OPS_VALUES = {"dead_letter_id": everywhere(str(uuid.uuid4())), "name": everywhere("no-such-projection"),
              "at": everywhere(1)}


# ---- registry ----------------------------------------------------------------------------------

async def registry_world(api: Any) -> World:
    admin = api.auth("ministry-admin")
    for kind, ident in (("instrument", "sipas-2017"), ("scheme", "share-satisfied")):
        ok(await api.client.post(f"/v1/{kind}s", json={f"{kind}_id": ident, "definition": builtin(kind, ident)},
                                 headers=admin))
        ok(await api.client.post(f"/v1/{kind}s/{ident}/versions/1/publish", headers=admin))
        ok(await api.client.post(f"/v1/{kind}s", headers=admin,  # a draft the matrix may redraft and publish
                                 json={f"{kind}_id": "matrix", "definition": builtin(kind, ident)}))

    async def unit(p: str, name: str, level: str, parent: str | None, code: str | None = None) -> str:
        return str(ok(await api.client.post("/v1/agencies", headers=admin, json={
            "code": code or fresh(f"S{p}."), "name": name, "level": level, "province": p, "parent_id": parent,
            "valid_from": "2008-08-01"}))["agency_id"])

    ids: dict[str, dict[str, str]] = {k: {} for k in (
        "province", "agency", "district", "commune", "dissolved", "merged", "split", "campaign", "import", "national")}
    for p in PROVINCES:
        top = ids["province"][p] = await unit(p, NAMES[p], "province", None, code=p)
        ids["agency"][p] = await unit(p, f"Sở Tư pháp {NAMES[p]}", "department", top)
        ids["district"][p] = await unit(p, f"Quận Một {NAMES[p]}", "district", top)
        ids["commune"][p] = await unit(p, f"Phường Một {NAMES[p]}", "commune", top)
        for kind in ("dissolved", "merged", "split"):
            ids[kind][p] = await unit(p, f"Phòng {kind} {NAMES[p]}", "department", top)
        # The national campaign measures a department of each province that no probe is about.
        ids["national"][p] = await unit(p, f"Sở Y tế {NAMES[p]}", "department", top)
        ids["campaign"][p] = ok(await api.client.post("/v1/campaigns", headers=admin,
                                                      json=campaign_body(p, [ids["agency"][p]])))["campaign_id"]
        ids["import"][p] = ok(await api.client.post(
            "/v1/agency-imports", content=import_csv(p), headers=api.auth("province-operator", p) | {
                "Content-Type": "text/csv"}))["import_id"]
    national = ok(await api.client.post("/v1/campaigns", headers=admin,
                                        json=campaign_body(None, list(ids["national"].values()))))["campaign_id"]
    values = {
        "agency_id": ids["agency"], "parent_id": ids["province"], "province": {p: p for p in PROVINCES},
        "campaign_id": ids["campaign"] | {"national": national}, "import_id": ids["import"],
        "ident": everywhere("matrix"), "version": everywhere(1), **OPS_VALUES,
    }

    def unit_body(pick: Pick) -> dict[str, Any]:
        return {"code": fresh(f"M{pick('province')}."), "name": "Phòng thử nghiệm", "level": "department",
                "province": pick("province"), "parent_id": pick("parent_id"), "valid_from": "2026-07-01"}

    change = {"effective_date": "2026-07-01", "legal_basis": "Quyết định thử nghiệm"}
    instrument, scheme = builtin("instrument", "sipas-2017"), builtin("scheme", "share-satisfied")
    return World(
        values=values,
        bodies={
            "POST /v1/agencies": unit_body,
            "POST /v1/reorganisations/merge": lambda p: change | {"predecessor_ids": p("predecessor_ids"),
                                                                  "successor": unit_body(p)},
            "POST /v1/reorganisations/split": lambda p: change | {"predecessor_id": p("predecessor_id"),
                                                                  "successors": [unit_body(p), unit_body(p)]},
            "POST /v1/agencies/{agency_id}/reparent": lambda p: {  # districts ended with the 2025 reform
                "effective_date": "2020-01-01", "legal_basis": "Quyết định thử nghiệm", "parent_id": p("parent_id")},
            "POST /v1/instruments": lambda p: {"instrument_id": fresh("matrix-"), "definition": instrument},
            "PUT /v1/instruments/{ident}/versions/{version}": lambda p: {"instrument_id": "matrix",
                                                                         "definition": instrument},
            "POST /v1/schemes": lambda p: {"scheme_id": fresh("matrix-"), "definition": scheme},
            "PUT /v1/schemes/{ident}/versions/{version}": lambda p: {"scheme_id": "matrix", "definition": scheme},
            "POST /v1/campaigns": lambda p: campaign_body(p("province"), [p("agency_id")]),
            "POST /v1/campaigns/{campaign_id}/status": lambda p: {"status": "sample_approved"},
        },
        overrides={
            "POST /v1/agencies/{agency_id}/reparent": {"agency_id": ids["commune"], "parent_id": ids["district"]},
            "POST /v1/agencies/{agency_id}/dissolve": {"agency_id": ids["dissolved"]},
            "POST /v1/reorganisations/merge": {"predecessor_ids": {p: [ids["merged"][p]] for p in PROVINCES}},
            "POST /v1/reorganisations/split": {"predecessor_id": ids["split"]},
        },
        uploads={"POST /v1/agency-imports": Upload(lambda p: import_csv(p("province")))},
        shallow=OPS_SHALLOW,
        markers={ids[k][AWAY] for k in ("agency", "district", "commune", "dissolved", "merged", "split", "campaign",
                                        "import")} | {f"Sở Tư pháp {NAMES[AWAY]}"},
    )


def campaign_body(province: str | None, targets: list[str]) -> dict[str, Any]:
    return {"name": f"Vòng thử {province or 'toàn quốc'}", "year": 2026,
            "scope": "province" if province else "national", "province": province,
            "collection_window": WINDOW, "frame_window": FRAME_WINDOW, "target_unit_ids": targets,
            "instrument": INSTRUMENT, "scheme": SCHEME, "retention_until": "2100-01-01"}


def import_csv(province: str) -> bytes:
    return (f"code,name,level,parent_code,province,valid_from\n"
            f"{fresh(f'I{province}.')},Phòng nhập {province},department,{province},{province},2025-07-01\n").encode()


def settings(service: str, tmp_path: Path) -> dict[str, Any]:
    """Settings a service's world needs beyond the fixture's defaults."""
    if service == "publishing":  # its signing key in a scratch folder; a loopback webhook that refuses
        return {"data_dir": tmp_path / "publishing", "webhook_allow_private": True}
    return {}


# ---- sampling ----------------------------------------------------------------------------------

FRAME_HEADER = "agency_code,procedure,service_field,dossier_id,completed_on,respondent_type,name,phone,address"
PERSON = {AWAY: "Quách Thị Matrix", HOME: "Lương Văn Matrix"}
"""Respondents' names in each province's frame: a HOME caller must never read AWAY's."""


def registry_events(agencies: dict[str, str], *, resident: int = 0, campaigns: tuple[str, ...] = ("",)) -> list[Any]:
    """The registry's events a consumer needs: provinces, departments and communes, a campaign per province
    (and ``resident`` resident-design ones), a national campaign, the definitions. The national campaign
    measures departments of its own ("Sở Y tế"): its definition names them to everyone, by design."""
    from sipas_events.catalogue import registry as reg

    events: list[Any] = [
        reg.InstrumentPublished(instrument_id="sipas-2017", instrument_version=1,
                                definition=builtin("instrument", "sipas-2017")),
        reg.SchemePublished(scheme_id="share-satisfied", scheme_version=1,
                            definition=builtin("scheme", "share-satisfied"))]
    for p in PROVINCES:
        events += [
            reg.AgencyRegistered(agency_id=f"p{p}", code=p, name=NAMES[p], level="province", province=p,
                                 valid_from="2008-08-01"),
            reg.AgencyRegistered(agency_id=agencies[p], code=f"H{p}.TP", name=f"Sở Tư pháp {NAMES[p]}",
                                 level="department", province=p, parent_id=f"p{p}", valid_from="2020-01-01"),
            reg.AgencyRegistered(agency_id=f"n{p}", code=f"H{p}.YT", name=f"Sở Y tế {NAMES[p]}",
                                 level="department", province=p, parent_id=f"p{p}", valid_from="2020-01-01"),
            *[reg.AgencyRegistered(agency_id=f"x{p}{i}", code=f"X{p}.{i}", name=f"Xã {i} {NAMES[p]}", level="commune",
                                   province=p, parent_id=f"p{p}", valid_from="2025-07-01") for i in (1, 2)],
            *[campaign_opened(f"c{p}-matrix{c}", p, [agencies[p]]) for c in campaigns]]
        events += [campaign_opened(f"r{p}-matrix{i}", p, [f"p{p}"], sampling={
            "design": "resident", "communes": 1, "commune_method": "srs", "villages_per_commune": 1,
            "households_per_village": 2}) for i in range(1, resident + 1)]
    events.append(campaign_opened("cN-matrix", None, [f"n{p}" for p in PROVINCES]))
    return events


def campaign_opened(campaign_id: str, province: str | None, targets: list[str], **extra: Any) -> Any:
    from sipas_events.catalogue import registry as reg

    sampling = extra.pop("sampling", {"method": "slovin", "margin": "0.2", "floor_per_unit": 5})
    return reg.CampaignOpened(campaign_id=campaign_id, name=f"Vòng thử {province or 'toàn quốc'}", year=2026,
                              scope="province" if province else "national", province=province,
                              collection_window=WINDOW, frame_window=FRAME_WINDOW, target_unit_ids=targets,
                              instrument=INSTRUMENT, scheme=SCHEME, sampling=sampling, retention_until="2100-01-01")


def frame_csv(province: str, rows: int = 30) -> bytes:
    lines = [FRAME_HEADER] + [
        f"H{province}.TP,Chứng thực,chứng thực,{fresh('D')}-{i},2026-02-{1 + i % 27:02d},cá nhân,"
        f"{PERSON[province]} {i},09{int(province) * 1000 + i:08d},Số {i} phố Thử" for i in range(rows)]
    return ("\n".join(lines) + "\n").encode()


SEEDS = {p: p * 2 + "5eed" * 15 for p in PROVINCES}


def communes_csv(province: str) -> bytes:
    return f"commune_code,households\nX{province}.1,1200\nX{province}.2,800\n".encode()


async def sampling_world(api: Any) -> World:
    from conftest import apply_events

    from sipas_kit.reference import reference_projection
    from sipas_sampling.adapters.tables import reference

    agencies = {p: f"a{p}-matrix" for p in PROVINCES}
    await apply_events(api.database_url, reference_projection(reference), registry_events(agencies, resident=3),
                       "registry")
    admin = api.auth("ministry-admin")
    ids: dict[str, dict[str, Any]] = {k: {} for k in (
        "frame", "plan", "proposed", "draw", "committed", "unit", "withdrawn", "round", "open_round", "stage_frame")}

    async def post(path: str, who: dict[str, str], **kw: Any) -> Any:
        return ok(await api.client.post(path, headers=who | kw.pop("headers", {}), **kw))

    for p in PROVINCES:
        op, campaign, csv = api.auth("province-operator", p), f"c{p}-matrix", {"Content-Type": "text/csv"}
        frame = ids["frame"][p] = (await post(f"/v1/campaigns/{campaign}/frames", op, params={"mode": "accept_valid"},
                                              content=frame_csv(p), headers=csv))["frame_id"]
        for kind, seed in (("draw", SEEDS[p]), ("committed", SEEDS[p][::-1]), ("proposed", None)):
            plan = (await post(f"/v1/campaigns/{campaign}/plans", op, json={"frame_id": frame}))["plan_id"]
            ids["plan" if kind == "draw" else kind][p] = plan
            if seed is None:
                break  # proposed only: the matrix approves it, then commits a draw on it
            await post(f"/v1/plans/{plan}/approve", admin)
            ids[kind][p] = (await post(f"/v1/plans/{plan}/draws", op,
                                       json={"seed_commitment": sha256_hex(seed)}))["draw_id"]
        await post(f"/v1/draws/{ids['draw'][p]}/reveal", op, json={"seed": SEEDS[p]})
        units = ok(await api.client.get(f"/v1/draws/{ids['draw'][p]}/units", params={"role": "selected"},
                                        headers=op))
        ids["unit"][p], ids["withdrawn"][p] = units[0]["unit_id"], units[1]["unit_id"]
        # Round 1 has drawn its communes; round 2 waits for its communes' commitment; round 3 is not open.
        ids["round"][p] = (await post(f"/v1/campaigns/r{p}-matrix1/resident-rounds", op))["round_id"]
        stage = (await post(f"/v1/resident-rounds/{ids['round'][p]}/frames/communes", op, content=communes_csv(p),
                            headers=csv))["frame_id"]
        draw = (await post(f"/v1/resident-rounds/{ids['round'][p]}/draws", op, json={
            "stage": "communes", "frame_id": stage, "seed_commitment": sha256_hex(SEEDS[p])}))["draw_id"]
        await post(f"/v1/draws/{draw}/reveal", op, json={"seed": SEEDS[p]})
        ids["open_round"][p] = (await post(f"/v1/campaigns/r{p}-matrix2/resident-rounds", op))["round_id"]
        ids["stage_frame"][p] = (await post(f"/v1/resident-rounds/{ids['open_round'][p]}/frames/communes", op,
                                            content=communes_csv(p), headers=csv))["frame_id"]
    values = {
        "campaign_id": {p: f"c{p}-matrix" for p in PROVINCES} | {"national": "cN-matrix"},
        "frame_id": ids["frame"], "plan_id": ids["plan"], "draw_id": ids["draw"], "unit_id": ids["unit"],
        "round_id": ids["round"], "stage": everywhere("communes"), "purpose": everywhere("kiểm tra phân quyền"),
        "province": {p: p for p in PROVINCES}, "enumerators": everywhere(["enumerator-79@test"]), **OPS_VALUES,
    }
    return World(
        values=values,
        bodies={"POST /v1/resident-rounds/{round_id}/draws": lambda p: {
                    "stage": "communes", "frame_id": p("frame_id"), "seed_commitment": "0" * 64},
                "POST /v1/draws/{draw_id}/reveal": lambda p: {"seed": p("seed")}},
        overrides={
            "POST /v1/plans/{plan_id}/approve": {"plan_id": ids["proposed"]},
            "POST /v1/plans/{plan_id}/draws": {"plan_id": ids["proposed"]},
            "POST /v1/draws/{draw_id}/reveal": {"draw_id": ids["committed"],
                                                "seed": {p: SEEDS[p][::-1] for p in PROVINCES}},
            "POST /v1/units/{unit_id}/withdraw": {"unit_id": ids["withdrawn"]},
            "POST /v1/campaigns/{campaign_id}/resident-rounds": {
                "campaign_id": {p: f"r{p}-matrix3" for p in PROVINCES}},
            "POST /v1/resident-rounds/{round_id}/frames/{stage}": {"round_id": ids["open_round"]},
            "POST /v1/resident-rounds/{round_id}/draws": {"round_id": ids["open_round"],
                                                          "frame_id": ids["stage_frame"]},
        },
        uploads={"POST /v1/campaigns/{campaign_id}/frames": Upload(lambda p: frame_csv(p("province"))),
                 "POST /v1/resident-rounds/{round_id}/frames/{stage}": Upload(
                     lambda p: communes_csv(p("province")))},
        outsiders=PARTNERS_OUTSIDE,
        shallow=OPS_SHALLOW,
        markers={f"c{AWAY}-matrix", f"r{AWAY}-matrix", f"H{AWAY}.TP", f"X{AWAY}.1", PERSON[AWAY], agencies[AWAY],
                 *(ids[k][AWAY] for k in ids)},
    )


# ---- ballots -----------------------------------------------------------------------------------

async def ballots_world(api: Any) -> World:
    from conftest import apply_events
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    from sipas_ballots.adapters.tables import reference
    from sipas_ballots.projections.sample import projection as sample
    from sipas_events.catalogue import sampling as smp
    from sipas_kit.reference import reference_projection

    agencies = {p: f"a{p}-matrix" for p in PROVINCES}
    campaigns = {p: [f"c{p}-matrix", f"c{p}-matrix2"] for p in PROVINCES}
    await apply_events(api.database_url, reference_projection(reference),
                       registry_events(agencies, campaigns=("", "2")), "registry")
    await apply_events(api.database_url, sample, [smp.SampleDrawn(
        draw_id=f"d-{c}", campaign_id=c, province=p, frame_digest="0" * 64, seed_commitment="1" * 64,
        seed="2" * 32, algorithm_version="v1", part=1, parts=1, units=[smp.SampledUnit(
            unit_id=f"u-{c}-{i:02d}", agency_id=agencies[p], agency_code=f"H{p}.TP", stratum=f"H{p}.TP",
            weight="2.5") for i in range(12)]) for p in PROVINCES for c in campaigns[p]], "sampling")
    engine = create_async_engine(api.database_url)
    async with engine.connect() as conn:
        issued = {c: [(b, code) for b, code in await conn.execute(text(
            "SELECT ballot_id, code FROM ballots WHERE campaign_id = :c ORDER BY unit_id"), {"c": c})]
            for cs in campaigns.values() for c in cs}
    admin, answers = api.auth("ministry-admin"), dict.fromkeys(items(), 4)  # straight-lined: the scan flags them
    for p in PROVINCES:
        for c in campaigns[p]:
            for _, code in issued[c][:4]:  # keyed by an enumerator: back-checks are drawn per enumerator
                ok(await api.client.post("/v1/submissions", headers=api.auth("enumerator", p), json={
                    "code": code, "campaign_id": c, "answers": answers, "channel": "paper"}))
        ok(await api.client.post(f"/v1/campaigns/{campaigns[p][0]}/quality/scan", headers=admin))
        ok(await api.client.post(f"/v1/campaigns/{campaigns[p][0]}/backchecks", headers=admin, json={"seed": "5e" * 16}))
    async with engine.connect() as conn:
        checked = dict((await conn.execute(text("SELECT campaign_id, min(ballot_id) FROM backchecks "
                                                "GROUP BY campaign_id"))).all())
    await engine.dispose()

    def nth(i: int, what: int = 0) -> dict[str, str]:
        return {p: issued[campaigns[p][0]][i][what] for p in PROVINCES}

    values = {
        "campaign_id": {p: campaigns[p][0] for p in PROVINCES} | {"national": "cN-matrix"},
        "ballot_id": nth(0), "province": {p: p for p in PROVINCES}, **OPS_VALUES,
    }
    return World(
        values=values,
        bodies={
            "POST /v1/submissions": lambda p: {"code": p("code"), "campaign_id": p("campaign_id"),
                                               "answers": answers, "channel": "paper"},
            "POST /v1/campaigns/{campaign_id}/online-ratings": lambda p: {"items": [{
                "source_system": "dvc-matrix", "dossier_id": fresh("R"), "agency_code": f"H{p('province')}.TP",
                "completed_on": "2026-06-01", "rated_unsatisfied": False, "complained": False, "overdue": False}]},
        },
        overrides={
            "POST /v1/submissions": {"code": nth(5, 1)},
            "POST /v1/ballots/{ballot_id}/cancel": {"ballot_id": nth(6)},
            "POST /v1/ballots/{ballot_id}/reissue": {"ballot_id": nth(7)},
            "POST /v1/campaigns/{campaign_id}/backchecks": {"campaign_id": {p: campaigns[p][1] for p in PROVINCES}},
            "POST /v1/backchecks/{ballot_id}": {"ballot_id": {p: checked[campaigns[p][0]] for p in PROVINCES}},
            "POST /v1/campaigns/{campaign_id}/ballot-imports": {"code": nth(8, 1)},
        },
        batches={"POST /v1/campaigns/{campaign_id}/ballot-imports": lambda body: body["accepted"],
                 "POST /v1/campaigns/{campaign_id}/online-ratings": lambda body: body["recorded"]},
        uploads={"POST /v1/campaigns/{campaign_id}/ballot-imports": Upload(lambda p: (
            "code," + ",".join(answers) + "\n" + p("code") + "," + ",".join("4" for _ in answers) + "\n").encode())},
        outsiders=PARTNERS_OUTSIDE,
        shallow=OPS_SHALLOW,
        markers={*campaigns[AWAY], agencies[AWAY], f"H{AWAY}.TP", *(b for b, _ in issued[campaigns[AWAY][0]]),
                 *(code for _, code in issued[campaigns[AWAY][0]]), f"u-{campaigns[AWAY][0]}"},
    )


# ---- scoring -----------------------------------------------------------------------------------

async def scoring_world(api: Any) -> World:
    from conftest import apply_events

    from sipas_events.catalogue import ballots as bal
    from sipas_kit.reference import reference_projection
    from sipas_scoring.adapters.tables import reference
    from sipas_scoring.projections.tallies import projection as counted

    agencies = {p: f"a{p}-matrix" for p in PROVINCES}
    await apply_events(api.database_url, reference_projection(reference), registry_events(agencies), "registry")
    answers = dict.fromkeys(items(), 4)
    accepted = [bal.BallotAccepted(ballot_id=f"b-{c}-{i}", campaign_id=c, unit_id=f"u-{c}-{i}", agency_id=agency,
                                   stratum=agency, weight_ref="d1", province=p, channel="paper", answers=answers,
                                   expectations=[])
                for p in PROVINCES for c, agency in ((f"c{p}-matrix", agencies[p]), ("cN-matrix", f"n{p}"))
                for i in range(6)]
    await apply_events(api.database_url, counted, accepted, "ballots")
    admin = api.auth("ministry-admin")
    campaign = {p: f"c{p}-matrix" for p in PROVINCES} | {"national": "cN-matrix"}
    snapshot = {k: ok(await api.client.post(f"/v1/campaigns/{c}/snapshots", headers=admin))["snapshot_id"]
                for k, c in campaign.items()}
    return World(
        values={"campaign_id": campaign, "snapshot_id": snapshot, "against": campaign,
                "province": {p: p for p in PROVINCES}, **OPS_VALUES},
        outsiders=PARTNERS_OUTSIDE,
        shallow=OPS_SHALLOW,
        # The national campaign's own units of 01 ("Sở Y tế Hà Nội") are 01's figures as much as its campaign's.
        markers={campaign[AWAY], snapshot[AWAY], agencies[AWAY], f"H{AWAY}.TP", f"Sở Tư pháp {NAMES[AWAY]}",
                 f"Sở Y tế {NAMES[AWAY]}", f"H{AWAY}.YT"},
    )


# ---- publishing --------------------------------------------------------------------------------

def figures(province: str | None, campaign: str) -> dict[str, Any]:
    """A frozen figures document as scoring would serve it: a province's, or the nation's."""
    overall = {"value": "71.20", "n": 120, "ci": ["66.10", "76.30"], "ci_method": "wilson"}
    units: list[dict[str, Any]] = []
    for p in (province,) if province else PROVINCES:
        units += [{"level": "province", "id": f"P:{p}", "code": p, "name": NAMES[p], "province": p, "suppressed": None,
                   "overall": overall, "factors": {}, "items": {}, "rank": {"rank": 1, "best": 1, "worst": 1, "of": 1}},
                  {"level": "agency", "id": f"a{p}-matrix", "code": f"H{p}.TP", "name": f"Sở Tư pháp {NAMES[p]}",
                   "province": p, "suppressed": None, "overall": overall, "factors": {}, "items": {}}]
    return {"campaign_id": campaign, "year": 2026, "small_cell_n": 30, "scheme": {"id": "share-satisfied", "version": 1},
            "instrument": {"id": "sipas-2017", "version": 1}, "units": units}


class FrozenScoring:
    """Scoring's snapshot documents, answered from memory (publishing never reads scoring's database)."""

    def __init__(self, documents: dict[str, dict[str, Any]]) -> None:
        self.documents = documents

    async def document(self, snapshot_id: str) -> bytes:
        from sipas_events import canonical

        return canonical.dumpb(self.documents[snapshot_id])

    async def comparison(self, campaign_id: str, against: str) -> None:
        return None


async def publishing_world(api: Any) -> World:
    from conftest import apply_events

    from sipas_events.catalogue.scoring import ScoreSnapshotTaken
    from sipas_publishing.domain.manifest import figures_digest
    from sipas_publishing.projections.snapshots import snapshot_projection

    kinds = ("published", "draft", "edited", "fresh")
    snapshots = {f"s{p}-{k}": (p, f"c{p}-matrix") for p in PROVINCES for k in kinds} | {
        "sN-published": (None, "cN-matrix")}
    documents = {s: figures(p, c) for s, (p, c) in snapshots.items()}
    await apply_events(api.database_url, snapshot_projection, [ScoreSnapshotTaken(
        snapshot_id=s, campaign_id=c, province=p, taken_at=dt.datetime(2026, 11, 30, tzinfo=dt.UTC),
        positions={"ballots": 120}, chain_heads={"ballots": "ab" * 32}, figures_digest=figures_digest(documents[s]))
        for s, (p, c) in snapshots.items()], "scoring")
    api.app.state.ctx.scoring_source = FrozenScoring(documents)
    drafter, approver = api.auth("ministry-admin", subject="lan@bnv"), api.auth("ministry-admin", subject="minh@bnv")
    release: dict[str, dict[str, str]] = {k: {} for k in kinds}
    for p in (*PROVINCES, "N"):
        for kind in kinds if p != "N" else ("published",):
            release[kind][p] = ok(await api.client.post("/v1/releases", headers=drafter,
                                                        json={"snapshot_id": f"s{p}-{kind}"}))["release_id"]
        for step, who in (("submit", drafter), ("approve", approver), ("publish", approver)):
            ok(await api.client.post(f"/v1/releases/{release['published'][p]}/{step}", json={}, headers=who))
    key = ok(await api.client.post("/v1/api-keys", headers=drafter, json={"name": "to revoke"}))["key_id"]
    subscription = ok(await api.client.post("/v1/webhooks", headers=drafter,
                                            json={"url": "http://127.0.0.1:9/hook"}))["subscription_id"]
    values = {
        "release_id": release["draft"], "snapshot_id": {p: f"s{p}-fresh" for p in PROVINCES},
        "unit_id": everywhere(f"P:{HOME}"), "key_id": everywhere(key), "subscription_id": everywhere(subscription),
        "event_id": everywhere(str(uuid.uuid4())), "follow": everywhere(False), **OPS_VALUES,
    }
    return World(
        values=values,
        bodies={"POST /v1/webhooks": lambda p: {"url": "http://127.0.0.1:9/hook"}},
        overrides={"PATCH /v1/releases/{release_id}": {"release_id": release["edited"]}},
        public={"GET /v1/keys": "the public keys that verify signed releases are for everyone"},
        facts={"published": release["published"]},
        shallow=OPS_SHALLOW | {
            "DELETE /v1/releases/{release_id}": "releases are never deleted: 409 for whoever may edit it",
            "POST /v1/webhooks/{subscription_id}/deliveries/{event_id}/redeliver": "nothing was published after "
                                                                                   "the subscription: no delivery",
        },
        markers={release[k][AWAY] for k in ("draft", "edited", "fresh")} | {
            f"s{AWAY}-{k}" for k in ("draft", "edited", "fresh")},
    )
