"""Units over time through the registry API, in-process over real PostgreSQL and NATS."""

from __future__ import annotations

import uuid

import pytest

pytestmark = pytest.mark.asyncio


def unit(code: str, name: str, level: str, province: str | None, valid_from: str = "2008-08-01", **extra):
    return {"code": code, "name": name, "level": level, "province": province, "valid_from": valid_from} | extra


async def stored_types(api) -> list[str]:
    """The event types in the registry's own store, in append order (sequenced or not)."""
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(api.database_url)
    try:
        async with engine.connect() as conn:
            return list((await conn.execute(text("SELECT type FROM event_store ORDER BY insert_order"))).scalars())
    finally:
        await engine.dispose()


async def register(api, body, role="ministry-admin", province=None):
    r = await api.client.post("/v1/agencies", json=body, headers=api.auth(role, province))
    return r


async def test_register_rename_and_as_of(open_api):
    api = await open_api("registry")
    r = await register(api, unit("46", "Thừa Thiên Huế", "province", "46"))
    assert r.status_code == 201, r.text
    hue = r.json()
    assert hue["history"] == [{"effective_date": "2008-08-01", "name": "Thừa Thiên Huế", "parent_id": None,
                               "legal_basis": None}]
    r = await api.client.post(f"/v1/agencies/{hue['agency_id']}/rename", headers=api.auth("ministry-admin"),
                              json={"name": "Huế", "effective_date": "2025-01-01",
                                    "legal_basis": "Nghị quyết 175/2024/QH15"})
    assert r.status_code == 200, r.text
    assert r.json()["name"] == "Huế" and len(r.json()["history"]) == 2
    admin = api.auth("ministry-admin")
    before = (await api.client.get("/v1/agencies", params={"as_of": "2024-12-31", "level": "province"},
                                   headers=admin)).json()["items"]
    after = (await api.client.get("/v1/agencies", params={"as_of": "2025-01-01", "level": "province"},
                                  headers=admin)).json()["items"]
    assert [u["name"] for u in before] == ["Thừa Thiên Huế"] and [u["name"] for u in after] == ["Huế"]
    # Accent-insensitive search finds it whichever way it is typed.
    found = (await api.client.get("/v1/agencies", params={"q": "HUE"}, headers=admin)).json()["items"]
    assert [u["code"] for u in found] == ["46"]


async def test_merge_ends_predecessors_and_links_both_ways(open_api):
    api = await open_api("registry")
    admin = api.auth("ministry-admin")
    ids = {}
    for code, name in (("08", "Tuyên Quang"), ("02", "Hà Giang")):
        ids[code] = (await register(api, unit(code, name, "province", code))).json()["agency_id"]
    body = {"predecessor_ids": [ids["08"], ids["02"]], "effective_date": "2025-07-01",
            "legal_basis": "Nghị quyết 202/2025/QH15",
            "successor": unit("08", "Tuyên Quang", "province", "08", valid_from="2025-07-01")}
    r = await api.client.post("/v1/reorganisations/merge", json=body, headers=admin)
    assert r.status_code == 201, r.text
    new = r.json()
    assert {p["code"] for p in new["predecessors"]} == {"08", "02"} and new["successors"] == []
    old = (await api.client.get(f"/v1/agencies/{ids['02']}", headers=admin)).json()
    assert old["valid_to"] == "2025-06-30"
    walk = (await api.client.get(f"/v1/agencies/{ids['02']}/crosswalk", headers=admin)).json()
    assert [(s["agency_id"], s["effective_date"], s["kind"]) for s in walk["successors"]] == [
        (new["agency_id"], "2025-07-01", "merge")]
    # A second merge of an ended unit is refused, and so is a code clash in an overlapping period.
    again = await api.client.post("/v1/reorganisations/merge", headers=admin, json=body | {
        "successor": unit("99", "X", "province", "99", valid_from="2025-07-01")})
    assert again.status_code == 422 and "already ended" in again.json()["detail"]
    clash = await register(api, unit("08", "Tuyên Quang", "province", "08", valid_from="2026-01-01"))
    assert clash.status_code == 409 and clash.json()["errors"][0]["field"] == "body.code"


async def test_bad_units_are_refused_with_the_field_at_fault(open_api):
    api = await open_api("registry")
    prov = (await register(api, unit("01", "Hà Nội", "province", "01"))).json()["agency_id"]
    cases = [
        (unit("D1", "Sở Nội vụ", "department", "01"), 422, "body.parent_id"),  # a department needs a parent
        (unit("D1", "Sở Nội vụ", "department", "01", parent_id=str(uuid.uuid4())), 422, "body.parent_id"),
        (unit("H1", "Huyện X", "district", "01", valid_from="2025-07-01", parent_id=prov), 422, "body.valid_from"),
        (unit("01x", "Hà Nội", "province", "01"), 422, "body.code"),
        (unit("C1", "Xã", "commune", "01", parent_id=prov, valid_from="2020-01-01", valid_to="2019-01-01"), 422,
         "body.valid_to"),
        (unit("C2", "Xã", "hamlet", "01"), 422, "body.level"),
    ]
    for body, status, field in cases:
        r = await register(api, body)
        assert r.status_code == status, (body, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
        assert field in [e["field"] for e in r.json()["errors"]], r.json()
    # Nothing half-written: only the province exists, with one event.
    page = (await api.client.get("/v1/agencies", headers=api.auth("ministry-admin"))).json()
    assert [u["code"] for u in page["items"]] == ["01"]
    assert await stored_types(api) == ["vn.gov.sipas.registry.AgencyRegistered.v1"]


async def test_a_district_ends_with_the_district_level(open_api):
    api = await open_api("registry")
    prov = (await register(api, unit("01", "Hà Nội", "province", "01"))).json()["agency_id"]
    r = await register(api, unit("271", "Huyện Ba Vì", "district", "01", parent_id=prov))
    assert r.status_code == 201 and r.json()["valid_to"] == "2025-06-30"
