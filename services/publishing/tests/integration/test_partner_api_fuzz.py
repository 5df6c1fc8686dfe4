"""The partner API fuzzed with schemathesis (its pytest integration, the app in-process over ASGI,
real PostgreSQL and NATS): whatever a partner sends, valid or not, no answer is a 5xx and every
error is ``application/problem+json``.

The database holds one published release, one retracted, one draft and a webhook subscription, and
generated path parameters are now and then swapped for those real ids, so the fuzzing reaches the
code behind the 404s too. Examples are bounded (``max_examples``) to keep the run short.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from conftest import apply_events, service_database
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.python import asgi

from sipas_events import canonical
from sipas_events.catalogue.scoring import ScoreSnapshotTaken
from sipas_publishing.domain.manifest import figures_digest
from sipas_publishing.entrypoints.app import create_app
from sipas_publishing.projections.snapshots import snapshot_projection
from sipas_publishing.settings import PublishingSettings

PARTNER_TAGS = ("partner API", "score events")
DOCUMENT: dict[str, Any] = {
    "campaign_id": "c26", "year": 2026, "small_cell_n": 30,
    "scheme": {"id": "share-satisfied", "version": 1}, "instrument": {"id": "sipas-2017", "version": 1},
    "units": [
        {"level": "national", "id": "VN", "code": "VN", "name": "Việt Nam", "province": None, "suppressed": None,
         "overall": {"value": "71.20", "n": 120, "ci": ["66.10", "76.30"], "ci_method": "wilson"},
         "factors": {"F1": {"value": "70.00", "n": 120}}, "items": {}},
        {"level": "province", "id": "P:01", "code": "01", "name": "Hà Nội", "province": "01", "suppressed": None,
         "overall": {"value": "71.20", "n": 120, "ci": ["66.10", "76.30"], "ci_method": "wilson"},
         "factors": {}, "items": {}, "rank": {"rank": 1, "best": 1, "worst": 1, "of": 1}},
        {"level": "agency", "id": "a1", "code": "H01.a1", "name": "Sở Tư pháp", "province": "01", "suppressed": None,
         "overall": {"value": "72.00", "n": 108, "ci": ["66.00", "78.00"], "ci_method": "wilson"},
         "factors": {}, "items": {}},
        {"level": "agency", "id": "c1", "code": "H01.c1", "name": "Sở Y tế", "province": "01",
         "suppressed": "insufficient_sample", "overall": {"value": None, "n": 12, "ci": None}, "factors": {},
         "items": {}},
    ]}


class FrozenScoring:
    """Scoring as publishing sees it: one frozen document's canonical bytes, and no other campaigns."""

    async def document(self, snapshot_id: str) -> bytes:
        return canonical.dumpb(DOCUMENT)

    async def comparison(self, campaign_id: str, against: str) -> dict[str, Any] | None:
        return None


def _snapshot_known(database_url: str) -> None:
    event = ScoreSnapshotTaken(
        snapshot_id="s-fuzz", campaign_id="c26", province=None, taken_at=dt.datetime(2026, 11, 30, tzinfo=dt.UTC),
        positions={"ballots": 120}, chain_heads={"ballots": "ab" * 32}, figures_digest=figures_digest(DOCUMENT))
    asyncio.run(apply_events(database_url, snapshot_projection, [event], "scoring"))


def _ok(response: Any, status: int = 200) -> dict[str, Any]:
    assert response.status_code == status, response.text
    return response.json()  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def partner(stack: Any, identity: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The app with its lifespan on schemathesis's own event-loop thread (where every fuzzed request
    runs too), a published, a retracted and a draft release, and a partner key with every scope."""
    url = service_database(stack, "publishing")
    _snapshot_known(url)
    app = create_app(PublishingSettings(database_url=url, nats_url=stack.nats.url, log_format="console",
                                        jwt_jwks_file=identity.jwks_path, worker_interval=0.2,
                                        data_dir=tmp_path_factory.mktemp("publishing")))

    def staff(who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {identity.mint(who, 'ministry-admin')}"}

    try:
        with asgi.get_client(app) as client:
            app.state.ctx.scoring_source = FrozenScoring()

            def release(publish: bool) -> str:
                release_id: str = _ok(client.post("/v1/releases", json={"snapshot_id": "s-fuzz"},
                                                  headers=staff("lan@bnv")), 201)["release_id"]
                if publish:
                    for step, who in (("submit", "lan@bnv"), ("approve", "minh@bnv"), ("publish", "minh@bnv")):
                        _ok(client.post(f"/v1/releases/{release_id}/{step}", json={}, headers=staff(who)))
                return release_id

            published, retracted, draft = release(True), release(True), release(False)
            _ok(client.post(f"/v1/releases/{retracted}/retract", json={"reason": "nhầm số liệu"},
                            headers=staff("minh@bnv")))
            key = _ok(client.post("/v1/api-keys", headers=staff("lan@bnv"), json={
                "name": "fuzz", "scopes": ["releases:read", "feed:read", "webhooks:manage"],
                "rate_per_minute": 100000}), 201)["api_key"]
            # A public address literal (no DNS); nothing is published later, so nothing is ever sent to it.
            subscription = _ok(client.post("/v1/webhooks", json={"url": "https://93.184.216.34/hook"},
                                           headers={"X-Api-Key": key}), 201)["subscription_id"]
            yield {"app": app, "key": key, "admin": staff("fuzz-admin@bnv"), "ids": {
                "release_id": [published, retracted, draft], "unit_id": ["a1", "P:01", "c1", "VN"],
                "subscription_id": [subscription]}}
    finally:
        asgi.shutdown_lifespans()  # before the database goes away
        stack.pg.psql(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')


@schemathesis.check
def errors_are_problem_json(ctx: Any, response: schemathesis.Response, case: schemathesis.Case) -> bool | None:
    """Every 4xx/5xx is RFC 9457 problem+json whose ``status`` is the response's and which has a title."""
    if response.status_code < 400:
        return None
    content_type = (response.headers.get("content-type") or [""])[0]
    assert content_type == "application/problem+json", f"{response.status_code} answered as {content_type!r}"
    problem = response.json()
    assert problem["status"] == response.status_code and problem["title"], problem
    return True


def _openapi() -> dict[str, Any]:
    """The service's OpenAPI document; building it needs routes only (nothing connects)."""
    unused = "postgresql+asyncpg://unused/openapi"
    return create_app(PublishingSettings(database_url=unused, nats_url="nats://unused:4222",
                                         jwt_jwks_file="unused.json")).openapi()


# Loaded eagerly from the document, the requests sent to the fixture's app (``case.call(app=…)``):
# schemathesis.pytest.from_fixture reads ``Node._nodeid``, which pytest 9 no longer has.
schema = schemathesis.openapi.from_dict(_openapi()).include(tag=list(PARTNER_TAGS))


@schema.parametrize()
@schema.given(real=st.integers(min_value=0, max_value=5), caller=st.sampled_from(["key", "key", "key", "bad", "none"]))
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_partner_api_never_fails_and_speaks_problem_json(case: Any, real: int, caller: str,
                                                         partner: dict[str, Any]) -> None:
    for name in list(case.path_parameters or {}):
        known = partner["ids"].get(name)
        if known and real < len(known):  # most of the time a real id, else what was generated
            case.path_parameters[name] = known[real]
    if case.path == "/v1/feed":
        case.query = {**(case.query or {}), "follow": "false"}  # a followed stream never ends
    headers = {"none": {}, "bad": {"X-Api-Key": "sipas_0000_nope"}, "key": {"X-Api-Key": partner["key"]}}[caller]
    if "administration" in (case.operation.tags or []) and caller == "key":
        headers = partner["admin"]  # keys are managed by the ministry, signed in
    response = case.call(app=partner["app"], headers=headers)
    case.validate_response(response, checks=[not_a_server_error, errors_are_problem_json], headers=headers)


@pytest.mark.parametrize(("method", "path", "extra"), [
    ("GET", "/v1/releases?campaign_id=c%00", {}),
    ("GET", "/v1/releases/r%00", {}),
    ("GET", "/v1/units/a%001/history", {}),
    ("GET", "/v1/releases/r/scores?unit=%00", {}),
    ("GET", "/v1/webhooks/s%00/deliveries", {}),
    ("GET", "/v1/feed?follow=false&after=9223372036854775808", {}),
    ("GET", "/v1/feed?follow=false", {"headers": {"Last-Event-ID": "²"}}),
    ("GET", "/v1/feed?follow=false", {"headers": {"Last-Event-ID": "99999999999999999999"}}),
    ("POST", "/v1/webhooks", {"json": {"url": "http://[::1/hook"}}),
    ("POST", "/v1/webhooks", {"json": {"url": "http://example.com:99999/hook"}}),
    ("POST", "/v1/webhooks", {"json": {"url": f"http://{'ä' * 70}.vn/hook"}}),
])
def test_inputs_that_once_made_a_500_are_problems(partner: dict[str, Any], method: str, path: str,
                                                  extra: dict[str, Any]) -> None:
    """Found while fuzzing: NUL (PostgreSQL text refuses it), positions past BIGINT, "²" (a digit to
    str.isdigit, not to int), URLs that urlsplit or IDNA cannot take."""
    headers = {"X-Api-Key": partner["key"]} | extra.pop("headers", {})
    with asgi.get_client(partner["app"]) as client:
        response = client.request(method, path, headers=headers, **extra)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
