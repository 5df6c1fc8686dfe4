"""The routes the OpenAPI documents leave out (pages, probes, the schema itself) are each accounted
for, and the ones that act on a province's data are probed from another province: a clerk of 79
cannot key a ballot of 01's campaign on the clerk page, an operator of 79 cannot settle 01's
double-entry dispute, and the public report pages never show a draft."""

from __future__ import annotations

import sys
from pathlib import Path
from urllib.parse import urlencode

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from sipas_kit import csrf

sys.path.insert(0, str(Path(__file__).parent))
import worlds
from authz import AWAY, HOME, routes_of

SERVICES = ("registry", "sampling", "ballots", "scoring", "publishing")
EVERY_SERVICE = {
    "/openapi.json": "the API's description: public, as the OpenAPI routes themselves are what is guarded",
    "/docs": "the interactive reading of /openapi.json: public, calls nothing itself",
    "/redoc": "as /docs",
    "/healthz": "liveness probe: says only that the process answers",
    "/readyz": "readiness probe: names its checks (database, migrations, NATS), never their settings",
    "/metrics": "Prometheus scrape: counters only (tests/e2e/test_secrets_scan_e2e.py finds no secret in them); "
                "reachable inside the cluster only (deploy/k8s NetworkPolicies)",
}
PAGES = {
    "ballots": {
        "/b": "the respondent's page: the ballot code is the credential (rate-limited per client by the edge)",
        "/clerk/keying.js": "a static script",
        "/clerk/login": "sets the session cookie from a token it verifies like the API does",
        "/clerk": "the keying page: scope probed by test_a_clerk_keys_only_their_provinces_ballots",
        "/clerk/disputes": "adjudication: scope probed by test_an_operator_settles_only_their_provinces_disputes",
    },
    "publishing": {"/report": "the public report: published releases only, probed by test_no_report_page_shows_a_draft"},
}
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def app_of(service: str):  # type: ignore[no-untyped-def]
    """The app, built without starting it (nothing connects before its lifespan)."""
    import importlib

    module = importlib.import_module(f"sipas_{service}.settings")
    cls = next(v for k, v in vars(module).items() if k.endswith("Settings") and k != "ServiceSettings")
    extra = {"master_key_file": "unused.key"} if service == "sampling" else {}
    settings = cls(database_url="postgresql+asyncpg://unused/x", nats_url="nats://unused:4222",
                   jwt_jwks_file="unused.json", **extra)
    return importlib.import_module(f"sipas_{service}.entrypoints.app").create_app(settings)


@pytest.mark.parametrize("service", SERVICES)
def test_every_route_outside_the_openapi_is_accounted_for(service):
    app = app_of(service)
    documented = {path for path in app.openapi()["paths"]}
    known = EVERY_SERVICE | PAGES.get(service, {})
    outside = {r.path for r in routes_of(app) if r.path not in documented}
    unaccounted = sorted(p for p in outside if not any(p == k or p.startswith(k + "/") for k in known))
    assert outside and unaccounted == []


async def rows(api, sql: str, **params):  # type: ignore[no-untyped-def]
    engine = create_async_engine(api.database_url)
    try:
        async with engine.connect() as conn:
            return [tuple(r) for r in await conn.execute(text(sql), params)]
    finally:
        await engine.dispose()


def signed_in(api, role: str, province: str, subject: str) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {"Cookie": f"sipas_session={api.identity.mint(subject, role, province)}"}


def keyed(campaign_id: str, code: str, answers: dict[str, int], token: str | None) -> bytes:
    return urlencode([("campaign_id", campaign_id), ("code", code), ("csrf_token", token or ""),
                      *[(f"q_{k}", str(v)) for k, v in answers.items()]]).encode()


async def token_of(api, path: str, headers: dict[str, str]) -> str | None:  # type: ignore[no-untyped-def]
    """The CSRF token of the page's form, as the signed-in browser gets it."""
    return csrf.token_in((await api.client.get(path, headers=headers)).text)


async def unused_code(api, campaign_id: str, offset: int) -> str:  # type: ignore[no-untyped-def]
    found = await rows(api, "SELECT code FROM ballots WHERE campaign_id = :c AND status = 'issued' ORDER BY unit_id "
                            "OFFSET :n LIMIT 1", c=campaign_id, n=offset)
    return str(found[0][0])


@pytest.fixture
async def ballots(open_api):
    api = await open_api("ballots")
    await worlds.ballots_world(api)
    return api


async def test_a_clerk_keys_only_their_provinces_ballots(ballots):
    api, answers = ballots, dict.fromkeys(worlds.items(), 4)
    away, home = f"c{AWAY}-matrix", f"c{HOME}-matrix"
    code = await unused_code(ballots, away, 0)
    stranger = signed_in(api, "clerk", HOME, "clerk-79")
    token = await token_of(api, f"/clerk?campaign_id={home}", stranger)  # a good token of the clerk's own form
    assert token
    refused = await api.client.post("/clerk/key", content=keyed(away, code, answers, token), headers=FORM | stranger)
    assert refused.status_code == 404
    assert await rows(api, "SELECT count(*) FROM paper_keyings WHERE code = :c", c=code) == [(0,)]
    assert await rows(api, "SELECT count(*) FROM paper_status WHERE code = :c", c=code) == [(0,)]
    own = await unused_code(ballots, home, 0)  # the same clerk keys their own province's ballot
    keyed_once = await api.client.post("/clerk/key", content=keyed(home, own, answers, token), headers=FORM | stranger)
    assert keyed_once.status_code == 200
    assert await rows(api, "SELECT count(*) FROM paper_keyings WHERE code = :c", c=own) == [(1,)]


async def test_an_operator_settles_only_their_provinces_disputes(ballots):
    api, answers = ballots, dict.fromkeys(worlds.items(), 4)
    away = f"c{AWAY}-matrix"
    code = await unused_code(api, away, 1)
    first_item = next(iter(answers))
    for clerk, value in (("clerk-a", 4), ("clerk-b", 2)):  # two keyings that differ in one answer
        session = signed_in(api, "clerk", AWAY, clerk)
        token = await token_of(api, f"/clerk?campaign_id={away}", session)
        r = await api.client.post("/clerk/key", content=keyed(away, code, answers | {first_item: value}, token),
                                  headers=FORM | session)
        assert r.status_code == 200, r.text
    assert await rows(api, "SELECT status FROM paper_status WHERE code = :c", c=code) == [("disputed",)]
    stranger = signed_in(api, "province-operator", HOME, "judge-79")
    assert (await api.client.get(f"/clerk/disputes/{code}", headers=stranger)).status_code == 404
    settled = await api.client.post(f"/clerk/disputes/{code}", content=f"answers.{first_item}=2".encode(),
                                    headers=FORM | stranger)
    assert settled.status_code == 404
    assert await rows(api, "SELECT status FROM paper_status WHERE code = :c", c=code) == [("disputed",)]
    judge = signed_in(api, "province-operator", AWAY, "judge-01")  # the province's own operator can
    token = await token_of(api, f"/clerk/disputes/{code}", judge)
    settled = await api.client.post(f"/clerk/disputes/{code}",
                                    content=f"answers.{first_item}=2&csrf_token={token}".encode(), headers=FORM | judge)
    assert settled.status_code == 200
    assert await rows(api, "SELECT status FROM paper_status WHERE code = :c", c=code) == [("settled",)]


async def test_no_report_page_shows_a_draft(open_api, tmp_path):
    api = await open_api("publishing", **worlds.settings("publishing", tmp_path))
    world = await worlds.publishing_world(api)
    draft, published = world.values["release_id"][AWAY], world.facts["published"][AWAY]
    for path in ("/report/{}", f"/report/{{}}/provinces/{AWAY}", "/report/{}/download.csv"):
        assert (await api.client.get(path.format(draft))).status_code == 404
        assert (await api.client.get(path.format(published))).status_code == 200
