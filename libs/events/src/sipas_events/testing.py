"""Small builders shared by the backbone's integration tests."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Awaitable, Callable

from sqlalchemy import BigInteger, Column, MetaData, Table, Text, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from sipas_events.catalogue.registry import AgencyRegistered
from sipas_events.envelope import Envelope
from sipas_events.projection import Projection
from sipas_events.store import EventStore, Metadata

META = Metadata(correlation_id="test-corr", actor="tester")
test_metadata = MetaData()
seen = Table(
    "test_agencies", test_metadata,
    Column("agency_id", Text, primary_key=True),
    Column("name", Text, nullable=False),
    Column("applied", BigInteger, nullable=False),
    Column("position", BigInteger, nullable=False),
)


def agency(i: int, province: str = "01", name: str | None = None) -> AgencyRegistered:
    return AgencyRegistered(agency_id=f"a{i}", code=f"C{i}", name=name or f"Đơn vị {i}", level="commune",
                            province=province, valid_from=dt.date(2025, 7, 1))


async def append_agencies(engine: AsyncEngine, store: EventStore, start: int, count: int) -> None:
    async with engine.begin() as conn:
        for i in range(start, start + count):
            await store.append(conn, f"agency-a{i}", [agency(i)], expected_version=0, meta=META)


async def create_test_tables(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.run_sync(test_metadata.create_all)


def counting_projection(fail_on: Callable[[AgencyRegistered], bool] | None = None) -> Projection:
    """Counts applications per agency: a doubled effect shows up as applied > 1."""
    projection = Projection(name="testagencies", producer="registry", tables=[seen])

    @projection.on("AgencyRegistered")
    async def on_agency_registered(conn: AsyncConnection, event: AgencyRegistered, env: Envelope) -> None:
        if fail_on is not None and fail_on(event):
            raise ValueError(f"poison: {event.agency_id}")
        stmt = insert(seen).values(agency_id=event.agency_id, name=event.name, applied=1, position=env.position)
        await conn.execute(stmt.on_conflict_do_update(index_elements=["agency_id"],
                                                      set_={"applied": seen.c.applied + 1}))

    return projection


async def projected(engine: AsyncEngine) -> dict[str, int]:
    async with engine.connect() as conn:
        return {r.agency_id: r.applied for r in await conn.execute(select(seen))}


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 30.0, every: float = 0.05) -> None:
    """Wait until ``check()`` holds; fail with a clear message after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(every)
    raise AssertionError(f"condition not met within {timeout}s")
