"""No secret leaves where it is kept (issue 9, "Must show"): after an end-to-end round with every process
running — a campaign sampled from a frame of named respondents, ballots answered online and through
the respondent page, a clerk signed in on the clerk page, figures frozen, a release published, a
partner key and a webhook made and used, and refusals on the way — no bearer token, JWT, service
token, signing or sealing key, API key, webhook secret, ballot code, database password, respondent's
name or phone number appears in any log line, event (stored or on the wire), metric or error body,
nor in any database but the one that holds it by design (ballots its codes, publishing the secret it
signs webhook deliveries with).

This platform is its own (not the session's): its services reach PostgreSQL with a password in their
database URL, so that the password is a secret they hold and could leak; the embedded server trusts
local connections, so the password is carried but never checked.
"""

from __future__ import annotations

import base64
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import traversable_tmp, wait_for
from tests.e2e.conftest import sampling_round

from sipas_cli.platform import SERVICES, Platform
from sipas_cli.registry_client import RegistryClient
from sipas_cli.stack import free_port_block
from sipas_cli.stack.postgres import _bin, _client_env
from sipas_kit import csrf

pytestmark = pytest.mark.e2e
PASSWORD = "pw-" + secrets.token_hex(16)
SEED = "5ec2e75" * 8 + "00"
NAME, PHONE = "Đinh Thị Bímật", "0961234"  # distinctive: they cannot occur by chance anywhere else
KEPT_BY = {"ballot code": {"sipas_ballots"}, "webhook secret": {"sipas_publishing"}}
"""The databases that hold a secret by design: ballots its codes, publishing the secret it signs with."""


@pytest.fixture(scope="module")
def sealed() -> Iterator[Platform]:
    names = ("postgres", "nats", "nats_monitor", *SERVICES)
    base = free_port_block(len(names))
    ports = {n: base + i for i, n in enumerate(names)}
    urls = {f"SIPAS_{s.upper()}_DATABASE_URL":
            f"postgresql+asyncpg://sipas_app:{PASSWORD}@127.0.0.1:{ports['postgres']}/sipas_{s}" for s in SERVICES}
    p = Platform(traversable_tmp("sipas-secrets-"), ports=ports, log_format="json")
    with pytest.MonkeyPatch.context() as env:
        for name, url in urls.items():
            env.setenv(name, url)
        try:
            p.start_infrastructure()
            assert p.pg is not None
            p.pg.psql(f"CREATE ROLE sipas_app LOGIN SUPERUSER PASSWORD '{PASSWORD}'")
            p.start_services()
            p.wait_ready()
            yield p
        finally:
            p.stop()
            shutil.rmtree(p.home, ignore_errors=True)


class Recorder:
    """Every request of the round goes through here; its 4xx and 5xx are kept with what was sent (an
    answer may repeat to a caller what that caller sent, as the respondent page shows its own code)."""

    def __init__(self) -> None:
        self.errors: list[tuple[str, str]] = []
        self.client = httpx.Client(timeout=60, event_hooks={"response": [self._keep]})

    def _keep(self, response: httpx.Response) -> None:
        if response.status_code >= 400:
            response.read()
            request = response.request
            sent = f"{request.url} {request.headers} {request.content.decode(errors='replace')}"
            self.errors.append((sent, f"{response.status_code} {response.headers} {response.text}"))


def bearer(p: Platform, who: str, role: str, province: str | None = None) -> dict[str, str]:
    return {"Authorization": f"Bearer {p.identity.mint(who, role, province)}"}


def sql(p: Platform, query: str, database: str) -> list[str]:
    assert p.pg is not None
    return p.pg.psql(query, database=database).split()


def the_round(p: Platform, http: httpx.Client) -> dict[str, Any]:
    """Everything a year's round does, through the public APIs; returns the secrets it handed out."""
    admin = bearer(p, "admin@bnv", "ministry-admin")
    with RegistryClient(p.url("registry"), admin["Authorization"].split()[1]) as client:
        client.load_builtins()
        client.load_maps()
    sampling, ballots = p.url("sampling"), p.url("ballots")
    rows = [f"SEC-W1,Chứng thực,chứng thực,K-{i:04d},2026-02-0{1 + i % 9},cá nhân,{NAME} {i},{PHONE}{i:03d},Số {i}"
            for i in range(50)]
    draw = sampling_round(p, admin, code="SEC-W1", frame_rows=rows, seed=SEED, collection=("2026-01-01", "2099-12-31"))
    cid, op = draw["campaign_id"], draw["op"]
    unit = http.get(sampling + f"/v1/draws/{draw['draw_id']}/units", params={"role": "selected"}, headers=op).json()[0]
    http.get(sampling + f"/v1/units/{unit['unit_id']}/contact", params={"purpose": "gọi điện hỏi lại"},
             headers=op).raise_for_status()
    http.get(sampling + f"/v1/draws/{draw['draw_id']}/field-list.csv", headers=op).raise_for_status()

    codes = wait_for(lambda: sql(p, f"SELECT code FROM ballots WHERE campaign_id = '{cid}' AND status = 'issued' "
                                    "ORDER BY code", "sipas_ballots"), timeout=60)
    criteria = next(d for d in http.get(p.url("scoring") + "/v1/reference/definitions", headers=admin).json()
                    if d["kind"] == "instrument" and d["def_id"] == "sipas-2017")["definition"]
    answers = {i["code"]: 4 for f in criteria["factors"] for i in f["items"]}
    assert http.get(ballots + f"/b/{codes[0]}").status_code == 200  # the respondent opens the page
    token = csrf.token_in(http.get(ballots + f"/b/{codes[30]}").text)
    sent = http.post(ballots + f"/b/{codes[30]}", content=f"a_1.1=4&csrf_token={token}".encode(),
                     headers={"Content-Type": "application/x-www-form-urlencoded"})  # too little: the code stays good
    assert sent.status_code == 422, sent.text
    for code in codes[:30]:
        r = http.post(ballots + "/v1/submissions", json={"code": code, "campaign_id": cid, "answers": answers})
        assert r.status_code == 201, r.text
    again = http.post(ballots + "/v1/submissions", json={"code": codes[0], "campaign_id": cid, "answers": answers})
    assert again.status_code == 422  # a used code: an error body that must not repeat it
    clerk_token = p.identity.mint("clerk@hn", "clerk", "01")
    assert http.get(ballots + "/clerk/login", params={"token": clerk_token}, follow_redirects=False).status_code == 303

    # Refusals: a forged token, another province, a partner where partners do not read.
    forged = clerk_token[:-6] + "AAAAAA"
    for headers in ({"Authorization": f"Bearer {forged}"}, bearer(p, "op79@hcm", "province-operator", "79"),
                    bearer(p, "partner@x", "partner")):
        assert http.get(sampling + f"/v1/draws/{draw['draw_id']}/units", headers=headers).status_code >= 400

    wait_for(lambda: [u for u in http.get(p.url("scoring") + f"/v1/campaigns/{cid}/scores", headers=admin).json()
                      .get("units", []) if u["level"] == "agency" and u["overall"]["n"] == 30], timeout=60)
    snapshot = http.post(p.url("scoring") + f"/v1/campaigns/{cid}/snapshots", headers=admin).json()
    publishing, lan, minh = p.url("publishing"), bearer(p, "lan@bnv", "ministry-admin"), bearer(p, "minh@bnv",
                                                                                                "ministry-admin")
    draft = wait_for(lambda: (r := http.post(publishing + "/v1/releases", headers=lan, json={
        "snapshot_id": snapshot["snapshot_id"]})).status_code == 201 and r.json(), timeout=60)
    for step, who in (("submit", lan), ("approve", minh), ("publish", minh)):
        http.post(f"{publishing}/v1/releases/{draft['release_id']}/{step}", headers=who, json={}).raise_for_status()
    api_key = http.post(publishing + "/v1/api-keys", headers=admin, json={
        "name": "báo chí", "scopes": ["releases:read", "webhooks:manage"]}).json()["api_key"]
    assert http.get(publishing + "/v1/releases", headers={"X-Api-Key": api_key}).status_code == 200
    assert http.get(publishing + "/v1/releases", headers={"X-Api-Key": api_key[:-3] + "xyz"}).status_code == 401
    webhook = http.post(publishing + "/v1/webhooks", headers={"X-Api-Key": api_key},
                        json={"url": "http://127.0.0.1:9/hook"}).json()
    wait_for(lambda: all(pr["position"] > 0 for s in SERVICES if s != "registry"
                         for pr in http.get(p.url(s) + "/v1/ops/projections", headers=admin).json()), timeout=60)
    audit = {s: http.get(p.url(s) + "/v1/audit", headers=bearer(p, "auditor@ttcp", "auditor")).text
             for s in SERVICES}
    return {"tokens": [admin, op, lan, minh], "clerk": clerk_token, "forged": forged, "codes": codes[:31],
            "api key": api_key, "webhook secret": webhook["secret"], "audit": audit}


def needles(p: Platform, handed: dict[str, Any]) -> dict[str, list[str]]:
    """Each secret, as the strings it could leak as (a JWT also by its signature alone)."""
    tokens = [h["Authorization"].split()[1] for h in handed["tokens"]] + [handed["clerk"], handed["forged"]]
    for service, proc in p.procs.items():
        environ = Path(f"/proc/{proc.pid}/environ").read_bytes().split(b"\0")
        tokens += [v.decode().split("=", 1)[1] for v in environ
                   if v.startswith(f"SIPAS_{service.upper()}_SERVICE_TOKEN=".encode())]
    assert len(tokens) == 6 + len(SERVICES)
    master = (p.home / "keys" / "sampling-master.key").read_bytes()
    found = {
        "bearer token or JWT": tokens + [t.rsplit(".", 1)[1] for t in tokens],
        "JWT signing key": pem_body(p.home / "keys" / "jwt-signing.pem"),
        "release-signing key": pem_body(p.home / "publishing" / "release-signing.pem"),
        "sampling master key": [master.hex(), base64.b64encode(master).decode(), base64.urlsafe_b64encode(master)
                                .decode().rstrip("=")],
        "database password": [PASSWORD],
        # The key is "sipas_<key id>_<secret>"; the secret (token_urlsafe) may hold "_" itself, so it is what
        # follows the key id, never what follows the last "_" (once, a two-letter tail matched random bytes).
        "API key": [handed["api key"], handed["api key"].removeprefix("sipas_").split("_", 1)[1]],
        "webhook secret": [handed["webhook secret"]],
        "ballot code": handed["codes"],
        "respondent's name or phone": [NAME, NAME.split()[-1], PHONE],
    }
    assert all(found.values()), found
    return found


def pem_body(path: Path) -> list[str]:
    lines = [line for line in path.read_text().splitlines() if line and not line.startswith("-----")]
    return ["".join(lines)]


def test_no_secret_in_logs_events_metrics_error_bodies_or_other_databases(sealed):
    p, recorder = sealed, Recorder()
    with recorder.client as http:
        handed = the_round(p, http)
        metrics = {s: http.get(p.url(s) + "/metrics").text for s in SERVICES}
    assert len(recorder.errors) >= 5  # the used code and the refusals above, kept to be read
    logs = {f.stem: f.read_text(errors="replace") for f in (p.home / "logs").glob("*.log")}
    assert {*SERVICES, *(f"migrate-{s}" for s in SERVICES)} <= logs.keys()  # the services' and their migrations'
    places: dict[str, str] = {f"{name} log": text for name, text in logs.items() if not name.startswith("migrate-")}
    migrations = {f"{name} log": text for name, text in logs.items() if name.startswith("migrate-")}  # may be empty
    places |= {f"{s} /metrics": text for s, text in metrics.items()}
    places |= {f"{s} audit export": text for s, text in handed["audit"].items()}  # what auditors take away
    places |= {f"{s} event_store": "\n".join(sql(p, "SELECT body FROM event_store", f"sipas_{s}")) for s in SERVICES}
    for path in (p.home / "nats").rglob("*"):
        if path.is_file():
            places[f"NATS {path.name}"] = path.read_bytes().decode("utf-8", errors="replace")
    assert p.pg is not None
    for service in SERVICES:  # sampling's too: it keeps names and phones only sealed
        places[f"database sipas_{service}"] = subprocess.run(
            [_bin("pg_dump"), "--data-only", "-h", "127.0.0.1", "-p", str(p.ports["postgres"]), "-U", "postgres",
             f"sipas_{service}"], capture_output=True, text=True, env=_client_env(), check=True).stdout
    assert all(places.values()) and "BallotAccepted" in places["ballots event_store"]
    places |= migrations
    secrets_ = needles(p, handed)
    found = [f"{what} in {where}" for what, strings in secrets_.items() for where, text in places.items()
             if where.removeprefix("database ") not in KEPT_BY.get(what, set()) and any(s in text for s in strings)]
    found += [f"{what} in the error answer to {sent[:80]}" for what, strings in secrets_.items()
              for sent, answer in recorder.errors if any(s in answer and s not in sent for s in strings)]
    assert found == []
