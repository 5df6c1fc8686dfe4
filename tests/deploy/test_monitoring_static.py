"""Alert rules and dashboards, checked without a running stack: promtool validates and unit-tests the
rules; every dashboard is well-formed, provisioned, and queries only names the extractor can read.
(That those names are really exported is tests/e2e/test_prometheus_e2e.py's job.)"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).parent))
from deploy_checks import (
    PROMETHEUS,
    ROOT,
    SERVICES,
    dashboard_expressions,
    dashboards,
    metric_names,
    panels,
    queried_metrics,
    recorded_names,
    require_tool,
    rule_expressions,
)


def test_promtool_checks_the_rules_and_their_unit_tests_pass():
    promtool = require_tool("promtool")
    check = subprocess.run([promtool, "check", "rules", "alerts.yml"], cwd=PROMETHEUS, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "SUCCESS" in check.stdout
    tested = subprocess.run([promtool, "test", "rules", "alerts.test.yml"], cwd=PROMETHEUS, capture_output=True,
                            text=True)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout


def test_promtool_would_catch_a_broken_expectation(tmp_path):
    """The unit tests really compare: the same file with one expected value changed fails."""
    promtool = require_tool("promtool")
    (tmp_path / "alerts.yml").write_text((PROMETHEUS / "alerts.yml").read_text())
    broken = (PROMETHEUS / "alerts.test.yml").read_text().replace("6000 messages waiting", "5999 messages waiting")
    (tmp_path / "alerts.test.yml").write_text(broken)
    tested = subprocess.run([promtool, "test", "rules", "alerts.test.yml"], cwd=tmp_path, capture_output=True, text=True)
    assert tested.returncode != 0 and "SipasConsumerLagGrowing" in tested.stdout + tested.stderr


def test_promtool_checks_the_compose_scrape_config(tmp_path):
    promtool = require_tool("promtool")
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    config["rule_files"] = [str(PROMETHEUS / "alerts.yml")]  # the compose path is /etc/prometheus/alerts.yml
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    check = subprocess.run([promtool, "check", "config", "prometheus.yml"], cwd=tmp_path, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    targets = {c["labels"]["service"]: c["targets"] for c in config["scrape_configs"][0]["static_configs"]}
    assert targets == {s: [f"{s}:8000"] for s in SERVICES}


def test_every_alert_the_issue_asks_for_exists_with_a_runbook():
    alerts = {name for name, _ in rule_expressions() if not name.startswith("campaign:")}
    assert {"SipasServiceDown", "SipasConsumerLagGrowing", "SipasDeadLetters", "SipasOutboxBacklog",
            "SipasRejectionRateSpike", "SipasScoreFreshnessOverTarget"} <= alerts
    operations = (ROOT / "docs/operations.md").read_text().lower()
    for group in yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())["groups"]:
        for rule in group["rules"]:
            if "alert" in rule:
                anchor = rule["annotations"]["runbook"].split("#")[1]
                assert f"## {anchor.replace('-', ' ')}" in operations, (rule["alert"], anchor)
                assert rule["labels"]["severity"] in ("warning", "critical")


def test_the_extractor_reads_the_expressions_this_repository_writes():
    assert metric_names('sum by (le, route) (rate(sipas_${service}_http_request_duration_seconds_bucket'
                        '{status=~"5.."}[$__rate_interval]))') == {
        f"sipas_{s}_http_request_duration_seconds_bucket" for s in SERVICES}
    assert metric_names('max by (service) ({__name__=~"sipas_(ballots|scoring)_outbox_backlog"}) > 0 and on (service)'
                        ' sum by (service) (rate(sipas_ballots_events_published_total[5m])) == 0') == {
        "sipas_ballots_outbox_backlog", "sipas_scoring_outbox_backlog", "sipas_ballots_events_published_total"}
    assert metric_names("histogram_quantile(0.95, sum by (le) (rate(x_bucket[10m]))) > 1e3 offset 5m") == {"x_bucket"}
    assert metric_names('up{job="sipas"} == 0 or campaign:r:rate15m > 2 * y') == {"up", "campaign:r:rate15m", "y"}


def test_dashboards_are_well_formed_and_query_the_provisioned_datasource():
    datasource = yaml.safe_load((ROOT / "deploy/grafana/provisioning/datasources/prometheus.yml").read_text())
    uid = datasource["datasources"][0]["uid"]
    boards = dashboards()
    assert set(boards) == {"platform-health.json", "campaign-progress.json", "scoring.json", "publishing.json"}
    assert len({b["uid"] for b in boards.values()}) == len(boards)
    for name, board in boards.items():
        ids = [p["id"] for p in panels(board)]
        assert len(ids) == len(set(ids)), name
        for panel in panels(board):
            if panel["type"] == "row":
                continue
            assert panel["datasource"]["uid"] == uid and panel["targets"], (name, panel["title"])
            grid = panel["gridPos"]
            assert grid["x"] + grid["w"] <= 24 and grid["h"] > 0, (name, panel["title"])
            assert all(t["refId"] and t["expr"] for t in panel["targets"]), (name, panel["title"])


def test_every_dashboard_and_rule_expression_names_metrics_that_follow_the_naming_rule():
    recorded = recorded_names()
    for where, expr in [*dashboard_expressions(), *rule_expressions()]:
        names = metric_names(expr)
        assert names, (where, expr)
        for name in names:
            if ":" in name:
                assert name in recorded, (where, name)
    queried = queried_metrics()
    assert all(n.startswith(tuple(f"sipas_{s}_" for s in SERVICES)) for n in queried), sorted(queried)
    # The issue's panels: per-service health, campaign intake, scoring freshness, publishing.
    for must in ("sipas_ballots_consumer_lag", "sipas_publishing_outbox_backlog", "sipas_scoring_freshness_seconds_bucket",
                 "sipas_ballots_intake_outcomes_total", "sipas_registry_http_request_duration_seconds_bucket",
                 "sipas_scoring_append_to_projection_seconds_bucket", "sipas_publishing_events_appended_total"):
        assert must in queried, must


def test_grafana_provisioning_points_at_the_dashboards():
    provider = yaml.safe_load((ROOT / "deploy/grafana/provisioning/dashboards/sipas.yml").read_text())
    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards/sipas"
