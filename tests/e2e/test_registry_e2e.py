"""The registry for the real country, end to end: both province maps loaded through the API, as_of,
crosswalk, a 5,000-row import, a campaign — and every registry event in every other service."""

from __future__ import annotations

import csv
import io
import uuid

import httpx
import pytest
from conftest import wait_for

from sipas_cli.registry_client import MAP34_FROM, MAP63_FROM, REFERENCE, RegistryClient, province_id

pytestmark = pytest.mark.e2e
CONSUMERS = ("sampling", "ballots", "scoring", "publishing")


@pytest.fixture(scope="module")
def client(platform):
    token = platform.identity.mint("op@e2e", "ministry-admin")
    with RegistryClient(platform.url("registry"), token) as c:
        yield c


def test_loading_the_maps_again_changes_nothing(platform, client):
    first = platform.seeded["maps"]
    assert first.created == 63 + 1 + 23  # 63 provinces, Huế's rename, 23 merged provinces
    again = client.load_maps()
    assert again.created == 0 and again.unchanged == 63 + 34
    assert client.load_builtins().created == 0


def test_as_of_gives_63_then_34_provinces(client):
    before = client.as_of("2025-06-30", level="province")
    after = client.as_of(MAP34_FROM, level="province")
    assert len(before) == 63 and len(after) == 34
    assert len({p["code"] for p in before}) == 63 and len({p["code"] for p in after}) == 34
    names = {p["code"]: p["name"] for p in after}
    assert names["46"] == "Huế" and names["79"] == "Thành phố Hồ Chí Minh"
    assert {p["code"]: p["name"] for p in before}["46"] == "Thừa Thiên Huế"
    assert len(client.as_of("2008-08-01", level="province")) == 63


def test_each_of_the_34_knows_its_predecessors_and_the_crosswalk_round_trips(platform, client):
    expected = {}
    with (REFERENCE / "provinces-34.csv").open(encoding="utf-8") as f:
        for row in csv.DictReader(f):
            expected[row["code"]] = set(row["predecessor_codes"].split())
    for province in client.as_of(MAP34_FROM, level="province"):
        walk = client.crosswalk(province["agency_id"])
        preds = {p["code"] for p in walk["predecessors"]}
        if expected[province["code"]] == {province["code"]}:
            assert preds == set() and province["valid_from"] == MAP63_FROM  # the same unit continues
            continue
        assert preds == expected[province["code"]], province["code"]
        assert all(p["effective_date"] == MAP34_FROM and p["legal_basis"] == "Nghị quyết 202/2025/QH15"
                   for p in walk["predecessors"])
        for p in walk["predecessors"]:  # and back again: each predecessor's successor is this province
            back = client.crosswalk(p["agency_id"])
            assert [s["agency_id"] for s in back["successors"]] == [province["agency_id"]]


def _agency_file(rows: int, bad: dict[int, dict[str, str]], province: str, parent_code: str) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=["code", "name", "level", "parent_code", "province", "valid_from"])
    writer.writeheader()
    tag = uuid.uuid4().hex[:6]
    for i in range(1, rows + 1):
        row = {"code": f"{tag}-{i:05d}", "name": f"Phường số {i}", "level": "commune", "parent_code": parent_code,
               "province": province, "valid_from": "2025-07-01"}
        writer.writerow(row | bad.get(i, {}))
    return out.getvalue().encode("utf-8")


def test_a_5000_row_file_with_3_bad_rows_writes_nothing_and_the_corrected_one_commits(platform, client, admin):
    bad = {17: {"parent_code": "NOPE"}, 2500: {"level": "hamlet"}, 4999: {"valid_from": "31/02/2025"}}
    content = _agency_file(5000, bad, "79", "79")
    before = len(client.as_of(MAP34_FROM, province="79"))
    r = client.http.post("/v1/agency-imports", params={"filename": "hcmc.csv"}, content=content,
                         headers={"Content-Type": "text/csv"})
    assert r.status_code == 422, r.text
    body = r.json()
    assert r.headers["content-type"].startswith("application/problem+json")
    assert [(e["row"], e["field"]) for e in body["errors"]] == [(17, "parent_code"), (2500, "level"),
                                                                (4999, "valid_from")]
    assert "unknown parent" in body["errors"][0]["reason"]
    report = client.http.get(body["report_url"])
    assert report.status_code == 200 and report.text.splitlines()[0] == "row,field,value,reason"
    assert len(report.text.splitlines()) == 4
    assert len(client.as_of(MAP34_FROM, province="79")) == before  # nothing written

    fixed = content.replace(b"NOPE", b"79").replace(b"hamlet", b"commune").replace(b"31/02/2025", b"01/07/2025")
    r = client.http.post("/v1/agency-imports", params={"filename": "hcmc.csv"}, content=fixed,
                         headers={"Content-Type": "text/csv"})
    assert r.status_code == 201, r.text[:1000]
    assert r.json()["rows"] == 5000 and r.json()["status"] == "committed"
    assert len(client.as_of(MAP34_FROM, province="79")) == before + 5000
    record = client.http.get(f"/v1/agency-imports/{r.json()['import_id']}").json()
    assert record["status"] == "committed" and record["errors"] == []


def test_every_registry_event_reaches_every_other_service(platform, client, admin):
    hue = province_id("46", MAP63_FROM)
    campaign = client.http.post("/v1/campaigns", json={
        "name": "Đo lường SIPAS 2026 — thử nghiệm", "year": 2026, "scope": "national",
        "collection_window": {"start": "2026-06-01", "end": "2026-09-30"},
        "frame_window": {"start": "2025-10-01", "end": "2026-05-31"},
        "target_unit_ids": [province_id("01", MAP63_FROM), hue, province_id("79", MAP34_FROM)],
        "instrument": {"id": "sipas-2017", "version": 1}, "scheme": {"id": "share-satisfied", "version": 1},
        "retention_until": "2027-12-31"})
    assert campaign.status_code == 201, campaign.text
    cid = campaign.json()["campaign_id"]
    step = client.http.post(f"/v1/campaigns/{cid}/status", json={"status": "sample_approved"})
    assert step.status_code == 200 and [s["status"] for s in step.json()["steps"]] == ["opened", "sample_approved"]

    registry_units = {u["agency_id"]: u for u in _all(platform.url("registry") + "/v1/agencies", admin)}
    for service in CONSUMERS:
        base = platform.url(service) + "/v1/reference"

        def caught_up(base=base):
            known = [c for c in httpx.get(base + "/campaigns", headers=admin).json() if c["campaign_id"] == cid]
            return known and known[0]["status"] == "sample_approved" and known

        wait_for(caught_up, timeout=120)
        known = {u["agency_id"]: u for u in _all(base + "/agencies", admin)}
        assert known.keys() == registry_units.keys(), service
        for agency_id, unit in registry_units.items():
            mine = known[agency_id]
            assert (mine["code"], mine["name"], mine["valid_from"], mine["valid_to"]) == (
                unit["code"], unit["name"], unit["valid_from"], unit["valid_to"]), (service, agency_id)
        links = httpx.get(base + "/agency-links", headers=admin).json()
        assert len(links) == 63 - 11  # every predecessor of a merged province, linked once
        definitions = {(d["kind"], d["def_id"]) for d in httpx.get(base + "/definitions", headers=admin).json()}
        assert {("instrument", "sipas-2017"), ("instrument", "par-16"), ("scheme", "points")} <= definitions


def _all(url: str, headers: dict[str, str]) -> list[dict]:
    items, params = [], {"limit": 500}
    while True:
        page = httpx.get(url, headers=headers, params=params, timeout=60).json()
        items += page["items"]
        if not page["next_cursor"]:
            return items
        params["cursor"] = page["next_cursor"]
