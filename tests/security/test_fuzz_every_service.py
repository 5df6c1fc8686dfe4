"""schemathesis against every service (issue 9, "Must show"): requests generated from each service's
OpenAPI, valid ones and ones that break the schema, sent to the service running in-process over the
real stack with the authorisation matrix's seeded world. No answer is a 5xx; every error is
``application/problem+json`` whose ``status`` is the response's.

Cases are drawn by schemathesis's strategies, deterministically (``derandomize``) and a bounded
number per operation (on every core, while the world is seeded: ``fuzzcases``), then sent by one
async client: half of them with their path ids swapped for the world's real ones (so the fuzzing
reaches the code behind the 404s), signed in as the ministry, as a province operator, or not at all. publishing's partner API has its own fuzz with API keys
(services/publishing/tests/integration/test_partner_api_fuzz.py).
"""

from __future__ import annotations

import asyncio
import itertools
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).parent))
import worlds
from authz import HOME, PROBLEM
from fuzzcases import cases, pool

pytestmark = pytest.mark.asyncio
SERVICES = ("registry", "sampling", "ballots", "scoring", "publishing")
CALLERS = ("ministry-admin", "ministry-admin", "province-operator", None)
DROPPED = {"user-agent", "x-schemathesis-testcaseid", "connection", "accept-encoding", "accept"}


@pytest.fixture(scope="module")
def drawing_pool() -> Iterator[Any]:
    with pool() as workers:
        yield workers


def real_ids(world: Any) -> dict[str, list[Any]]:
    return {name: [v for v in options.values() if isinstance(v, str | int)]
            for name, options in world.values.items()}


def request_of(case: Any, index: int, ids: dict[str, list[Any]], auth: Any) -> dict[str, Any]:
    if index % 2 == 0:  # every other case names real resources
        for name in list(case.path_parameters or {}):
            if ids.get(name):
                case.path_parameters[name] = ids[name][index // 2 % len(ids[name])]
    if case.path == "/v1/feed":
        case.query = {**(case.query or {}), "follow": "false"}  # a followed stream never ends
    kwargs = case.as_transport_kwargs(base_url="")
    kwargs.pop("cookies", None)
    if isinstance(kwargs.get("data"), bytes | str):  # a raw body, as httpx wants it named
        kwargs["content"] = kwargs.pop("data")
    headers = {k: v for k, v in (kwargs.pop("headers") or {}).items() if k.lower() not in DROPPED}
    caller = CALLERS[index % len(CALLERS)]
    if caller is not None:
        headers |= auth(caller, HOME if caller == "province-operator" else None)
    return kwargs | {"headers": headers}


def judged(response: httpx.Response) -> str | None:
    """What is wrong with an answer, if anything."""
    if response.status_code >= 500:
        return f"{response.status_code}: {response.text[:300]}"
    if response.status_code >= 400:
        kind = response.headers.get("content-type", "").split(";")[0]
        if kind != PROBLEM:
            return f"{response.status_code} as {kind!r}: {response.text[:200]}"
        doc = response.json()
        if doc.get("status") != response.status_code or not doc.get("title"):
            return f"{response.status_code} with a problem document that says {doc}"
    return None


@pytest.mark.parametrize("service", SERVICES)
async def test_no_generated_request_makes_a_5xx_and_every_error_is_problem_json(open_api, service, tmp_path,
                                                                               drawing_pool):
    api = await open_api(service, **worlds.settings(service, tmp_path))
    drawing = asyncio.create_task(asyncio.to_thread(cases, api.app.openapi(), drawing_pool))
    world = await getattr(worlds, f"{service}_world")(api)
    generated, ids = await drawing, real_ids(world)
    transport = httpx.ASGITransport(app=api.app, raise_app_exceptions=False)
    failures, statuses = [], set()
    async with httpx.AsyncClient(transport=transport, base_url=f"http://{service}", timeout=30) as client:
        for index, case in zip(itertools.count(), generated):
            request = request_of(case, index, ids, api.auth)
            response = await client.request(**request)
            statuses.add(response.status_code)
            if (wrong := judged(response)) is not None:
                failures.append(f"{request['method']} {request['url']} {request.get('params')}: {wrong}")
    print(f"\n{service}: {len(generated)} generated requests, statuses {sorted(statuses)}")
    assert len(generated) >= 6 * len(api.app.openapi()["paths"])  # the bound is on examples, not on coverage
    assert failures == [], "\n".join(failures)


NUL, HUGE = "x\x00y", [2**31, 2**63]
"""What PostgreSQL refuses outright: NUL in text, integers past its int4 and int8."""


def boundary_requests(doc: dict[str, Any], world: Any) -> list[dict[str, Any]]:
    """For every operation, each path and query parameter, and each top-level field of a valid-looking
    JSON body, in turn set to NUL-bearing text or to an integer past PostgreSQL's ranges."""
    from authz import Pick, example

    out = []
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            pick = Pick(world.values, HOME)
            params = {p["name"]: (p, example(p["schema"], doc, pick, p["name"])) for p in op.get("parameters", [])
                      if p["in"] in ("path", "query") and (p["in"] == "path" or p.get("required"))}
            body = None
            if "requestBody" in op:
                body = example(next(iter(op["requestBody"]["content"].values()))["schema"], doc, pick)
            bad = {name: [NUL, *HUGE] for name in params} | {f"body.{k}": [NUL, *HUGE] for k in (body or {})}
            for name, values in bad.items():
                for value in values:
                    given = {n: v for n, (_, v) in params.items()}
                    sent = dict(body) if isinstance(body, dict) else body
                    if name.startswith("body."):
                        sent[name[5:]] = value
                    else:
                        given[name] = value
                    url = path.format(**{p["name"]: quote(str(given[p["name"]]), safe="")
                                         for p, _ in params.values() if p["in"] == "path"})
                    query = {p["name"]: given[p["name"]] for p, _ in params.values() if p["in"] == "query"}
                    out.append({"method": method.upper(), "url": url, "params": query} |
                               ({"json": sent} if sent is not None else {}))
    return out


@pytest.mark.parametrize("service", SERVICES)
async def test_nul_text_and_out_of_range_integers_are_refused_not_500(open_api, service, tmp_path):
    api = await open_api(service, **worlds.settings(service, tmp_path))
    world = await getattr(worlds, f"{service}_world")(api)
    requests = boundary_requests(api.app.openapi(), world)
    transport = httpx.ASGITransport(app=api.app, raise_app_exceptions=False)
    failures = []
    async with httpx.AsyncClient(transport=transport, base_url=f"http://{service}", timeout=30) as client:
        for request in requests:
            response = await client.request(**request, headers=api.auth("ministry-admin"))
            if (wrong := judged(response)) is not None:
                failures.append(f"{request['method']} {request['url']!r} {request['params']} "
                                f"{str(request.get('json'))[:80]}: {wrong[:60]}")
    print(f"\n{service}: {len(requests)} boundary requests")
    assert failures == [], "\n".join(failures)


async def test_a_nul_in_a_page_form_is_refused_not_500(open_api):
    api = await open_api("ballots")
    clerk = {"Cookie": f"sipas_session={api.identity.mint('clerk-79', 'clerk', HOME)}",
             "Content-Type": "application/x-www-form-urlencoded"}
    r = await api.client.post("/clerk/key", content=b"campaign_id=c%00&code=ABCD-EFGH-JK", headers=clerk)
    assert r.status_code == 422 and r.headers["content-type"] == PROBLEM
