"""The first vertical slice, with every service running as its own process over the embedded stack.

An agency registered over HTTP in the registry is stored as an event, relayed to JetStream,
consumed by the ballots service into its projection and visible through the ballots API.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid

import httpx
import pytest
from conftest import wait_for

from sipas_cli.platform import SERVICES
from sipas_cli.registry_client import MAP34_FROM, MAP63_FROM, province_id

pytestmark = pytest.mark.e2e


HANOI = province_id("01", MAP63_FROM)
HCMC = province_id("79", MAP34_FROM)  # merged with 74 and 77 on 2025-07-01


def agency_body(**over):
    province = over.get("province", "01")
    parent = {"01": HANOI, "79": HCMC}[province]
    return {"code": f"T{uuid.uuid4().hex[:8]}", "name": "Ủy ban nhân dân phường Ba Đình", "level": "commune",
            "province": province, "parent_id": parent, "valid_from": "2025-07-01"} | over


def test_every_service_is_ready(platform):
    for service in SERVICES:
        r = httpx.get(platform.url(service) + "/readyz")
        assert r.status_code == 200, (service, r.text)
        assert r.json()["checks"] == {"database": "ok", "migrations": "ok", "nats": "ok"}
        assert httpx.get(platform.url(service) + "/metrics").text.count(f"sipas_{service}_") > 5


def test_registered_agency_reaches_the_ballots_projection(platform, admin):
    body = agency_body()
    r = httpx.post(platform.url("registry") + "/v1/agencies", json=body,
                   headers=admin | {"X-Correlation-Id": "e2e-slice-1"})
    assert r.status_code == 201, r.text
    agency = r.json()
    assert agency["name"] == body["name"] and agency["version"] == 1 and agency["parent_id"] == HANOI
    assert r.headers["X-Correlation-Id"] == "e2e-slice-1"

    def in_ballots():
        page = httpx.get(platform.url("ballots") + "/v1/reference/agencies", headers=admin,
                         params={"province": "01", "limit": 500}).json()
        return [a for a in page["items"] if a["agency_id"] == agency["agency_id"]]

    [known] = wait_for(in_ballots)
    assert known["code"] == body["code"] and known["name"] == body["name"] and known["source_position"] >= 1
    # The event carries the request's correlation id and actor, as the producer's replay endpoint shows.
    [event] = [e for e in registry_events(platform, admin) if e["data"].get("agency_id") == agency["agency_id"]]
    assert event["correlationid"] == "e2e-slice-1" and event["actor"] == "admin@test"
    assert event["type"] == "vn.gov.sipas.registry.AgencyRegistered.v1" and event["province"] == "01"
    # The consumer's log lines carry the same correlation id.
    wait_for(lambda: "e2e-slice-1" in (platform.home / "logs" / "ballots.log").read_text())


def registry_events(platform, admin) -> list[dict]:
    """Every event in the registry's store, page by page through its replay endpoint."""
    events, after = [], 0
    while True:
        page = httpx.get(platform.url("registry") + "/v1/events", headers=admin,
                         params={"after": after, "limit": 5000}, timeout=60).json()["events"]
        if not page:
            return events
        events += page
        after = page[-1]["position"]


def _agency_count(platform, admin):
    return len(httpx.get(platform.url("registry") + "/v1/agencies", headers=admin,
                         params={"limit": 500, "province": "01"}).json()["items"])


def test_bad_input_is_refused_precisely_and_writes_nothing(platform, admin):
    url = platform.url("registry") + "/v1/agencies"
    before = _agency_count(platform, admin)

    r = httpx.post(url, content=b'{"code": "X1", "name": ', headers=admin | {"Content-Type": "application/json"})
    assert r.status_code == 400 and r.headers["content-type"] == "application/problem+json"
    assert r.json()["title"] == "Malformed JSON"

    r = httpx.post(url, json=agency_body(valid_from="not-a-date", level="planet"), headers=admin)
    assert r.status_code == 422
    fields = {e["field"] for e in r.json()["errors"]}
    assert fields == {"body.valid_from", "body.level"}

    r = httpx.post(url, json=agency_body(colour="red"), headers=admin)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "body.colour"

    r = httpx.post(url, json=agency_body(parent_id=str(uuid.uuid4())), headers=admin)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "body.parent_id"

    r = httpx.post(url, json=agency_body(parent_id=None), headers=admin)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "body.parent_id"

    r = httpx.post(url, json=agency_body())
    assert r.status_code == 401 and "missing bearer token" in r.json()["detail"]

    expired = platform.identity.mint("old", "ministry-admin", ttl=60,
                                     now=dt.datetime.now(dt.UTC) - dt.timedelta(hours=2))
    r = httpx.post(url, json=agency_body(), headers={"Authorization": f"Bearer {expired}"})
    assert r.status_code == 401 and r.json()["detail"] == "token expired"

    r = httpx.post(url, json=agency_body(), headers={"Authorization": "Bearer not.a.jwt"})
    assert r.status_code == 401

    hanoi = {"Authorization": f"Bearer {platform.identity.mint('op01', 'province-operator', province='01')}"}
    elsewhere = agency_body(province="79")
    r = httpx.post(url, json=elsewhere, headers=hanoi)
    assert r.status_code == 403 and "province 79" in r.json()["detail"]

    clerk = {"Authorization": f"Bearer {platform.identity.mint('c1', 'clerk', province='01')}"}
    r = httpx.post(url, json=agency_body(), headers=clerk)
    assert r.status_code == 403

    assert _agency_count(platform, admin) == before
    assert all(e["data"].get("code") != elsewhere["code"] for e in registry_events(platform, admin))


def test_duplicate_code_is_a_conflict(platform, admin):
    url = platform.url("registry") + "/v1/agencies"
    body = agency_body()
    assert httpx.post(url, json=body, headers=admin).status_code == 201
    r = httpx.post(url, json=body | {"name": "Khác"}, headers=admin)
    assert r.status_code == 409 and r.json()["errors"][0]["field"] == "body.code"


def test_idempotency_key_replays_and_refuses_reuse(platform, admin):
    url = platform.url("registry") + "/v1/agencies"
    body = agency_body()
    key = {"Idempotency-Key": f"k-{uuid.uuid4()}"}
    first = httpx.post(url, json=body, headers=admin | key)
    again = httpx.post(url, json=body, headers=admin | key)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json() and again.headers["Idempotent-Replayed"] == "true"
    other = httpx.post(url, json=agency_body(), headers=admin | key)
    assert other.status_code == 422 and other.json()["title"] == "Idempotency key reused"
    listed = httpx.get(url, headers=admin, params={"limit": 500, "province": "01"}).json()["items"]
    assert sum(a["code"] == body["code"] for a in listed) == 1


def test_province_operator_sees_only_their_province(platform, admin):
    url = platform.url("registry") + "/v1/agencies"
    created = httpx.post(url, json=agency_body(province="79", name="Phường Sài Gòn"), headers=admin).json()
    hanoi = {"Authorization": f"Bearer {platform.identity.mint('op01', 'province-operator', province='01')}"}
    assert httpx.get(f"{url}/{created['agency_id']}", headers=hanoi).status_code == 404
    assert httpx.get(url, headers=hanoi, params={"province": "79"}).status_code == 403
    mine = httpx.get(url, headers=hanoi).json()["items"]
    assert mine and all(a["province"] == "01" for a in mine)


def test_projection_rebuild_is_identical(platform, admin):
    ops = platform.url("ballots") + "/v1/ops/projections"
    head = httpx.get(platform.url("registry") + "/v1/events", headers=admin, params={"limit": 0}).json()["head"]

    def caught_up():  # compare like with like: the digest once every registry event so far is applied
        found = {p["name"]: p for p in httpx.get(ops, headers=admin).json()}.get("registry-reference")
        return found if found and found["position"] >= head else None

    before = wait_for(caught_up, timeout=120)
    assert before["rows"] >= 97
    rebuilt = httpx.post(f"{ops}/registry-reference/rebuild", headers=admin, timeout=120).json()
    assert rebuilt["sha256"] == before["sha256"] and rebuilt["rows"] == before["rows"]
    assert json.dumps(rebuilt)  # a plain JSON document


def test_operator_cli_reads_projections_and_dead_letters(platform, monkeypatch):
    from typer.testing import CliRunner

    from sipas_cli.main import app

    monkeypatch.setenv("SIPAS_HOME", str(platform.home))
    runner = CliRunner()
    listed = runner.invoke(app, ["projections", "list", "--service", "ballots", "--url", platform.url("ballots")])
    assert listed.exit_code == 0, listed.output
    assert "'name': 'registry-reference'" in listed.output and "'producer': 'registry'" in listed.output
    dead = runner.invoke(app, ["dlq", "list", "--service", "ballots", "--url", platform.url("ballots")])
    assert dead.exit_code == 0 and "dead letters" in dead.output
    missing = runner.invoke(app, ["dlq", "replay", str(uuid.uuid4()), "--service", "ballots",
                                  "--url", platform.url("ballots")])
    assert missing.exit_code == 1 and "404" in missing.output
