"""The outbox relay against real PostgreSQL and JetStream: exactly once, nothing skipped."""

import asyncio
import os
import signal
import subprocess
import sys

from sipas_events.bus.jetstream import JetStreamBus
from sipas_events.metrics import BackboneMetrics
from sipas_events.relay import Relay
from sipas_events.store import EventStore
from sipas_events.testing import META, agency, append_agencies, eventually


async def stream_ids(bus: JetStreamBus, stream: str = "SIPAS_REGISTRY") -> list[str]:
    from sipas_events.envelope import Envelope

    return [str(Envelope.from_json(m.data).id) async for m in bus.read_stream(stream)]


async def store_ids(engine) -> list[str]:
    async with engine.connect() as conn:
        rows = await EventStore("registry").read_all(conn, 0, 100_000)
    return [str(r.id) for r in rows]


async def test_eight_writers_out_of_order_commits_exactly_once(engine, jetstream):
    """8 concurrent writers whose commits finish out of insertion order; the relay runs throughout."""
    store = EventStore("registry")
    stop = asyncio.Event()
    relay = Relay("registry", engine, jetstream, BackboneMetrics("registry"), batch=50, poll_interval=0.05)
    relay_task = asyncio.create_task(relay.run(stop))

    async def writer(w: int) -> None:
        for i in range(25):
            async with engine.begin() as conn:
                await store.append(conn, f"agency-{w}-{i}", [agency(w * 1000 + i)], expected_version=0, meta=META)
                # Hold the transaction open for a varying time so later inserts commit first.
                await asyncio.sleep(((w * 7 + i * 3) % 5) * 0.004)

    await asyncio.gather(*(writer(w) for w in range(8)))
    await eventually(lambda: _count(jetstream, 200))
    stop.set()
    await relay_task
    expected = await store_ids(engine)
    published = await stream_ids(jetstream)
    assert sorted(published) == sorted(expected)
    assert len(published) == len(set(published)) == 200
    assert published == expected, "the stream follows the store's position order"


async def test_crash_between_publish_and_cursor_republishes_without_duplicates(engine, jetstream):
    store = EventStore("registry")
    await append_agencies(engine, store, 1, 30)
    m = BackboneMetrics("registry")
    relay = Relay("registry", engine, jetstream, m, batch=10)
    async with engine.connect() as conn:
        await relay._lead(conn)
        await jetstream.ensure_stream(relay._stream)
        await relay.pump(conn)  # sequences 10, publishes 10, moves the cursor
    # Crash simulation: roll the cursor back as if the process died after publishing but before
    # committing the cursor; the next relay republishes those ten.
    from sqlalchemy import text
    async with engine.begin() as conn:
        await conn.execute(text("UPDATE relay_state SET published_position = 0"))
    relay2 = Relay("registry", engine, jetstream, m, batch=10)
    stop = asyncio.Event()
    task = asyncio.create_task(relay2.run(stop))
    await eventually(lambda: _count(jetstream, 30))
    stop.set()
    await task
    ids = await stream_ids(jetstream)
    assert len(ids) == 30 and len(set(ids)) == 30
    assert m.publish_duplicates._value.get() == 10  # JetStream dropped the repeats by Nats-Msg-Id


async def _count(bus, n):
    import nats.js.errors

    from sipas_events.bus.base import BusUnavailable

    try:
        return len(await stream_ids(bus)) >= n
    except BusUnavailable as exc:
        if isinstance(exc.__cause__, nats.js.errors.NotFoundError):
            return False  # no relay has come far enough to create the stream yet (a busy machine)
        raise


RELAY_PROCESS = """
import asyncio, sys
from sqlalchemy.ext.asyncio import create_async_engine
from sipas_events.bus.jetstream import JetStreamBus
from sipas_events.metrics import BackboneMetrics
from sipas_events.relay import Relay

async def main():
    engine = create_async_engine(sys.argv[1])
    bus = await JetStreamBus.connect(sys.argv[2], name="relay-under-test")
    await Relay("registry", engine, bus, BackboneMetrics("registry"), batch=int(sys.argv[3])).run(asyncio.Event())

asyncio.run(main())
"""


async def test_relay_process_killed_repeatedly_loses_and_doubles_nothing(engine, jetstream, fresh_db, stack):
    """SIGKILL the relay process at arbitrary moments while writers append; restart it each time."""
    store = EventStore("registry")
    writing = asyncio.create_task(_write_steadily(engine, store, 600))
    for round_ in range(6):
        proc = subprocess.Popen([sys.executable, "-c", RELAY_PROCESS, fresh_db, stack.nats.url, "7"],
                                env=os.environ | {"PYTHONUNBUFFERED": "1"})
        await asyncio.sleep(0.4 + 0.15 * round_)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    await writing
    proc = subprocess.Popen([sys.executable, "-c", RELAY_PROCESS, fresh_db, stack.nats.url, "50"])
    try:
        await eventually(lambda: _count(jetstream, 600), timeout=60)
    finally:
        proc.terminate()
        proc.wait()
    published = await stream_ids(jetstream)
    assert len(published) == 600 and len(set(published)) == 600
    assert published == await store_ids(engine)


async def _write_steadily(engine, store, total):
    for start in range(0, total, 10):
        await append_agencies(engine, store, start, 10)
        await asyncio.sleep(0.01)


async def test_one_active_relay_per_service(engine, jetstream):
    m1, m2 = BackboneMetrics("registry"), BackboneMetrics("registry")
    r1 = Relay("registry", engine, jetstream, m1)
    r2 = Relay("registry", engine, jetstream, m2)
    stop = asyncio.Event()
    t1 = asyncio.create_task(r1.run(stop))
    await eventually(lambda: _true(r1.is_leader))
    t2 = asyncio.create_task(r2.run(stop))
    await asyncio.sleep(0.5)
    assert r1.is_leader and not r2.is_leader
    stop.set()
    await asyncio.gather(t1, t2)


async def _true(v):
    return bool(v)


async def test_an_event_committed_during_an_idle_pump_is_published_without_waiting_for_the_poll(engine, jetstream):
    """The NOTIFY of an event that commits while a pump finds nothing must not be lost.

    The poll interval is an hour, so the event can only be published because the notification woke
    the relay: the test waits for that effect, never for a time.
    """
    store = EventStore("registry")
    relay = Relay("registry", engine, jetstream, BackboneMetrics("registry"), poll_interval=3600)
    real_pump = relay._pump
    injected = asyncio.Event()

    async def pump_then_commit_one(conn):
        result = await real_pump(conn)
        if result[0] == 0 and not injected.is_set():
            # An idle pump: now an event commits before the pump returns, and its NOTIFY arrives.
            injected.set()
            await append_agencies(engine, store, 1, 1)
            await eventually(lambda: _true(relay._wake.is_set()))
        return result

    relay._pump = pump_then_commit_one  # type: ignore[method-assign]
    await jetstream.ensure_stream(relay._stream)
    stop = asyncio.Event()
    task = asyncio.create_task(relay.run(stop))
    try:
        await eventually(lambda: _count(jetstream, 1))
    finally:
        stop.set()
        relay._wake.set()
        await task
    assert injected.is_set()
    assert await stream_ids(jetstream) == await store_ids(engine)
    # Leave no registry events behind for later tests whose services consume the shared server.
    await jetstream._js.delete_stream("SIPAS_REGISTRY")
