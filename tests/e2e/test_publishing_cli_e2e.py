"""The release workflow through the operator's CLI, with every process running: two ministry officers
(``--as``, the platform's development identity) draft, submit, approve and publish under an embargo;
the drafter's own approval is refused; the embargo worker publishes when due; the signed release
verifies offline; a retraction keeps the row; each step is an event naming its actor."""

from __future__ import annotations

import json
import random

import httpx
import pytest
from conftest import wait_for
from typer.testing import CliRunner

from sipas_cli.main import app

pytestmark = pytest.mark.e2e
SEED = "7c" * 20


def answered_campaign(platform, admin, run_round, code: str, ballots: int) -> str:
    """A campaign over one commune of Hà Nội whose ``ballots`` respondents have answered online."""
    rows = [f"{code},Chứng thực,chứng thực,{code}-{i:04d},2026-02-0{1 + i % 9},cá nhân,Người {i},09{i:08d},Số {i}"
            for i in range(ballots + 10)]
    cid = run_round(code=code, frame_rows=rows, seed=SEED, collection=("2026-01-01", "2099-12-31"))["campaign_id"]
    codes = wait_for(lambda: platform.pg.psql(
        f"SELECT code FROM ballots WHERE campaign_id = '{cid}' AND status = 'issued' ORDER BY code",
        database="sipas_ballots").split(), timeout=60)
    definitions = httpx.get(platform.url("scoring") + "/v1/reference/definitions", headers=admin).json()
    sipas = next(d["definition"] for d in definitions if d["kind"] == "instrument" and d["def_id"] == "sipas-2017")
    rng = random.Random(code)
    for ballot in codes[:ballots]:
        answers = {i["code"]: rng.choice([2, 3, 4, 5, 5]) for f in sipas["factors"] for i in f["items"]}
        r = httpx.post(platform.url("ballots") + "/v1/submissions",
                       json={"code": ballot, "campaign_id": cid, "answers": answers, "channel": "online"})
        assert r.status_code == 201 and r.json()["outcome"] == "accepted", r.text
    wait_for(lambda: any(u["level"] == "agency" and u["overall"]["n"] == ballots for u in httpx.get(
        platform.url("scoring") + f"/v1/campaigns/{cid}/scores", headers=admin).json().get("units", [])), timeout=60)
    return cid


def test_officers_publish_under_embargo_and_retract_through_the_cli(platform, admin, run_round, tmp_path):
    import datetime as dt

    cid = answered_campaign(platform, admin, run_round, "PC-1", 35)
    snap = httpx.post(platform.url("scoring") + f"/v1/campaigns/{cid}/snapshots", headers=admin).json()
    runner, url = CliRunner(), platform.url("publishing")

    def sipas(who: str, *args: str):
        return runner.invoke(app, ["publishing", *args, "--url", url, "--as", who],
                             env={"SIPAS_HOME": str(platform.home), "SIPAS_TOKEN": None, "COLUMNS": "200"})

    def drafted():  # publishing learns of the snapshot from scoring's stream
        found = sipas("lan@bnv", "draft", snap["snapshot_id"], "--title", "SIPAS 2026 — PC-1", "--json")
        return json.loads(found.output) if found.exit_code == 0 else None

    release_id = wait_for(drafted, timeout=60)["release_id"]
    assert sipas("lan@bnv", "submit", release_id).exit_code == 0
    refused = sipas("lan@bnv", "approve", release_id)
    assert refused.exit_code == 1 and "Four eyes" in refused.output
    approved = sipas("minh@bnv", "approve", release_id)
    assert approved.exit_code == 0 and "approved" in approved.output and "approved by minh@bnv" in approved.output
    at = (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=3)).replace(microsecond=0)
    scheduled = sipas("minh@bnv", "publish", release_id, "--at", at.strftime("%Y-%m-%dT%H:%M:%S%z"))
    assert scheduled.exit_code == 0 and "scheduled until" in scheduled.output, scheduled.output

    def listed(status: str):
        found = sipas("hoa@bnv", "list", "--campaign", cid, "--json")
        assert found.exit_code == 0, found.output
        return [r for r in json.loads(found.output)["items"] if r["release_id"] == release_id and r["status"] == status]

    [published] = wait_for(lambda: listed("published"), timeout=60)  # the embargo worker, when due
    assert dt.datetime.fromisoformat(published["published_at"]) >= at and published["drafted_by"] == "lan@bnv"
    table = sipas("hoa@bnv", "list", "--status", "published")
    assert table.exit_code == 0 and release_id in table.output

    keys = httpx.get(url + "/v1/keys").json()["keys"][0]
    release = tmp_path / "release.json"
    release.write_bytes(httpx.get(f"{url}/v1/releases/{release_id}/manifest", headers=admin).content)
    verified = runner.invoke(app, ["publishing", "verify-release", str(release), "--public-key", keys["public_key"]])
    assert verified.exit_code == 0 and "verifies" in verified.output, verified.output

    retracted = sipas("hoa@bnv", "retract", release_id, "--reason", "Nhầm đơn vị hành chính")
    assert retracted.exit_code == 0 and "retracted: Nhầm đơn vị hành chính" in retracted.output
    again = sipas("hoa@bnv", "retract", release_id, "--reason", "lần nữa")
    assert again.exit_code == 1 and "409" in again.output
    assert listed("retracted")[0]["retraction"]["by"] == "hoa@bnv"

    events = httpx.get(url + "/v1/events", params={"limit": 5000}, headers=admin).json()["events"]
    steps = [(e["type"].split(".")[4], e["actor"]) for e in events if e["subject"] == f"release-{release_id}"]
    assert steps == [("ReleaseDrafted", "lan@bnv"), ("ReleaseSubmitted", "lan@bnv"),
                     ("ReleaseApproved", "minh@bnv"), ("ReleaseScheduled", "minh@bnv"),
                     ("ReleasePublished", "service:publishing"), ("ReleaseRetracted", "hoa@bnv")]
