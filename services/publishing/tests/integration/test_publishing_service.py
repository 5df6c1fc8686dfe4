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
from sipas_publishing.adapters.scoring import HttpScoringSource
from sipas_publishing.domain import manifest as mf

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


def ballots(seed: int = 1, prefix: str = "x", campaign: str = "c26", sizes: dict[str, int] = SIZES,
            provinces: dict[str, str] = AGENCIES) -> list[Any]:
    rng = random.Random(seed)
    return [bal.BallotAccepted(
        ballot_id=f"{prefix}{a}-{i:03d}", campaign_id=campaign, unit_id=f"u-{prefix}{a}-{i}", agency_id=a, stratum=a,
        weight_ref="d1", province=provinces[a], channel="paper",
        answers={c: rng.choice([None, 2, 3, 4, 5, 4, 5]) for c in CRITERIA}, expectations=[])
        for a, n in sizes.items() for i in range(n)]


def pdf_text(content: bytes) -> tuple[str, set[str]]:
    """The text a reader of the PDF gets, and the fonts its pages use."""
    import io

    from pypdf import PdfReader

    reader = PdfReader(io.BytesIO(content))
    fonts = {str(f["/BaseFont"]) for page in reader.pages for f in page["/Resources"]["/Font"].values()}
    return "\n".join(page.extract_text() for page in reader.pages), fonts


async def sql(api: Any, query: str, **params: Any) -> list[tuple[Any, ...]]:
    engine = create_async_engine(api.database_url)
    try:
        async with engine.begin() as conn:
            result = await conn.execute(text(query), params)
            return [tuple(r) for r in result] if result.returns_rows else []
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
    publishing.app.state.ctx.scoring_source = HttpScoringSource("http://scoring", token, client=scoring.client)


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


async def test_manifest_verifies_offline_and_any_edited_figure_fails(pair, tmp_path):
    from typer.testing import CliRunner

    from sipas_cli.main import app as cli

    scoring, publishing, _ = pair
    snap = await snapshot(scoring, publishing)
    release_id = await published(publishing, snap["snapshot_id"])
    key = (await publishing.client.get("/v1/keys")).json()["keys"][0]
    r = await publishing.client.get(f"/v1/releases/{release_id}/manifest", headers=publishing.auth("partner"))
    assert r.status_code == 200 and "immutable" in r.headers["cache-control"]
    release = r.json()
    manifest = release["manifest"]
    assert manifest["snapshot"]["positions"] == snap["positions"] and manifest["snapshot"]["figures_digest"] == \
        snap["digest"]
    assert manifest["release"]["approved_by"] == "minh@bnv" and manifest["figures"]["scheme"]["id"] == \
        "share-satisfied"
    c1 = next(u for u in manifest["figures"]["units"] if u["id"] == "c1")
    assert c1["suppressed"] == "insufficient_sample" and c1["overall"]["value"] is None
    shown = next(u for u in manifest["figures"]["units"] if u["id"] == "a1")
    assert shown["overall"]["n"] > 0 and len(shown["overall"]["ci"]) == 2
    assert release["public_key"] == key["public_key"] and release["key_id"] == key["key_id"]

    genuine = tmp_path / "release.json"
    genuine.write_text(json.dumps(release, ensure_ascii=False), encoding="utf-8")
    pem = tmp_path / "publisher.pem"
    pem.write_text(key["pem"])
    runner = CliRunner()
    ok = runner.invoke(cli, ["publishing", "verify-release", str(genuine), "--public-key", str(pem)])
    assert ok.exit_code == 0 and "verifies" in ok.output, ok.output
    edited = json.loads(genuine.read_text())
    edited["manifest"]["figures"]["units"][1]["overall"]["n"] += 1
    bad = tmp_path / "edited.json"
    bad.write_text(json.dumps(edited, ensure_ascii=False), encoding="utf-8")
    failed = runner.invoke(cli, ["publishing", "verify-release", str(bad), "--public-key", key["public_key"]])
    assert failed.exit_code == 1 and "SHA-256" in failed.output
    # A different publisher's key does not verify a genuine file.
    other = runner.invoke(cli, ["publishing", "verify-release", str(genuine), "--public-key", "11" * 32])
    assert other.exit_code == 1


async def test_published_release_cannot_change_by_api_or_sql(pair):
    scoring, publishing, _ = pair
    snap = await snapshot(scoring, publishing)
    release_id = await published(publishing, snap["snapshot_id"])
    who = admin(publishing, "lan@bnv")
    r = await publishing.client.patch(f"/v1/releases/{release_id}", json={"title": "Khác"}, headers=who)
    assert r.status_code == 409 and r.headers["content-type"] == "application/problem+json"
    r = await publishing.client.delete(f"/v1/releases/{release_id}", headers=who)
    assert r.status_code == 409
    for statement in (
        "UPDATE pb_releases SET title = 'khác' WHERE release_id = :r",
        "UPDATE pb_releases SET manifest_sha256 = repeat('0', 64) WHERE release_id = :r",
        "UPDATE pb_releases SET document = jsonb_set(document, '{year}', '1999') WHERE release_id = :r",
        "UPDATE pb_releases SET status = 'draft' WHERE release_id = :r",
        "UPDATE pb_releases SET status = 'retracted', retraction = '{}', title = 'x' WHERE release_id = :r",
        "DELETE FROM pb_releases WHERE release_id = :r",
    ):
        with pytest.raises(Exception, match="cannot be changed"):
            await sql(publishing, statement, r=release_id)
    # The one change allowed is the retraction itself; then nothing, not even deletion.
    await sql(publishing, "UPDATE pb_releases SET status = 'retracted', retraction = '{\"reason\": \"x\"}', "
                          "version = version + 1 WHERE release_id = :r", r=release_id)
    with pytest.raises(Exception, match="cannot be changed"):
        await sql(publishing, "UPDATE pb_releases SET retraction = NULL WHERE release_id = :r", r=release_id)
    with pytest.raises(Exception, match="cannot be changed"):
        await sql(publishing, "DELETE FROM pb_releases WHERE release_id = :r", r=release_id)
    # A draft is an ordinary row.
    draft = (await publishing.client.post("/v1/releases", json={"snapshot_id": snap["snapshot_id"]},
                                          headers=who)).json()
    r = await publishing.client.patch(f"/v1/releases/{draft['release_id']}", json={"title": "Bản nháp"}, headers=who)
    assert r.status_code == 200 and r.json()["title"] == "Bản nháp"


async def test_embargo_publishes_when_due_and_a_correction_supersedes(pair):
    import datetime as dt

    scoring, publishing, feed = pair
    snap = await snapshot(scoring, publishing)
    first = await published(publishing, snap["snapshot_id"])
    # New ballots, a new snapshot, a correction drafted against the first release.
    await feed.send("ballots", *ballots(seed=9, prefix="y"))
    await caught_up(scoring, "ballots", feed.positions["ballots"])
    later = await snapshot(scoring, publishing)
    assert later["digest"] != snap["digest"]
    correction = await approved(publishing, later["snapshot_id"], supersedes=first)
    at = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=2)
    r = await publishing.client.post(f"/v1/releases/{correction}/publish", json={"at": at.isoformat()},
                                     headers=admin(publishing, "minh@bnv"))
    assert r.status_code == 200 and r.json()["status"] == "scheduled", r.text
    partner = publishing.auth("partner")
    r = await publishing.client.get(f"/v1/releases/{correction}", headers=partner)
    assert r.status_code == 404  # under embargo: not public

    async def out() -> bool:
        found = await publishing.client.get(f"/v1/releases/{correction}", headers=partner)
        return found.status_code == 200
    await wait_for_async(out)
    body = (await publishing.client.get(f"/v1/releases/{correction}", headers=partner)).json()
    assert body["status"] == "published" and body["supersedes"] == first
    assert dt.datetime.fromisoformat(body["published_at"]) >= at
    old = (await publishing.client.get(f"/v1/releases/{first}", headers=partner)).json()
    assert old["superseded_by"] == correction and old["status"] == "published"
    names = [n for n, _ in await events_of(publishing, correction)]
    assert names == ["ReleaseDrafted", "ReleaseSubmitted", "ReleaseApproved", "ReleaseScheduled", "ReleasePublished"]
    history = (await publishing.client.get("/v1/units/a1/history", headers=partner)).json()["releases"]
    assert [h["release_id"] for h in history] == [first, correction]


async def test_partner_api_keys_scopes_rate_limit_and_etags(pair):
    scoring, publishing, _ = pair
    snap = await snapshot(scoring, publishing)
    release_id = await published(publishing, snap["snapshot_id"])
    draft = (await publishing.client.post("/v1/releases", json={"snapshot_id": snap["snapshot_id"]},
                                          headers=admin(publishing, "lan@bnv"))).json()["release_id"]
    r = await publishing.client.post("/v1/api-keys", json={"name": "Cổng DVC", "rate_per_minute": 3},
                                     headers=publishing.auth("partner"))
    assert r.status_code == 403
    r = await publishing.client.post("/v1/api-keys", json={"name": "Cổng DVC", "rate_per_minute": 3},
                                     headers=admin(publishing, "lan@bnv"))
    assert r.status_code == 201, r.text
    key = r.json()["api_key"]
    stored = await sql(publishing, "SELECT secret_sha256 FROM pb_api_keys")
    assert len(stored) == 1 and key.split("_", 2)[2] not in stored[0][0] and len(stored[0][0]) == 64
    listed = (await publishing.client.get("/v1/api-keys", headers=admin(publishing, "lan@bnv"))).json()
    assert "api_key" not in listed[0] and "secret_sha256" not in listed[0]

    headers = {"X-Api-Key": key}
    r = await publishing.client.get("/v1/releases", headers=headers)
    assert r.status_code == 200 and [i["release_id"] for i in r.json()["items"]] == [release_id]  # no drafts
    etag = r.headers["etag"]
    assert r.headers["cache-control"].startswith("public, max-age=")
    r = await publishing.client.get("/v1/releases", headers=headers | {"If-None-Match": etag})
    assert r.status_code == 304 and r.content == b""
    r = await publishing.client.get(f"/v1/releases/{release_id}", headers=headers)
    assert r.status_code == 200 and r.json()["signature"]  # the third of three this minute
    r = await publishing.client.get(f"/v1/releases/{release_id}/scores", params={"level": "province"},
                                    headers=headers)
    assert r.status_code == 429 and r.headers["content-type"] == "application/problem+json"
    assert int(r.headers["retry-after"]) >= 1
    # Staff see drafts; a partner token does not; scopes are enforced; bad keys are 401.
    staff = (await publishing.client.get("/v1/releases", headers=publishing.auth("auditor"))).json()["items"]
    assert {i["release_id"] for i in staff} == {release_id, draft}
    r = await publishing.client.get(f"/v1/releases/{draft}", headers=publishing.auth("partner"))
    assert r.status_code == 404
    r = await publishing.client.post("/v1/webhooks", json={"url": "http://127.0.0.1:9/x"}, headers=headers)
    assert r.status_code == 403 and r.json()["type"].endswith("missing-scope")
    r = await publishing.client.get("/v1/releases", headers={"X-Api-Key": key[:-2] + "xx"})
    assert r.status_code == 401
    await publishing.client.delete(f"/v1/api-keys/{key.split('_')[1]}", headers=admin(publishing, "lan@bnv"))

    partner = publishing.auth("partner")
    r = await publishing.client.get(f"/v1/releases/{release_id}/scores", params={"level": "province"},
                                    headers=partner)
    body = r.json()
    assert r.status_code == 200 and {u["level"] for u in body["units"]} == {"province"}
    assert body["figures_digest"] == snap["digest"]
    r = await publishing.client.get(f"/v1/releases/{release_id}/scores", params={"format": "csv"}, headers=partner)
    lines = r.content.decode("utf-8-sig").splitlines()
    assert lines[0].startswith("level,unit_id") and any(",insufficient_sample," in x for x in lines)


async def test_webhook_receiver_down_then_up_gets_every_event_signed(pair):
    import socket
    import threading
    import time
    from http.server import BaseHTTPRequestHandler, HTTPServer

    from sipas_publishing.domain import webhooks as wh

    scoring, publishing, _ = pair
    with socket.socket() as s:  # a port nobody listens on yet: the receiver is down
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    received: list[tuple[dict[str, str], bytes]] = []

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append(({k.lower(): v for k, v in self.headers.items()}, body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    r = await publishing.client.post("/v1/api-keys", json={"name": "báo chí", "scopes": ["webhooks:manage"]},
                                     headers=admin(publishing, "lan@bnv"))
    key = {"X-Api-Key": r.json()["api_key"]}
    sub = await publishing.client.post("/v1/webhooks", json={"url": f"http://127.0.0.1:{port}/hook"}, headers=key)
    assert sub.status_code == 201, sub.text
    subscription, secret = sub.json()["subscription_id"], sub.json()["secret"]

    snap = await snapshot(scoring, publishing)
    first = await published(publishing, snap["snapshot_id"])
    await publishing.client.post(f"/v1/releases/{first}/retract", json={"reason": "Nhầm đơn vị"},
                                 headers=admin(publishing, "minh@bnv"))
    second = await published(publishing, snap["snapshot_id"])

    async def failed_twice() -> bool:
        log = (await publishing.client.get(f"/v1/webhooks/{subscription}/deliveries", headers=key)).json()
        return len(log["attempts"]) >= 6 and all(a["error"] for a in log["attempts"])
    await wait_for_async(failed_twice)

    server = HTTPServer(("127.0.0.1", port), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        async def all_delivered() -> bool:
            log = (await publishing.client.get(f"/v1/webhooks/{subscription}/deliveries", headers=key)).json()
            return len(log["deliveries"]) == 3 and all(d["status"] == "delivered" for d in log["deliveries"])
        await wait_for_async(all_delivered)
        log = (await publishing.client.get(f"/v1/webhooks/{subscription}/deliveries", headers=key)).json()
        retried = [d for d in log["deliveries"] if d["attempts"] > 2]
        assert retried, "deliveries were retried with backoff"
        event_id = log["deliveries"][0]["event_id"]
        r = await publishing.client.post(f"/v1/webhooks/{subscription}/deliveries/{event_id}/redeliver", headers=key)
        assert r.status_code == 202

        async def redelivered() -> bool:
            return len(received) >= 4
        await wait_for_async(redelivered)
    finally:
        server.shutdown()
    now = int(time.time())
    for headers, body in received:
        assert wh.verify(secret, headers[wh.SIGNATURE_HEADER.lower()], body, now)
        assert not wh.verify("wrong", headers[wh.SIGNATURE_HEADER.lower()], body, now)
        assert json.loads(body)["id"] == headers[wh.EVENT_ID_HEADER.lower()]
    events = {json.loads(b)["id"]: json.loads(b) for _, b in received}
    assert len(events) == 3  # four deliveries, three events: the duplicate carries the same id
    assert sorted((e["type"].split(".")[4], e["data"]["release_id"]) for e in events.values()) == sorted(
        [("ReleasePublished", first), ("ReleaseRetracted", first), ("ReleasePublished", second)])
    assert all(e["specversion"] == "1.0" and e["source"] for e in events.values())


async def test_webhook_urls_are_checked_against_ssrf(open_api, tmp_path):
    publishing = await open_api("publishing", data_dir=tmp_path / "p")
    r = await publishing.client.post("/v1/api-keys", json={"name": "x", "scopes": ["webhooks:manage"]},
                                     headers=admin(publishing, "lan@bnv"))
    key = {"X-Api-Key": r.json()["api_key"]}
    for url in ("http://127.0.0.1:8080/h", "http://10.1.2.3/h", "http://169.254.169.254/latest/meta-data",
                "http://[::1]/h", "http://192.168.1.1/h", "ftp://example.com/h", "http://localhost/h"):
        r = await publishing.client.post("/v1/webhooks", json={"url": url}, headers=key)
        assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json", (url, r.text)
        assert r.json()["errors"][0]["field"] == "body.url"


async def test_sse_feed_resumes_from_a_position(pair):
    scoring, publishing, _ = pair
    snap = await snapshot(scoring, publishing)
    first = await published(publishing, snap["snapshot_id"])
    second = await published(publishing, snap["snapshot_id"])
    partner = publishing.auth("partner")

    async def sequenced() -> bool:
        rows = await sql(publishing, "SELECT count(*) FROM event_store WHERE type LIKE '%ReleasePublished%' "
                                     "AND position IS NOT NULL")
        return rows[0][0] == 2
    await wait_for_async(sequenced)

    def messages(text_: str) -> list[dict[str, str]]:
        out = []
        for block in text_.strip().split("\n\n"):
            fields = dict(line.split(": ", 1) for line in block.splitlines() if not line.startswith(":"))
            if fields:
                out.append(fields)
        return out

    r = await publishing.client.get("/v1/feed", params={"follow": "false"}, headers=partner)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    found = messages(r.text)
    assert [(m["event"], json.loads(m["data"])["data"]["release_id"]) for m in found] == [
        ("ReleasePublished", first), ("ReleasePublished", second)]
    r = await publishing.client.get("/v1/feed", params={"follow": "false"},
                                    headers=partner | {"Last-Event-ID": found[0]["id"]})
    assert [json.loads(m["data"])["data"]["release_id"] for m in messages(r.text)] == [second]
    r = await publishing.client.get("/v1/feed", params={"follow": "false", "after": found[1]["id"]}, headers=partner)
    assert messages(r.text) == []


async def test_public_report_pages_and_downloads(pair):
    scoring, publishing, _ = pair
    snap = await snapshot(scoring, publishing)
    release_id = await published(publishing, snap["snapshot_id"])
    r = await publishing.client.get("/report")
    assert r.status_code == 200 and f"/report/{release_id}" in r.text
    r = await publishing.client.get(f"/report/{release_id}")
    assert r.status_code == 200 and 'lang="vi"' in r.text and "Xếp hạng tỉnh, thành phố" in r.text
    assert "không đủ mẫu" in r.text and "<svg" in r.text and 'name="viewport"' in r.text
    assert "Hà Nội" in r.text and "Thành phố Hồ Chí Minh" in r.text
    row = (await publishing.client.get(f"/v1/releases/{release_id}", headers=admin(publishing, "lan@bnv"))).json()
    assert f'<code id="manifest-sha256">{row["manifest_sha256"]}</code>' in r.text  # published and signed, said so
    assert f"Công bố {row['published_at'][:10]}" in r.text and "ký số Ed25519" in r.text
    r = await publishing.client.get(f"/report/{release_id}", params={"lang": "en"})
    assert 'lang="en"' in r.text and "Province ranking" in r.text and "insufficient sample" in r.text
    assert f"Published {row['published_at'][:10]}" in r.text and "signed Ed25519" in r.text
    r = await publishing.client.get(f"/report/{release_id}/provinces/01")
    assert r.status_code == 200 and "Sở A1" in r.text and "Sở A2" in r.text and "Sở B1" not in r.text
    r = await publishing.client.get(f"/report/{release_id}/download.csv")
    assert r.status_code == 200 and r.headers["content-disposition"].endswith('.csv"')
    assert r.content.decode("utf-8-sig").splitlines()[0].startswith("level,unit_id")
    r = await publishing.client.get(f"/report/{release_id}/download.xlsx")
    assert r.status_code == 200 and r.content[:2] == b"PK"
    r = await publishing.client.get(f"/report/{release_id}/download.pdf")
    assert r.status_code == 200 and r.headers["content-type"] == "application/pdf"
    assert r.headers["content-disposition"].endswith(f'sipas-{release_id}.pdf"')
    text, fonts = pdf_text(r.content)
    for words in ("Chỉ số hài lòng về sự phục vụ hành chính", "Xếp hạng tỉnh, thành phố", "Thành phố Hồ Chí Minh",
                  "Hà Nội", "Đà Nẵng", "Sở A1", "Sở B2", "không đủ mẫu", "Khoảng tin cậy 95%", "Trang 1/2"):
        assert words in text, words
    assert fonts and all("DejaVu" in f for f in fonts)  # an embedded Unicode font, not a core one
    english, _ = pdf_text((await publishing.client.get(f"/report/{release_id}/download.pdf",
                                                       params={"lang": "en"})).content)
    assert "Province ranking" in english and "insufficient sample" in english and "Hà Nội" in english
    draft = (await publishing.client.post("/v1/releases", json={"snapshot_id": snap["snapshot_id"]},
                                          headers=admin(publishing, "lan@bnv"))).json()["release_id"]
    assert (await publishing.client.get(f"/report/{draft}")).status_code == 404  # drafts are not public


def merger_of_2025() -> list[Any]:
    """Bà Rịa - Vũng Tàu (77) joined Hồ Chí Minh City (79) on 2025-07-01; a 2024 campaign before it."""
    return [
        reg.AgencyRegistered(agency_id="prov-77", code="77", name="Bà Rịa - Vũng Tàu", level="province",
                             province="77", valid_from="2008-01-01"),
        reg.AgencyRegistered(agency_id="x77", code="H77.x", name="Sở X77", level="department", province="77",
                             valid_from="2020-01-01"),
        reg.AgencyMerged(predecessor_ids=["prov-77", "prov-79"], successor_id="prov-79-2025",
                         effective_date="2025-07-01", legal_basis="Nghị quyết 202/2025/QH15"),
        reg.AgencyRegistered(agency_id="prov-79-2025", code="79", name="Thành phố Hồ Chí Minh", level="province",
                             province="79", valid_from="2025-07-01"),
        reg.CampaignOpened(
            campaign_id="c24", name="SIPAS 2024", year=2024, scope="national", province=None,
            collection_window={"start": "2024-01-01", "end": "2024-12-31"},
            frame_window={"start": "2023-10-01", "end": "2023-12-31"}, target_unit_ids=[*AGENCIES, "x77"],
            instrument={"id": "sipas-2017", "version": 1}, scheme={"id": "share-satisfied", "version": 1},
            retention_until="2100-01-01"),
    ]


async def test_year_on_year_restated_across_the_2025_merger_is_signed_and_shown(pair, tmp_path):
    scoring, publishing, feed = pair
    await feed.send("registry", *merger_of_2025())
    await feed.send("ballots", *ballots(seed=24, prefix="o", campaign="c24", sizes={"a1": 40, "b1": 40, "x77": 40},
                                        provinces=AGENCIES | {"x77": "77"}))
    await caught_up(scoring, "registry", feed.positions["registry"])
    await caught_up(scoring, "ballots", feed.positions["ballots"])
    await caught_up(publishing, "registry", feed.positions["registry"])
    snap = await snapshot(scoring, publishing)
    lan = admin(publishing, "lan@bnv")
    for compare_with, status in (("c26", 422), ("c-none", 404)):
        r = await publishing.client.post("/v1/releases", headers=lan,
                                         json={"snapshot_id": snap["snapshot_id"], "compare_with": compare_with})
        assert r.status_code == status and r.json()["errors"][0]["field"] == "body.compare_with", r.text

    r = await publishing.client.post("/v1/releases", headers=lan,
                                     json={"snapshot_id": snap["snapshot_id"], "compare_with": "c24"})
    assert r.status_code == 201 and r.json()["compare_with"] == "c24", r.text
    release_id = r.json()["release_id"]
    for step, who in (("submit", "lan@bnv"), ("approve", "minh@bnv"), ("publish", "minh@bnv")):
        r = await publishing.client.post(f"/v1/releases/{release_id}/{step}", json={}, headers=admin(publishing, who))
        assert r.status_code == 200, r.text
    release = (await publishing.client.get(f"/v1/releases/{release_id}/manifest",
                                           headers=publishing.auth("partner"))).json()
    comparison = release["manifest"]["comparison"]
    assert comparison["years"] == [2024, 2026] and comparison["against"] == "c24"
    rows = {u["province"]: u for u in comparison["units"]}
    shown = {u["province"]: u for u in release["manifest"]["figures"]["units"] if u["level"] == "province"}
    assert rows["79"]["earlier"]["restated"] is True and rows["79"]["earlier"]["from"] == ["77", "79"]
    assert rows["79"]["earlier"]["n"] == 80 and rows["01"]["earlier"]["restated"] is False
    assert rows["48"]["earlier"] == {"value": None, "exact": None, "n": 0, "restated": False, "from": [],
                                     "split": False}  # no ballots in 2024: nothing to restate
    assert "77" not in rows  # no longer a province of its own
    visible = [code for code, u in shown.items() if not u["suppressed"]]
    assert "79" in visible
    for code in visible:  # this year's side is the release's own figure, not a second number
        assert rows[code]["current"]["value"] == shown[code]["overall"]["value"] is not None
        assert rows[code]["change"] is not None
    hidden = {code: u["suppressed"] for code, u in shown.items() if u["suppressed"]}
    assert hidden["48"] == "insufficient_sample" and len(hidden) >= 2  # 48 too small; another hides it
    for code, why in hidden.items():  # withheld in the release, withheld in the comparison
        assert rows[code]["current"]["value"] is None and rows[code]["current"]["suppressed"] == why
        assert rows[code]["change"] is None
    # The comparison is signed with the figures: one edited number and the release no longer verifies.
    key = bytes.fromhex((await publishing.client.get("/v1/keys")).json()["keys"][0]["public_key"])
    assert mf.verify(release, key).ok
    edited = json.loads(json.dumps(release))
    edited["manifest"]["comparison"]["units"][0]["earlier"]["value"] = "99.99"
    assert not mf.verify(edited, key).ok

    page = (await publishing.client.get(f"/report/{release_id}")).text
    assert "So sánh với năm 2024" in page and "tính lại theo địa giới mới" in page
    assert "Bà Rịa - Vũng Tàu + Thành phố Hồ Chí Minh" in page and page.count("† tính lại") == 1
    english = (await publishing.client.get(f"/report/{release_id}", params={"lang": "en"})).text
    assert "Compared with 2024" in english and "restated on today&#39;s provinces" in english
    text, _ = pdf_text((await publishing.client.get(f"/report/{release_id}/download.pdf")).content)
    unwrapped = "".join(text.split())  # table cells wrap long lines
    assert "Sosánhvớinăm2024" in unwrapped and "†tínhlạitheođịagiớimới:từBàRịa-VũngTàu+ThànhphốHồChíMinh" in \
        unwrapped

    # Ballots after the snapshot: scoring's comparison no longer matches the frozen figures: refused.
    await feed.send("ballots", *ballots(seed=25, prefix="late", sizes={"b1": 5}))
    await caught_up(scoring, "ballots", feed.positions["ballots"])
    r = await publishing.client.post("/v1/releases", headers=lan,
                                     json={"snapshot_id": snap["snapshot_id"], "compare_with": "c24"})
    assert r.status_code == 409 and "new snapshot" in r.json()["detail"], r.text
