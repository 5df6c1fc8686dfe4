"""Edge helpers without servers: problem documents, cursors, settings fallbacks."""

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import BaseModel, ConfigDict

from sipas_kit import problems
from sipas_kit.pagination import decode_cursor, encode_cursor, page_of
from sipas_kit.problems import Problem
from sipas_kit.settings import settings_for


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")
    n: int


class Refused(Exception):
    pass


def client() -> TestClient:
    app = FastAPI()
    problems.install(app, {Refused: (409, "Conflict")})

    @app.post("/things")
    def things(body: Body) -> dict:
        if body.n == 13:
            raise Refused("13 is taken")
        if body.n == 0:
            raise RuntimeError("secret internals")
        return {"n": body.n}

    return TestClient(app, raise_server_exceptions=False)


def test_problem_documents():
    c = client()
    r = c.post("/things", json={"n": "x", "extra": 1})
    assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json"
    assert {e["field"] for e in r.json()["errors"]} == {"body.n", "body.extra"}
    r = c.post("/things", content=b"{", headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["title"] == "Malformed JSON"
    r = c.post("/things", json={"n": 13})
    assert r.status_code == 409 and r.json()["detail"] == "13 is taken"
    r = c.post("/things", json={"n": 0})
    assert r.status_code == 500 and "secret" not in r.text
    r = c.get("/nowhere")
    assert r.status_code == 404 and r.json()["title"] == "Not found"


def test_cursor_round_trip_and_garbage():
    assert decode_cursor(encode_cursor(["a", 3])) == ["a", 3]
    assert decode_cursor(None) is None
    with pytest.raises(Problem) as err:
        decode_cursor("not-a-cursor!!")
    assert err.value.errors[0]["field"] == "query.cursor"
    page = page_of([1, 2, 3], 2, lambda r: [r])
    assert page.items == [1, 2] and decode_cursor(page.next_cursor) == [2]
    assert page_of([1, 2], 2, lambda r: [r]).next_cursor is None


def test_settings_fall_back_to_shared_variables(monkeypatch):
    monkeypatch.setenv("SIPAS_NATS_URL", "nats://shared:4222")
    monkeypatch.setenv("SIPAS_DEMO_DATABASE_URL", "postgresql+asyncpg://x@h/db")
    s = settings_for("demo")()
    assert s.nats_url == "nats://shared:4222"
    monkeypatch.setenv("SIPAS_DEMO_NATS_URL", "nats://own:4222")
    assert settings_for("demo")().nats_url == "nats://own:4222"
    assert "x@h" not in repr(s)  # the URL is a secret: never printed
