"""Infrastructure outages are 503 with Retry-After, not 500: clients (and the reliability suite) retry them."""

from __future__ import annotations

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.exc import DBAPIError, IntegrityError

from sipas_kit import problems


class _Orig(Exception):
    def __init__(self, pgcode: str | None) -> None:
        super().__init__("x")
        self.pgcode = pgcode


def _dbapi(pgcode: str | None, invalidated: bool = False) -> DBAPIError:
    return DBAPIError("SELECT 1", {}, _Orig(pgcode), connection_invalidated=invalidated)


@pytest.mark.parametrize("exc", [
    _dbapi("57P03"),                       # the database system is starting up
    _dbapi("57P01"),                       # terminating connection due to administrator command
    _dbapi("08006"),                       # connection failure
    _dbapi(None, invalidated=True),        # the pool found the connection dead mid-statement
    ConnectionRefusedError(111, "Connection refused"),
    asyncpg.exceptions.CannotConnectNowError("the database system is starting up"),
])
def test_outages_are_unavailable(exc):
    assert problems.unavailable(exc)


def test_a_socket_error_under_another_exception_counts():
    try:
        try:
            raise ConnectionResetError(104, "Connection reset by peer")
        except ConnectionResetError as inner:
            raise RuntimeError("while committing") from inner
    except RuntimeError as outer:
        assert problems.unavailable(outer)


@pytest.mark.parametrize("exc", [
    _dbapi("23505"),                       # unique violation: a bug or a race the code must handle
    IntegrityError("INSERT", {}, _Orig("23505")),
    _dbapi("42P01"),                       # undefined table
    ValueError("bad"),
])
def test_other_errors_are_not(exc):
    assert not problems.unavailable(exc) and not problems.lost_race(exc)


@pytest.mark.parametrize("exc", [
    _dbapi("40P01"),                       # deadlock detected
    _dbapi("40001"),                       # could not serialize access
    _dbapi("55P03"),                       # lock not available
    asyncpg.exceptions.DeadlockDetectedError("deadlock detected"),
])
def test_lost_races_are_told_apart_from_outages(exc):
    assert problems.lost_race(exc) and not problems.unavailable(exc)


async def test_the_app_answers_503_with_retry_after_and_500_for_bugs():
    app = FastAPI()
    problems.install(app)

    @app.get("/down")
    async def down() -> None:
        raise _dbapi("57P03")

    @app.get("/bug")
    async def bug() -> None:
        raise _dbapi("42P01")

    @app.get("/race")
    async def race() -> None:
        raise _dbapi("40P01")

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        down_r, bug_r, race_r = await client.get("/down"), await client.get("/bug"), await client.get("/race")
    assert down_r.status_code == 503 and down_r.headers["retry-after"] == problems.RETRY_AFTER_SECONDS
    assert down_r.headers["content-type"] == problems.MEDIA_TYPE
    assert down_r.json()["title"] == "Service unavailable"
    assert bug_r.status_code == 500 and bug_r.json()["title"] == "Internal error"
    assert race_r.status_code == 503 and race_r.headers["retry-after"] == problems.RETRY_AFTER_SECONDS
    assert "concurrent change" in race_r.json()["detail"]
