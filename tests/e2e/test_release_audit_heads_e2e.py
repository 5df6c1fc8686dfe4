"""Every service's audit-chain head is signed into a release, with all five services running.

A release drafted over a real round records, for registry, sampling, ballots, scoring and publishing,
the audit trail's last sealed position and its hash; each equals what that service's own chain gives
at that position (``GET /v1/audit/verify?upto=N``, and the hash of row N in ``GET /v1/audit``);
``sipas publishing verify-release`` shows them; and an edited head or position breaks the signature."""

from __future__ import annotations

import json

import httpx
import pytest
from conftest import wait_for
from tests.e2e.test_publishing_cli_e2e import answered_campaign
from typer.testing import CliRunner

from sipas_cli.main import app
from sipas_cli.platform import SERVICES
from sipas_events.schema import GENESIS_HASH

pytestmark = pytest.mark.e2e


def test_a_release_signs_every_services_audit_head(platform, admin, run_round, tmp_path):
    cid = answered_campaign(platform, admin, run_round, "AH-1", 12)
    snap = httpx.post(platform.url("scoring") + f"/v1/campaigns/{cid}/snapshots", headers=admin).json()
    url = platform.url("publishing")

    def officer(who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {platform.identity.mint(who, 'ministry-admin')}"}

    def drafted():  # publishing learns of the snapshot from scoring's stream
        r = httpx.post(url + "/v1/releases", json={"snapshot_id": snap["snapshot_id"]}, headers=officer("lan@bnv"),
                       timeout=30)
        return r.json() if r.status_code == 201 else None

    draft = wait_for(drafted, timeout=60)
    release_id, heads = draft["release_id"], draft["audit_heads"]
    assert sorted(heads) == sorted(SERVICES)
    assert heads["registry"]["position"] > 0 and heads["sampling"]["position"] > 0, heads  # the round's commands
    for step, who in (("submit", "lan@bnv"), ("approve", "minh@bnv"), ("publish", "minh@bnv")):
        r = httpx.post(f"{url}/v1/releases/{release_id}/{step}", json={}, headers=officer(who), timeout=30)
        assert r.status_code == 200, r.text
    release = httpx.get(f"{url}/v1/releases/{release_id}/manifest", headers=admin).json()
    assert release["manifest"]["audit_heads"] == heads  # what the approver saw is what was signed

    for service, recorded in heads.items():
        base, position = platform.url(service), recorded["position"]
        checked = httpx.get(base + "/v1/audit/verify", params={"upto": position}, headers=admin, timeout=60).json()
        assert checked == {"ok": True, "position": position, "head": recorded["head"]}, service
        if position == 0:  # nothing sealed yet when drafted (publishing's own trail, on a fresh platform)
            assert recorded["head"] == GENESIS_HASH.hex(), service
        else:
            [row] = httpx.get(base + "/v1/audit", params={"after": position - 1, "limit": 1}, headers=admin).json()[
                "entries"]
            assert row["position"] == position and row["hash"] == recorded["head"], service
        now = httpx.get(base + "/v1/audit/head", headers=admin).json()
        assert now["service"] == service and now["position"] >= position
        beyond = httpx.get(base + "/v1/audit/verify", params={"upto": now["position"] + 10**6}, headers=admin).json()
        assert beyond["ok"] is False and "before" in beyond["detail"]  # a position the chain never reached

    keys = httpx.get(url + "/v1/keys").json()["keys"][0]
    runner, path = CliRunner(), tmp_path / "release.json"

    def verify(document: dict) -> tuple[int, str]:
        path.write_text(json.dumps(document), encoding="utf-8")
        result = runner.invoke(app, ["publishing", "verify-release", str(path), "--public-key", keys["public_key"]],
                               env={"COLUMNS": "200"})
        return result.exit_code, result.output

    code, output = verify(release)
    assert code == 0 and "verifies" in output, output
    for service, recorded in heads.items():
        assert f"{service:<11} position {recorded['position']:>8}  head {recorded['head']}" in output, output
    for field, value in (("head", "00" * 32), ("position", heads["registry"]["position"] + 1)):
        tampered = json.loads(json.dumps(release))
        tampered["manifest"]["audit_heads"]["registry"][field] = value
        code, output = verify(tampered)
        assert code == 1 and "signature does not verify" in output and "SHA-256 does not match" in output, output
