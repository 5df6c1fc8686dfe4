"""Monitoring against the running platform: every metric a dashboard panel or alert rule queries is
exported by the service it names, and a real Prometheus (Debian's package) scrapes all five services
with deploy/prometheus/prometheus.yml (targets pointed here) and evaluates deploy/prometheus/alerts.yml."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import yaml
from conftest import wait_for

from sipas_cli.stack import free_port

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "deploy"))
from deploy_checks import PROMETHEUS, SERVICES, exported_names, queried_metrics, require_tool

pytestmark = pytest.mark.e2e
SEED = "9a7e" * 16


def reject(platform, campaign_id: str) -> str:
    r = httpx.post(platform.url("ballots") + "/v1/submissions", json={
        "code": "KHONG-CO-MA", "campaign_id": campaign_id, "answers": {}, "channel": "online"})
    assert r.status_code == 422, r.text
    return r.json()["reason"]


@pytest.fixture(scope="module")
def activity(platform, admin, run_round):
    """A little real traffic, so the metrics created on first use exist: intake outcomes (accepted and
    rejected) and scoring's freshness (observed when figures catch up with accepted ballots)."""
    rows = [f"MO-1,Chứng thực,chứng thực,M-{i:04d},2026-02-0{1 + i % 9},cá nhân,Người {i},09{i:08d},Số {i}"
            for i in range(12)]
    round_ = run_round(code="MO-1", frame_rows=rows, seed=SEED, collection=("2026-01-01", "2099-12-31"))
    cid = round_["campaign_id"]
    codes = wait_for(lambda: platform.pg.psql(
        f"SELECT code FROM ballots WHERE campaign_id = '{cid}' AND status = 'issued' ORDER BY code",
        database="sipas_ballots").split(), timeout=60)
    scoring = platform.url("scoring")
    criteria = httpx.get(scoring + "/v1/reference/definitions", headers=admin).json()
    instrument = next(d["definition"] for d in criteria if d["kind"] == "instrument" and d["def_id"] == "sipas-2017")
    from sipas_events.catalogue.registry import InstrumentDefinition
    from sipas_scoring.application.definitions import instrument_of

    items = instrument_of(InstrumentDefinition.model_validate(instrument)).criteria
    for i, code in enumerate(codes[:3]):
        r = httpx.post(platform.url("ballots") + "/v1/submissions", json={
            "code": code, "campaign_id": cid, "answers": {c: 2 + (i + j) % 4 for j, c in enumerate(items)},
            "channel": "online"})
        assert r.status_code == 201, r.text
    reason = reject(platform, cid)

    def scored():
        body = httpx.get(scoring + f"/v1/campaigns/{cid}/scores", headers=admin).json()
        return any(u["level"] == "agency" and u["overall"]["n"] == 3 for u in body.get("units", []))

    wait_for(scored, timeout=60)
    return {"campaign_id": cid, "reason": reason}


def scrape(platform) -> dict[str, str]:
    pages = {s: httpx.get(platform.url(s) + "/metrics") for s in SERVICES}
    assert all(p.status_code == 200 for p in pages.values())
    return {s: p.text for s, p in pages.items()}


def test_every_metric_a_dashboard_or_alert_queries_is_exported(platform, activity):
    exported = {s: exported_names(text) for s, text in scrape(platform).items()}
    queried = queried_metrics()
    assert len(queried) > 40  # every service's backbone metrics, expanded from $service and __name__ regexes
    missing = {}
    for name, where in sorted(queried.items()):
        service = name.split("_")[1]
        if name not in exported[service]:
            missing[name] = sorted(where)
    assert not missing, missing
    # The lazily created metrics are there because of the activity, with its campaign.
    ballots = scrape(platform)["ballots"]
    assert f'campaign="{activity["campaign_id"]}"' in ballots and 'outcome="rejected"' in ballots
    assert "sipas_scoring_freshness_seconds_count" in exported["scoring"]


def _prometheus_config(platform, rules: Path, own_port: int) -> dict:
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    config["global"].update(scrape_interval="1s", evaluation_interval="1s")
    config["rule_files"] = [str(rules)]
    sipas, own = config["scrape_configs"]
    for static in sipas["static_configs"]:
        static["targets"] = [platform.url(static["labels"]["service"]).removeprefix("http://")]
    own["static_configs"] = [{"targets": [f"127.0.0.1:{own_port}"]}]
    return config


def test_a_real_prometheus_scrapes_every_service_and_evaluates_the_rules(platform, activity, tmp_path):
    binary = require_tool("prometheus")
    port = free_port()
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(_prometheus_config(platform, PROMETHEUS / "alerts.yml",
                                                                               port)))
    log = (tmp_path / "prometheus.log").open("wb")
    proc = subprocess.Popen([binary, f"--config.file={tmp_path / 'prometheus.yml'}",
                             f"--storage.tsdb.path={tmp_path / 'data'}", f"--web.listen-address=127.0.0.1:{port}"],
                            stdout=log, stderr=subprocess.STDOUT)
    api = f"http://127.0.0.1:{port}/api/v1"

    def get(path: str, **params):
        try:
            r = httpx.get(api + path, params=params)
        except httpx.TransportError:
            assert proc.poll() is None, (tmp_path / "prometheus.log").read_text()[-3000:]
            return None
        return r.json()["data"] if r.status_code == 200 else None

    try:
        def all_up():
            found = get("/targets")
            targets = found["activeTargets"] if found else []
            return targets if len(targets) == 6 and all(t["health"] == "up" for t in targets) else None

        targets = wait_for(all_up, timeout=60)
        assert {t["labels"].get("service") for t in targets} == {*SERVICES, None}

        def evaluated():
            found = get("/rules")
            groups = found["groups"] if found else []
            done = groups and all(not g["lastEvaluation"].startswith("0001") for g in groups)
            return groups if done and all(r["health"] == "ok" for g in groups for r in g["rules"]) else None

        groups = wait_for(evaluated, timeout=60)
        loaded = {r["name"] for g in groups for r in g["rules"]}
        assert {"SipasServiceDown", "SipasConsumerLagGrowing", "SipasDeadLetters", "SipasOutboxBacklog",
                "SipasRelayStalled", "SipasRejectionRateSpike", "SipasScoreFreshnessOverTarget",
                "campaign:sipas_ballots_rejection_ratio:rate15m"} <= loaded
        assert all(not r.get("lastError") for g in groups for r in g["rules"])
        up = get("/query", query='up{job="sipas"}')["result"]
        assert sorted((s["metric"]["service"], s["value"][1]) for s in up) == sorted((s, "1") for s in SERVICES)
        # Nothing is failing, so the availability and backbone alerts are quiet.
        firing = {a["labels"]["alertname"] for a in get("/alerts")["alerts"]}
        assert not firing & {"SipasServiceDown", "SipasRelayStalled", "SipasDeadLetters"}, firing

        # A rejection Prometheus sees happen moves the recorded rejection ratio of that campaign above 0.
        cid = activity["campaign_id"]
        assert reject(platform, cid) == activity["reason"]

        def ratio():
            found = get("/query", query=f'campaign:sipas_ballots_rejection_ratio:rate15m{{campaign="{cid}"}}')
            values = [float(s["value"][1]) for s in (found or {"result": []})["result"]]
            return values if values and values[0] > 0 else None

        assert wait_for(ratio, timeout=60)[0] <= 1
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()
