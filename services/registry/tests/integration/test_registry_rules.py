"""Who may do what in the registry, and what a campaign may reference — over real Postgres and NATS."""

from __future__ import annotations

import copy
import json
import uuid
from pathlib import Path

import pytest

pytestmark = pytest.mark.asyncio
REFERENCE = Path(__file__).resolve().parents[4] / "data" / "reference"


def builtin(kind: str, ident: str) -> dict:
    return json.loads((REFERENCE / f"{kind}s" / f"{ident}.json").read_text(encoding="utf-8"))


async def setup(api):
    """Two provinces with a commune each; sipas-2017 published, share-satisfied drafted only."""
    admin = api.auth("ministry-admin")
    ids = {}
    for code, name in (("01", "Hà Nội"), ("79", "Thành phố Hồ Chí Minh")):
        r = await api.client.post("/v1/agencies", headers=admin, json={
            "code": code, "name": name, "level": "province", "province": code, "valid_from": "2008-08-01"})
        ids[code] = r.json()["agency_id"]
        r = await api.client.post("/v1/agencies", headers=admin, json={
            "code": f"C{code}", "name": f"Phường {code}", "level": "commune", "province": code,
            "parent_id": ids[code], "valid_from": "2025-07-01"})
        ids[f"C{code}"] = r.json()["agency_id"]
    assert (await api.client.post("/v1/instruments", headers=admin, json=builtin("instrument", "sipas-2017"))
            ).status_code == 201
    assert (await api.client.post("/v1/instruments/sipas-2017/versions/1/publish", headers=admin)).status_code == 200
    assert (await api.client.post("/v1/schemes", headers=admin, json=builtin("scheme", "share-satisfied"))
            ).status_code == 201
    return ids


def campaign(targets, scope="national", province=None, instrument=("sipas-2017", 1), scheme=("share-satisfied", 1)):
    return {"name": "Vòng đo 2026", "year": 2026, "scope": scope, "province": province,
            "collection_window": {"start": "2026-06-01", "end": "2026-09-30"},
            "frame_window": {"start": "2025-10-01", "end": "2026-05-31"}, "target_unit_ids": targets,
            "instrument": {"id": instrument[0], "version": instrument[1]},
            "scheme": {"id": scheme[0], "version": scheme[1]}, "retention_until": "2027-12-31"}


async def test_campaign_references_must_exist_and_be_published(open_api):
    api = await open_api("registry")
    admin = api.auth("ministry-admin")
    ids = await setup(api)
    targets = [ids["C01"]]
    r = await api.client.post("/v1/campaigns", headers=admin, json=campaign(targets))
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "body.scheme"
    assert "draft" in r.json()["detail"] and "publish it first" in r.json()["detail"]
    r = await api.client.post("/v1/campaigns", headers=admin, json=campaign(targets, instrument=("sipas-2017", 9)))
    assert r.status_code == 422 and r.json()["title"] == "Unknown reference"
    assert r.json()["errors"][0]["field"] == "body.instrument"
    r = await api.client.post("/v1/campaigns", headers=admin, json=campaign([str(uuid.uuid4())]))
    assert r.status_code == 422  # the scheme is still a draft, checked first
    assert (await api.client.post("/v1/schemes/share-satisfied/versions/1/publish", headers=admin)).status_code == 200
    r = await api.client.post("/v1/campaigns", headers=admin, json=campaign([str(uuid.uuid4())]))
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "body.target_unit_ids"
    r = await api.client.post("/v1/campaigns", headers=admin, json=campaign(targets))
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "opened" and r.json()["steps"][0]["actor"] == "ministry-admin-national@test"


async def test_published_versions_are_immutable_and_a_change_is_a_new_version(open_api):
    api = await open_api("registry")
    admin = api.auth("ministry-admin")
    ids = await setup(api)
    await api.client.post("/v1/schemes/share-satisfied/versions/1/publish", headers=admin)
    assert (await api.client.post("/v1/campaigns", headers=admin, json=campaign([ids["C01"]]))).status_code == 201
    doc = builtin("instrument", "sipas-2017")
    edited = copy.deepcopy(doc)
    edited["definition"]["title"] = "Sửa"
    r = await api.client.put("/v1/instruments/sipas-2017/versions/1", headers=admin, json=edited)
    assert r.status_code == 409 and r.json()["title"] == "Immutable"
    assert "draft version 2 instead" in r.json()["detail"]
    scheme = builtin("scheme", "share-satisfied")
    r = await api.client.put("/v1/schemes/share-satisfied/versions/1", headers=admin, json=scheme)
    assert r.status_code == 409 and r.json()["title"] == "Immutable"
    r = await api.client.post("/v1/instruments", headers=admin, json=edited)
    assert r.status_code == 201 and r.json()["version"] == 2 and r.json()["status"] == "draft"
    r = await api.client.put("/v1/instruments/sipas-2017/versions/2", headers=admin, json=doc)
    assert r.status_code == 200 and r.json()["definition"]["title"] == doc["definition"]["title"]
    unchanged = (await api.client.get("/v1/instruments/sipas-2017/versions/1", headers=admin)).json()
    assert unchanged["definition"] == doc["definition"] | {"title": doc["definition"]["title"]}


async def test_definitions_are_validated_with_clear_errors(open_api):
    api = await open_api("registry")
    admin = api.auth("ministry-admin")
    doc = builtin("instrument", "sipas-2017")
    dup = copy.deepcopy(doc)
    dup["definition"]["factors"][1]["items"][0]["code"] = "1.1"
    r = await api.client.post("/v1/instruments", headers=admin, json=dup)
    assert r.status_code == 422 and "item codes repeat" in r.json()["detail"] and "1.1" in r.json()["detail"]
    flat = copy.deepcopy(doc)
    for level in flat["definition"]["scale"]:
        level["satisfied"] = True
    r = await api.client.post("/v1/instruments", headers=admin, json=flat)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "body.definition.scale"
    points = builtin("scheme", "points")
    points["definition"]["rounding"]["rule"] = "half_up"
    r = await api.client.post("/v1/schemes", headers=admin, json=points)
    assert r.status_code == 422 and "truncates" in r.json()["detail"]
    no_points = builtin("scheme", "points")
    no_points["definition"]["points"] = []
    r = await api.client.post("/v1/schemes", headers=admin, json=no_points)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "body.definition.points"
    r = await api.client.post("/v1/instruments", headers=api.auth("province-operator", "01"), json=doc)
    assert r.status_code == 403


async def test_campaign_steps_follow_the_order_and_the_rules_on_who(open_api):
    api = await open_api("registry")
    admin = api.auth("ministry-admin")
    ids = await setup(api)
    await api.client.post("/v1/schemes/share-satisfied/versions/1/publish", headers=admin)
    op01, op79 = api.auth("province-operator", "01"), api.auth("province-operator", "79")
    r = await api.client.post("/v1/campaigns", headers=op01, json=campaign([ids["C01"]]))
    assert r.status_code == 403  # a province cannot open a national round
    r = await api.client.post("/v1/campaigns", headers=op01,
                              json=campaign([ids["C79"]], scope="commune", province="01"))
    assert r.status_code == 422 and "outside this campaign" in r.json()["detail"]
    r = await api.client.post("/v1/campaigns", headers=op01, json=campaign([ids["C01"]], scope="commune", province="01"))
    assert r.status_code == 201, r.text
    cid = r.json()["campaign_id"]
    step = f"/v1/campaigns/{cid}/status"
    assert (await api.client.post(step, headers=op79, json={"status": "sample_approved"})).status_code == 404
    r = await api.client.post(step, headers=op01, json={"status": "fieldwork_open"})
    assert r.status_code == 422 and "the next step is sample_approved" in r.json()["detail"]
    for status in ("sample_approved", "fieldwork_open", "fieldwork_closed"):
        assert (await api.client.post(step, headers=op01, json={"status": status})).status_code == 200
    r = await api.client.post(step, headers=api.auth("service"), json={"status": "scores_frozen", "note": "snapshot"})
    assert r.status_code == 200
    r = await api.client.post(step, headers=op01, json={"status": "opened"})
    assert r.status_code == 409
    done = (await api.client.post(step, headers=admin, json={"status": "closed"})).json()
    assert [(s["status"], s["actor"]) for s in done["steps"]] == [
        ("opened", "province-operator-01@test"), ("sample_approved", "province-operator-01@test"),
        ("fieldwork_open", "province-operator-01@test"), ("fieldwork_closed", "province-operator-01@test"),
        ("scores_frozen", "service-national@test"), ("closed", "ministry-admin-national@test")]


async def test_a_province_operator_cannot_touch_another_provinces_units(open_api):
    """Per endpoint: create, rename, re-parent, dissolve, merge, split, read-for-edit, list, crosswalk, import."""
    api = await open_api("registry")
    ids = await setup(api)
    op = api.auth("province-operator", "01")
    other, own = ids["C79"], ids["C01"]
    change = {"effective_date": "2026-01-01", "legal_basis": "Quyết định 1/2026"}
    commune79 = {"code": "X79", "name": "Xã", "level": "commune", "province": "79", "parent_id": ids["79"],
                 "valid_from": "2026-01-01"}
    attempts = [
        ("POST", "/v1/agencies", commune79, 403),
        ("POST", f"/v1/agencies/{other}/rename", change | {"name": "Tên mới"}, 404),
        ("POST", f"/v1/agencies/{other}/reparent", change | {"parent_id": ids["79"]}, 404),
        ("POST", f"/v1/agencies/{other}/dissolve", change, 404),
        ("POST", "/v1/reorganisations/merge", change | {"predecessor_ids": [other], "successor": commune79}, 403),
        ("POST", "/v1/reorganisations/merge", change | {"predecessor_ids": [other], "successor": commune79 | {
            "province": "01", "parent_id": ids["01"], "code": "Y01"}}, 404),
        ("POST", "/v1/reorganisations/split", change | {"predecessor_id": other, "successors": [
            commune79 | {"province": "01", "parent_id": ids["01"], "code": f"S{i}"} for i in range(2)]}, 404),
        ("POST", f"/v1/agencies/{ids['01']}/rename", change | {"name": "Thủ đô"}, 403),  # provinces are national
        ("GET", f"/v1/agencies/{other}", None, 404),
        ("GET", f"/v1/agencies/{other}/crosswalk", None, 404),
        ("GET", "/v1/agencies?province=79", None, 403),
    ]
    for method, path, body, status in attempts:
        r = await api.client.request(method, path, json=body, headers=op)
        assert r.status_code == status, (method, path, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
    csv79 = "code,name,level,parent_code,province,valid_from\nZ1,Xã Z,commune,79,79,2026-01-01\n"
    r = await api.client.post("/v1/agency-imports", content=csv79.encode(), headers=op | {"Content-Type": "text/csv"})
    assert r.status_code == 422 and r.json()["errors"][0]["reason"] == "outside the provinces you may manage"
    # The same operator manages their own province freely.
    r = await api.client.post(f"/v1/agencies/{own}/rename", headers=op, json=change | {"name": "Phường Ba Đình"})
    assert r.status_code == 200
    listed = (await api.client.get("/v1/agencies", headers=op)).json()["items"]
    assert {u["province"] for u in listed} == {"01"}
    # Nothing of province 79 changed.
    unit = (await api.client.get(f"/v1/agencies/{other}", headers=api.auth("auditor"))).json()
    assert unit["name"] == "Phường 79" and unit["valid_to"] is None and unit["version"] == 1
