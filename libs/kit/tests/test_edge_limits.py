"""The edge middleware: body size and JSON depth limits, per-client rate limits, security headers."""

import json

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st

from sipas_kit import problems
from sipas_kit.edge import Edge, RateLimits, json_depth


def client(**limits) -> TestClient:
    app = FastAPI()
    problems.install(app)
    settings = {"max_body_bytes": 2048, "max_upload_bytes": 10_000, "json_max_depth": 5, "rate_limits": {}} | limits
    app.add_middleware(Edge, **settings)

    @app.post("/json")
    async def take(body: dict) -> dict:
        return {"keys": len(body)}

    @app.post("/upload")
    async def upload(request: Request) -> dict:
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
        return {"bytes": size}

    @app.get("/b/page", response_class=HTMLResponse)
    async def page() -> str:
        return "<p>xin chào</p>"

    return TestClient(app, raise_server_exceptions=False)


def test_bodies_over_their_limit_are_refused_with_a_problem():
    c = client()
    assert c.post("/json", json={"a": "x" * 100}).status_code == 200
    r = c.post("/json", json={"a": "x" * 5000})
    assert r.status_code == 413 and r.headers["content-type"] == "application/problem+json"
    assert "2048" in r.json()["detail"]
    csv = b"a,b\n" + b"1,2\n" * 1000
    assert c.post("/upload", content=csv, headers={"content-type": "text/csv"}).json() == {"bytes": len(csv)}
    big = b"a,b\n" + b"1,2\n" * 5000

    def chunks():  # no Content-Length: the limit still holds as the body streams in
        for i in range(0, len(big), 1000):
            yield big[i:i + 1000]
    r = c.post("/upload", content=chunks(), headers={"content-type": "text/csv"})
    assert r.status_code == 413 and r.json()["type"].endswith("/too-large")


def test_deep_json_is_refused_before_parsing():
    c = client()
    assert c.post("/json", json={"a": {"b": {"c": [1]}}}).status_code == 200
    r = c.post("/json", content=json.dumps({"a": [[[[[[1]]]]]]}), headers={"content-type": "application/json"})
    assert r.status_code == 400 and "deeper than 5" in r.json()["detail"]
    # Brackets inside strings are text, not nesting.
    assert c.post("/json", json={"a": "[[[[[[[[[[{{{{{{"}).status_code == 200


@given(st.recursive(st.integers() | st.text(), lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner),
                    max_leaves=20))
def test_json_depth_counts_like_the_parser(value):
    def depth(v):
        if isinstance(v, list):
            return 1 + max((depth(x) for x in v), default=0)
        if isinstance(v, dict):
            return 1 + max((depth(x) for x in v.values()), default=0)
        return 0
    assert json_depth(json.dumps(value).encode()) == depth(value)


def test_respondent_pages_are_rate_limited_per_client():
    c = client(rate_limits={"/b": "3/60"})
    assert [c.get("/b/page").status_code for _ in range(3)] == [200, 200, 200]
    r = c.get("/b/page")
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
    assert r.headers["content-type"] == "application/problem+json"
    assert c.post("/json", json={}).status_code == 200  # other paths are not limited


def test_rate_limit_buckets_refill():
    limits = RateLimits.parse({"/b": "2/1"})
    assert limits.check("/b/x", "1.2.3.4") is None and limits.check("/b/y", "1.2.3.4") is None
    assert limits.check("/b/x", "1.2.3.4") is not None
    assert limits.check("/b/x", "5.6.7.8") is None  # another client has its own bucket
    limits.buckets[("/b", "1.2.3.4")].updated -= 1.0  # a second later
    assert limits.check("/b/x", "1.2.3.4") is None


def test_security_headers_on_every_response_and_a_strict_policy_on_pages():
    c = client()
    page = c.get("/b/page")
    assert page.headers["x-content-type-options"] == "nosniff" and page.headers["x-frame-options"] == "DENY"
    policy = page.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "script-src 'self';" in policy and "unsafe-inline'; img" in policy
    assert "script-src 'self' 'unsafe-inline'" not in policy  # no inline scripts
    assert page.headers["cache-control"] == "no-store"
    api = c.post("/json", json={})
    assert api.headers["referrer-policy"] == "no-referrer" and "content-security-policy" not in api.headers
