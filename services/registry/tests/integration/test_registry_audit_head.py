"""Why releases record audit heads: a trail rewritten wholesale (a row's body changed and every later
hash recomputed) still verifies on its own, but no longer gives the head recorded earlier at that
position. ``GET /v1/audit/head`` is what a release records; ``GET /v1/audit/verify?upto=N`` is how an
auditor checks it later."""

from __future__ import annotations

import json

import pytest
from conftest import wait_for_async
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from sipas_events.schema import GENESIS_HASH
from sipas_kit.audit import chain_hash

pytestmark = pytest.mark.asyncio


async def test_a_recorded_head_exposes_a_rewritten_trail(open_api):
    api = await open_api("registry")
    admin, auditor = api.auth("ministry-admin"), api.auth("auditor")
    assert (await api.client.get("/v1/audit/head", headers=auditor)).json() == {
        "service": "registry", "position": 0, "head": GENESIS_HASH.hex()}  # nothing sealed yet
    for code in ("91", "92", "93", "94"):
        r = await api.client.post("/v1/agencies", headers=admin, json={
            "code": code, "name": f"Tỉnh {code}", "level": "province", "province": code, "valid_from": "2008-08-01"})
        assert r.status_code == 201, r.text

    async def sealed() -> bool:
        return (await api.client.get("/v1/audit/head", headers=auditor)).json()["position"] == 4
    await wait_for_async(sealed)
    recorded = (await api.client.get("/v1/audit/head", headers=api.auth("service"))).json()  # as publishing reads it
    at3 = (await api.client.get("/v1/audit/verify", params={"upto": 3}, headers=auditor)).json()
    assert at3["ok"] and at3["position"] == 3 and at3["head"] != recorded["head"]
    for role in ("province-operator", "clerk", "partner"):  # heads are for services, auditors and the ministry
        r = await api.client.get("/v1/audit/head", headers=api.auth(role, "01" if role != "partner" else None))
        assert r.status_code == 403, role

    # Someone with the database rewrites row 2 (the actor) and recomputes every later hash.
    engine = create_async_engine(api.database_url)
    try:
        async with engine.begin() as conn:
            rows = (await conn.execute(text("SELECT id, position, body FROM audit_log ORDER BY position"))).all()
            previous = GENESIS_HASH
            for row_id, position, body in rows:
                if position == 2:
                    body = json.dumps(json.loads(body) | {"actor": "someone-else@test"})
                previous = chain_hash(previous, position, body)
                await conn.execute(text("UPDATE audit_log SET body = :b, hash = :h WHERE id = :i"),
                                   {"b": body, "h": previous, "i": row_id})
    finally:
        await engine.dispose()
    whole = (await api.client.get("/v1/audit/verify", headers=auditor)).json()
    assert whole["ok"] is True  # the rewritten chain is consistent in itself ...
    checked = (await api.client.get("/v1/audit/verify", params={"upto": recorded["position"]}, headers=auditor)).json()
    assert checked["ok"] and checked["head"] != recorded["head"]  # ... but not the one recorded at position 4
