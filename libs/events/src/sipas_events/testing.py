"""Small builders shared by the backbone's integration tests."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import BigInteger, Column, MetaData, Table, Text, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from sipas_events.bus.base import OutMessage, StreamConfig
from sipas_events.bus.jetstream import JetStreamBus
from sipas_events.catalogue.registry import AgencyRegistered
from sipas_events.envelope import Envelope
from sipas_events.ids import new_id
from sipas_events.naming import stream_name, stream_subjects, subject_for
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


def prepare_registered(event: AgencyRegistered, env: Envelope, context: Any) -> tuple[Any, ...]:
    """A rebuild's ``prepare`` for tests: plain data a reader process can send (see ``Projection``)."""
    return ("prepared", event.agency_id, event.name, env.position, context)


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


# ---- producers for a consumer's tests ---------------------------------------------------------------
class Feed:
    """Envelopes published to JetStream exactly as a relay publishes them (contiguous store positions,
    ``Nats-Msg-Id`` = event id), so a service's real consumers apply them."""

    def __init__(self, bus: JetStreamBus) -> None:
        self.bus = bus
        self.positions: dict[str, int] = defaultdict(int)
        self.sent: list[Envelope] = []

    @classmethod
    async def connect(cls, url: str) -> Feed:
        bus = await JetStreamBus.connect(url, name="tests-feed")
        for producer in ("registry", "sampling", "ballots", "scoring"):
            await bus.ensure_stream(StreamConfig(stream_name(producer), stream_subjects(producer)))
        return cls(bus)

    def envelope(self, producer: str, event: Any, time: dt.datetime | None = None) -> Envelope:
        self.positions[producer] += 1
        return Envelope(id=new_id(), source=f"/sipas/{producer}", type=event.event_type(), subject="test",
                        time=time or dt.datetime.now(dt.UTC), data=event.payload(), sequence=1,
                        position=self.positions[producer], correlationid="test-feed", actor="test",
                        province=getattr(event, "province", None))

    async def send(self, producer: str, *events: Any) -> list[Envelope]:
        envelopes = [self.envelope(producer, e) for e in events]
        await self.publish(envelopes)
        return envelopes

    async def publish(self, envelopes: list[Envelope]) -> None:
        """Publish (or publish again: a repeated envelope is what at-least-once delivery looks like)."""
        for start in range(0, len(envelopes), 500):
            await self.bus.publish_batch([OutMessage(subject_for(e), e.to_json(), f"{e.id}")
                                          for e in envelopes[start:start + 500]])
        self.sent.extend(envelopes)

    async def close(self) -> None:
        await self.bus.close()
