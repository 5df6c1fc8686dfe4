"""`sipas demo` against the running platform: a whole synthetic round through the public APIs.

One small round (two provinces) is driven once for the module; the tests then check what it left behind
through the same APIs a partner or an auditor would use: a published release whose file verifies
offline, a webhook delivery signed with the subscription's secret, the fabricating enumerator's ballots
void, and every bad submission the demo planted turned away for its reason.
"""

from __future__ import annotations

import hashlib
import io
import json
import secrets
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from conftest import headless_chromium
from rich.console import Console

from sipas_cli.demo import DemoConfig, run_demo
from sipas_cli.platform import SERVICES

pytestmark = pytest.mark.e2e
PLANTED = {("online", "off_scale"), ("online", "used_code"), ("online", "unknown_code"),
           ("online", "too_few_answers"), ("paper", "too_few_answers"), ("import", "off_scale"),
           ("import", "used_code"), ("import", "unknown_code"), ("kiosk", "invalid completed_on"),
           ("kiosk", "invalid agency_code")}


@pytest.fixture(scope="module")
def demo(platform):
    out = io.StringIO()
    config = DemoConfig({s: platform.url(s) for s in SERVICES}, platform.home, provinces=2, sample=24,
                        register_all=False, kiosk_ratings=5, seed=7, workers=3)
    rnd = run_demo(config, Console(file=out, width=140))
    return rnd, out.getvalue()


def test_the_round_ends_in_a_published_release_that_verifies(platform, admin, demo, tmp_path):
    from typer.testing import CliRunner

    from sipas_cli.main import app

    rnd, printed = demo
    release = httpx.get(platform.url("publishing") + f"/v1/releases/{rnd.release['release_id']}", headers=admin).json()
    assert release["status"] == "published" and release["campaign_id"] == rnd.campaign_id
    assert release["drafted_by"] != release["approved_by"]
    assert release["manifest_sha256"] == rnd.release["manifest_sha256"]
    key = httpx.get(platform.url("publishing") + "/v1/keys").json()["keys"][0]["public_key"]
    result = CliRunner().invoke(app, ["publishing", "verify-release", rnd.manifest_path, "--public-key", key])
    assert result.exit_code == 0 and "the release verifies" in result.output, result.output
    # The national figure rests on exactly the ballots the ballots service counts and did not void.
    progress = httpx.get(platform.url("ballots") + f"/v1/campaigns/{rnd.campaign_id}/progress", headers=admin).json()
    voided = sum(e["voided"] for e in rnd.enumerator_stats)
    assert rnd.national["ballots"] == progress["valid"] - voided
    assert {u["id"] for u in rnd.provinces_published} == set(rnd.provinces)
    report = httpx.get(rnd.report_url)
    assert report.status_code == 200 and all(rnd.province_names[p] in report.text for p in rnd.provinces)
    assert rnd.report_url in printed and rnd.release["manifest_sha256"] in printed


def test_the_partner_webhook_received_the_release_with_a_valid_signature(platform, admin, demo):
    from sipas_publishing.domain.webhooks import verify

    rnd, _ = demo
    hook = rnd.webhook
    assert hook["type"] == "vn.gov.sipas.publishing.ReleasePublished.v1"
    assert hook["release_id"] == rnd.release["release_id"] and hook["signature_valid"] is True
    # Checked again with the publisher's own verifier, and a tampered body fails it.
    assert verify(hook["secret"], hook["signature"], hook["body"], now=int(time.time()))
    assert not verify(hook["secret"], hook["signature"], hook["body"].replace(b"}", b" }", 1), now=int(time.time()))
    deliveries = httpx.get(platform.url("publishing") + f"/v1/webhooks/{hook['subscription_id']}/deliveries",
                           headers=admin).json()["deliveries"]
    assert [d["status"] for d in deliveries if d["event_id"] == hook["event_id"]] == ["delivered"]


def test_the_fabricating_enumerators_ballots_are_void(platform, admin, demo):
    rnd, _ = demo
    stats = {e["enumerator"]: e for e in httpx.get(
        platform.url("ballots") + f"/v1/campaigns/{rnd.campaign_id}/enumerators", headers=admin).json()}
    caught = stats[rnd.fabricator]
    assert caught["accepted"] >= 2 and caught["voided"] == caught["accepted"] and caught["fabricated"] >= 1
    assert all(e["voided"] == 0 for who, e in stats.items() if who != rnd.fabricator)
    assert rnd.ledger.voided["import"] == caught["voided"]


def test_every_planted_bad_submission_was_rejected_for_its_reason(platform, admin, demo):
    rnd, printed = demo
    planted = rnd.ledger.planted
    assert {(p.channel, p.expected) for p in planted} == PLANTED
    assert [p for p in planted if p.actual != p.expected] == []
    # What the demo saw per channel adds up to what the ballots service recorded.
    progress = httpx.get(platform.url("ballots") + f"/v1/campaigns/{rnd.campaign_id}/progress", headers=admin).json()
    seen: Counter[str] = Counter()
    for channel in ("online", "paper", "import"):
        seen.update(rnd.ledger.rejected[channel])
    assert dict(seen) == progress["rejected_by_reason"]
    assert sum(rnd.ledger.accepted[c] for c in ("online", "paper", "import")) == progress["valid"]
    assert "Bad submissions planted on purpose" in printed


def test_a_reader_sees_the_demo_report_in_a_browser(demo):
    from selenium.webdriver.common.by import By

    rnd, _ = demo
    driver = headless_chromium()
    try:
        driver.get(rnd.report_url)
        rows = driver.find_element(By.ID, "ranking").find_elements(By.CSS_SELECTOR, "tbody tr")
        shown = {cells[1].text: cells[2].text for cells in (r.find_elements(By.TAG_NAME, "td") for r in rows)}
    finally:
        driver.quit()
    assert shown == {rnd.province_names[u["id"]]: u["overall"]["value"] for u in rnd.provinces_published}


def _trace(platform, rnd, province, **kw):
    from sipas_cli.trace import trace_figure

    auditor = platform.identity.mint("auditor@test", "auditor")
    return trace_figure({s: platform.url(s) for s in SERVICES}, auditor, rnd.release["release_id"], province, **kw)


def test_a_published_province_figure_traces_back_to_its_ballots_units_and_draws(platform, demo):
    rnd, printed = demo
    published = rnd.provinces_published[0]
    province = published["id"]
    frames = sorted(Path(rnd.frames_folder).glob("*.csv"))
    trace = _trace(platform, rnd, province, frames=frames)
    assert trace.ok, trace.problems
    mine = [d for d in rnd.draws if d.province == province]
    assert [c.link for c in trace.checks] == [
        "release", "signature", "figure", "snapshot", "ballots chain", "sampling chain", "recount", "units",
        *[link for d in sorted(mine, key=lambda d: d.draw_id) for link in (f"draw {d.draw_id}", f"re-run {d.draw_id}")]]
    # The figure, as published, as frozen and as recomputed from the ballots' events (value and n).
    assert trace.figure["overall"] == published["overall"] == trace.recomputed["overall"]
    assert trace.recomputed["overall"]["value"] is not None and trace.recomputed["overall"]["n"] > 0
    assert len(trace.ballots) == published["ballots"] and not set(trace.ballots) & set(trace.voided)
    assert trace.snapshot["snapshot_id"] == rnd.snapshot["snapshot_id"]
    assert trace.snapshot["positions"] == rnd.snapshot["positions"]
    assert trace.snapshot["chain_heads"]["ballots"] == rnd.snapshot["chain_heads"]["ballots"]
    # One pseudonymous unit per ballot; the draws are the province's, their seeds hash to the commitments
    # the demo made before revealing them, and each re-runs from the province's frame file.
    assert len(trace.units) == len(trace.ballots) and all(len(u) == 24 for u in trace.units)
    assert {d["draw_id"]: d["seed_commitment"] for d in trace.draws} == {d.draw_id: d.seed_commitment for d in mine}
    assert all(hashlib.sha256(d["seed"].encode()).hexdigest() == d["seed_commitment"] for d in trace.draws)
    assert all(d["committed_at"] < d["revealed_at"] and d["rerun"] is True for d in trace.draws)
    assert f"sipas trace figure {rnd.release['release_id']} {province}" in printed


def test_sipas_trace_prints_every_link_and_exits_1_on_a_tampered_release_file(platform, demo, tmp_path):
    from typer.testing import CliRunner

    from sipas_cli.main import app

    rnd, _ = demo
    province = rnd.provinces_published[0]["id"]
    env = {"SIPAS_HOME": str(platform.home), "COLUMNS": "200"}
    args = ["trace", "figure", rnd.release["release_id"], province, "--port-base", str(platform.ports["postgres"])]
    result = CliRunner().invoke(app, [*args, "--frame", rnd.frames_folder], env=env)
    assert result.exit_code == 0, result.output
    assert "every link holds" in result.output and "ballots chain" in result.output and "re-run" in result.output
    edited = json.loads(Path(rnd.manifest_path).read_text(encoding="utf-8"))
    figure = next(u for u in edited["manifest"]["figures"]["units"] if u["id"] == province)
    figure["overall"]["value"] = str(Decimal(figure["overall"]["value"]) + Decimal("0.5"))
    (tmp_path / "edited.json").write_text(json.dumps(edited, ensure_ascii=False), encoding="utf-8")
    result = CliRunner().invoke(app, [*args, "--release-file", str(tmp_path / "edited.json"), "--json"], env=env)
    assert result.exit_code == 1, result.output
    failed = {c["link"] for c in json.loads(result.output)["checks"] if not c["ok"]}
    assert {"signature", "recount", "figures digest", "snapshot figure"} <= failed


def test_a_wrong_seed_in_a_release_file_is_detected(platform, demo):
    rnd, _ = demo
    province = rnd.provinces_published[0]["id"]
    draw = next(d for d in rnd.draws if d.province == province)
    edited = json.loads(Path(rnd.manifest_path).read_text(encoding="utf-8"))
    sealed = next(c for c in edited["manifest"]["seed_commitments"] if c["draw_id"] == draw.draw_id)
    sealed["seed"] = secrets.token_hex(32)
    trace = _trace(platform, rnd, province, release_file=edited)
    failed = {c.link: c.detail for c in trace.checks if not c.ok}
    assert set(failed) == {"signature", f"draw {draw.draw_id}"}, trace.problems
    assert "the manifest's seed or commitment" in failed[f"draw {draw.draw_id}"]
    assert not trace.ok and trace.recomputed["overall"] == trace.figure["overall"]  # the figure itself still holds
