"""Publishing over real PostgreSQL and NATS JetStream, with an in-process scoring service as the
source of its snapshots: the release workflow and its events, four eyes, embargo, retraction and
correction, signed manifests verified offline, immutability through the API and through SQL, the
partner API (ETags, keys, scopes, rate limits), webhooks through a receiver that is down then up, and
the SSE feed."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest
from conftest import wait_for_async
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from sipas_events.catalogue import ballots as bal
from sipas_events.catalogue import registry as reg
from sipas_events.testing import Feed
from sipas_publishing.adapters.snapshots import HttpSnapshotSource

pytestmark = pytest.mark.asyncio
REFERENCE = Path(__file__).resolve().parents[4] / "data" / "reference"
AGENCIES = {"a1": "01", "a2": "01", "b1": "79", "b2": "79", "c1": "48"}
SIZES = {"a1": 40, "a2": 35, "b1": 45, "b2": 33, "c1": 12}  # c1 too small: suppressed


def builtin(kind: str, ident: str) -> dict[str, Any]:
    return json.loads((REFERENCE / f"{kind}s" / f"{ident}.json").read_text(encoding="utf-8"))["definition"]


SIPAS = builtin("instrument", "sipas-2017")
CRITERIA = [i["code"] for f in SIPAS["factors"] for i in f["items"]]


def reference_events() -> list[Any]:
    provinces = {"01": "Hà Nội", "79": "Thành phố Hồ Chí Minh", "48": "Đà Nẵng"}
    return [
        *[reg.AgencyRegistered(agency_id=f"prov-{p}", code=p, name=n, level="province", province=p,
                               valid_from="2008-01-01") for p, n in provinces.items()],
        *[reg.AgencyRegistered(agency_id=a, code=f"H{p}.{a}", name=f"Sở {a.upper()}", level="department",
                               province=p, valid_from="2020-01-01") for a, p in AGENCIES.items()],
        reg.InstrumentPublished(instrument_id="sipas-2017", instrument_version=1, definition=SIPAS),
        reg.SchemePublished(scheme_id="share-satisfied", scheme_version=1,
                            definition=builtin("scheme", "share-satisfied")),
        reg.CampaignOpened(
            campaign_id="c26", name="SIPAS 2026", year=2026, scope="national", province=None,
            collection_window={"start": "2026-01-01", "end": "2099-12-31"},
            frame_window={"start": "2025-10-01", "end": "2025-12-31"}, target_unit_ids=list(AGENCIES),
            instrument={"id": "sipas-2017", "version": 1}, scheme={"id": "share-satisfied", "version": 1},
            retention_until="2100-01-01"),
    ]


def ballots(seed: int = 1, prefix: str = "x") -> list[Any]:
    rng = random.Random(seed)
    return [bal.BallotAccepted(
        ballot_id=f"{prefix}{a}-{i:03d}", campaign_id="c26", unit_id=f"u-{prefix}{a}-{i}", agency_id=a, stratum=a,
        weight_ref="d1", province=AGENCIES[a], channel="paper",
        answers={c: rng.choice([None, 2, 3, 4, 5, 4, 5]) for c in CRITERIA}, expectations=[])
        for a, n in SIZES.items() for i in range(n)]


async def sql(api: Any, query: str, **params: Any) -> list[tuple[Any, ...]]:
    engine = create_async_engine(api.database_url)
    try:
        async with engine.begin() as conn:
            return [tuple(r) for r in await conn.execute(text(query), params)]
    finally:
        await engine.dispose()


async def caught_up(api: Any, producer: str, position: int) -> None:
    async def check() -> bool:
        found = await sql(api, "SELECT position FROM consumer_checkpoints WHERE producer = :p", p=producer)
        return bool(found) and min(r[0] for r in found) >= position
    await wait_for_async(check)


def bind_scoring(publishing: Any, scoring: Any) -> None:
    """Publishing reads snapshots from the in-process scoring app, as a service."""
    token = scoring.auth("service", subject="svc-publishing")["Authorization"].split(" ", 1)[1]
    publishing.app.state.ctx.snapshot_source = HttpSnapshotSource("http://scoring", token, client=scoring.client)


async def snapshot(scoring: Any, publishing: Any) -> dict[str, Any]:
    r = await scoring.client.post("/v1/campaigns/c26/snapshots", headers=scoring.auth("ministry-admin"))
    assert r.status_code == 201, r.text
    snap: dict[str, Any] = r.json()

    async def known() -> bool:
        return bool(await sql(publishing, "SELECT 1 FROM pb_snapshots WHERE snapshot_id = :s", s=snap["snapshot_id"]))
    await wait_for_async(known)
    return snap


@pytest.fixture
async def pair(open_api: Any, stack: Any, tmp_path: Any) -> Any:
    """Scoring with 165 counted ballots, and publishing bound to it."""
    scoring = await open_api("scoring", scores_interval=0.2)
    publishing = await open_api("publishing", data_dir=tmp_path / "publishing", worker_interval=0.1,
                                webhook_allow_private=True, webhook_backoff=0.2, webhook_backoff_max=1.0)
    bind_scoring(publishing, scoring)
    feed = await Feed.connect(stack.nats.url)
    await feed.send("registry", *reference_events())
    await feed.send("ballots", *ballots())
    await caught_up(scoring, "ballots", feed.positions["ballots"])
    await caught_up(publishing, "registry", feed.positions["registry"])
    yield scoring, publishing, feed
    await feed.close()


def admin(api: Any, who: str) -> dict[str, str]:
    return api.auth("ministry-admin", subject=who)


async def approved(publishing: Any, snapshot_id: str, supersedes: str | None = None) -> str:
    body = {"snapshot_id": snapshot_id} | ({"supersedes": supersedes} if supersedes else {})
    r = await publishing.client.post("/v1/releases", json=body, headers=admin(publishing, "lan@bnv"))
    assert r.status_code == 201, r.text
    release_id: str = r.json()["release_id"]
    r = await publishing.client.post(f"/v1/releases/{release_id}/submit", headers=admin(publishing, "lan@bnv"))
    assert r.status_code == 200 and r.json()["status"] == "submitted", r.text
    r = await publishing.client.post(f"/v1/releases/{release_id}/approve", headers=admin(publishing, "minh@bnv"))
    assert r.status_code == 200 and r.json()["approved_by"] == "minh@bnv", r.text
    return release_id


async def published(publishing: Any, snapshot_id: str, supersedes: str | None = None) -> str:
    release_id = await approved(publishing, snapshot_id, supersedes)
    r = await publishing.client.post(f"/v1/releases/{release_id}/publish", headers=admin(publishing, "minh@bnv"))
    assert r.status_code == 200 and r.json()["status"] == "published", r.text
    return release_id


async def events_of(api: Any, release_id: str) -> list[tuple[str, str]]:
    rows = await sql(api, "SELECT type, body FROM event_store WHERE stream_id = :s ORDER BY version",
                     s=f"release-{release_id}")
    return [(t.split(".")[4], json.loads(b)["actor"]) for t, b in rows]


async def test_workflow_four_eyes_each_step_an_event_with_its_actor(pair):
    scoring, publishing, _ = pair
    snap = await snapshot(scoring, publishing)
    r = await publishing.client.post("/v1/releases", json={"snapshot_id": snap["snapshot_id"]},
                                     headers=admin(publishing, "lan@bnv"))
    assert r.status_code == 201, r.text
    draft = r.json()
    assert draft["status"] == "draft" and draft["figures_digest"] == snap["digest"]
    release_id = draft["release_id"]
    # Approving a draft that was not submitted is a conflict; the drafter can never approve.
    r = await publishing.client.post(f"/v1/releases/{release_id}/approve", headers=admin(publishing, "minh@bnv"))
    assert r.status_code == 409 and r.headers["content-type"] == "application/problem+json"
    await publishing.client.post(f"/v1/releases/{release_id}/submit", headers=admin(publishing, "lan@bnv"))
    r = await publishing.client.post(f"/v1/releases/{release_id}/approve", headers=admin(publishing, "lan@bnv"))
    assert r.status_code == 403 and r.json()["title"] == "Four eyes", r.text
    # A province operator of another province may not act on a national release; a partner may not at all.
    r = await publishing.client.post(f"/v1/releases/{release_id}/approve",
                                     headers=publishing.auth("province-operator", "01"))
    assert r.status_code == 403
    r = await publishing.client.post(f"/v1/releases/{release_id}/approve", headers=publishing.auth("partner"))
    assert r.status_code == 403
    r = await publishing.client.post(f"/v1/releases/{release_id}/approve", headers=admin(publishing, "minh@bnv"),
                                     )
    assert r.status_code == 200 and r.json()["status"] == "approved"
    r = await publishing.client.post(f"/v1/releases/{release_id}/publish", headers=admin(publishing, "hoa@bnv"),
                                     json={}, )
    assert r.status_code == 200 and r.json()["status"] == "published" and r.json()["signature"]
    r = await publishing.client.post(f"/v1/releases/{release_id}/retract", json={"reason": "Sai sót nhập liệu"},
                                     headers=admin(publishing, "hoa@bnv"))
    assert r.status_code == 200 and r.json()["retraction"]["reason"] == "Sai sót nhập liệu"
    assert await events_of(publishing, release_id) == [
        ("ReleaseDrafted", "lan@bnv"), ("ReleaseSubmitted", "lan@bnv"), ("ReleaseApproved", "minh@bnv"),
        ("ReleasePublished", "hoa@bnv"), ("ReleaseRetracted", "hoa@bnv")]
    # Retracted means retracted: a second retraction or a re-publication is a conflict.
    for step, body in (("retract", {"reason": "again"}), ("publish", {})):
        r = await publishing.client.post(f"/v1/releases/{release_id}/{step}", json=body,
                                         headers=admin(publishing, "hoa@bnv"))
        assert r.status_code == 409, r.text


async def test_idempotent_draft_and_unknown_snapshot(pair):
    scoring, publishing, _ = pair
    snap = await snapshot(scoring, publishing)
    headers = admin(publishing, "lan@bnv") | {"Idempotency-Key": "draft-1"}
    first = await publishing.client.post("/v1/releases", json={"snapshot_id": snap["snapshot_id"]}, headers=headers)
    again = await publishing.client.post("/v1/releases", json={"snapshot_id": snap["snapshot_id"]}, headers=headers)
    assert first.status_code == again.status_code == 201
    assert first.json()["release_id"] == again.json()["release_id"] and again.headers["Idempotent-Replayed"] == "true"
    assert (await sql(publishing, "SELECT count(*) FROM pb_releases"))[0][0] == 1
    r = await publishing.client.post("/v1/releases", json={"snapshot_id": "nope"}, headers=admin(publishing, "lan"))
    assert r.status_code == 404 and r.json()["errors"][0]["field"] == "body.snapshot_id"
