"""The audit trail over real PostgreSQL: every state-changing request (accepted or refused) is one
sealed, hash-chained row with its actor, role, scope, client and correlation id; auditors export and
verify it; 100 random single-field edits to stored rows are each caught."""

from __future__ import annotations

import json
import random

import pytest
from conftest import wait_for_async
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

pytestmark = pytest.mark.asyncio


def unit(code: str, name: str) -> dict:
    return {"code": code, "name": name, "level": "province", "province": code, "valid_from": "2008-08-01"}


async def test_requests_are_audited_sealed_and_any_edit_is_detected(open_api):
    api = await open_api("registry")
    admin = api.auth("ministry-admin")
    hanoi = api.auth("province-operator", "01", subject="op01@test")
    ok = await api.client.post("/v1/agencies", json=unit("46", "Thừa Thiên Huế"), headers=admin | {
        "X-Correlation-Id": "audit-test-1"})
    assert ok.status_code == 201
    refused = await api.client.post("/v1/agencies", json=unit("47", "Khánh Hòa"), headers=hanoi)
    assert refused.status_code == 403
    invalid = await api.client.post("/v1/agencies", json={"code": ""}, headers=admin)
    assert invalid.status_code == 422
    for i in range(20):
        await api.client.post("/v1/agencies", json=unit(f"9{i:01d}" if i < 10 else f"8{i - 10}", f"Tỉnh {i}"),
                              headers=admin)
    await api.client.get("/v1/agencies", headers=admin)  # a read of public data is not audited

    auditor = api.auth("auditor")

    async def sealed() -> bool:
        body = (await api.client.get("/v1/audit", headers=auditor)).json()
        return len(body["entries"]) == 23
    await wait_for_async(sealed)
    entries = (await api.client.get("/v1/audit", headers=auditor)).json()["entries"]
    assert [e["position"] for e in entries] == list(range(1, 24))
    first = entries[0]["entry"]
    assert first | {"time": None, "client": None} == {
        "time": None, "service": "registry", "method": "POST", "route": "/v1/agencies", "path": "/v1/agencies",
        "status": 201, "actor": "ministry-admin-national@test", "role": "ministry-admin", "province": None,
        "client": None, "correlation_id": "audit-test-1", "kind": "command", "purpose": None}
    assert entries[1]["entry"]["status"] == 403 and entries[1]["entry"]["actor"] == "op01@test"
    assert entries[1]["entry"]["province"] == "01" and entries[2]["entry"]["status"] == 422
    assert (await api.client.get("/v1/audit", headers=hanoi)).status_code == 403  # auditors and the ministry only

    verdict = (await api.client.get("/v1/audit/verify", headers=auditor)).json()
    assert verdict["ok"] is True and verdict["position"] == 23

    # 100 random single-field edits, each in a transaction rolled back after the verifier looked.
    from sipas_kit.audit import AuditChainBroken, verify

    rng = random.Random(2026)
    engine = create_async_engine(api.database_url)
    caught = 0
    try:
        for _ in range(100):
            position = rng.randint(1, 23)
            field = rng.choice(["body", "hash", "position"])
            async with engine.connect() as conn:
                tx = await conn.begin()
                if field == "body":
                    body = json.loads((await conn.execute(text("SELECT body FROM audit_log WHERE position = :p"),
                                                          {"p": position})).scalar())
                    key = rng.choice(sorted(body))
                    body[key] = f"{body[key]}x" if body[key] is not None else "x"
                    await conn.execute(text("UPDATE audit_log SET body = :b WHERE position = :p"),
                                       {"b": json.dumps(body, sort_keys=True, separators=(",", ":"),
                                                        ensure_ascii=False), "p": position})
                elif field == "hash":
                    await conn.execute(text("UPDATE audit_log SET hash = sha256(hash) WHERE position = :p"),
                                       {"p": position})
                else:
                    await conn.execute(text("UPDATE audit_log SET position = position + 1000 WHERE position = :p"),
                                       {"p": position})
                try:
                    await verify(conn)
                except AuditChainBroken:
                    caught += 1
                await tx.rollback()
    finally:
        await engine.dispose()
    assert caught == 100
    assert (await api.client.get("/v1/audit/verify", headers=auditor)).json()["ok"] is True  # all restored


async def test_a_commands_audit_row_commits_with_the_command(open_api, monkeypatch):
    """A command's audit row is written in the command's own transaction: with the middleware's separate
    audit insert failing (as when the process dies after the commit), the accepted command's row is
    there all the same, once; the refused request, which only the middleware audits, has none."""
    from sipas_kit import audit

    async def dies(engine, body):
        raise RuntimeError("the process died after answering")

    monkeypatch.setattr(audit, "record", dies)
    api = await open_api("registry")
    admin = api.auth("ministry-admin")
    created = await api.client.post("/v1/agencies", json=unit("46", "Thừa Thiên Huế"),
                                    headers=admin | {"X-Correlation-Id": "audit-tx-1"})
    assert created.status_code == 201, created.text
    refused = await api.client.post("/v1/agencies", json={"code": ""}, headers=admin | {
        "X-Correlation-Id": "audit-tx-2"})
    assert refused.status_code == 422
    engine = create_async_engine(api.database_url)
    try:
        async with engine.connect() as conn:
            bodies = [json.loads(b) for b in (await conn.execute(text("SELECT body FROM audit_log"))).scalars()]
    finally:
        await engine.dispose()
    mine = [b for b in bodies if str(b["correlation_id"]).startswith("audit-tx-")]
    assert [(b["correlation_id"], b["status"], b["route"]) for b in mine] == [("audit-tx-1", 201, "/v1/agencies")]
