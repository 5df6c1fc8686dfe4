"""The event store on real PostgreSQL: concurrency, sequencing, the hash chain, immutability."""

import asyncio

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from sipas_events import sequencer
from sipas_events.store import ChainBroken, ConcurrencyError, EventStore
from sipas_events.testing import META, agency, append_agencies


async def sequence_all(engine):
    async with engine.begin() as conn:
        await sequencer.ensure_state(conn)
    while True:
        async with engine.begin() as conn:
            if not await sequencer.sequence_batch(conn, 100):
                return


async def test_append_and_load_with_optimistic_concurrency(engine):
    store = EventStore("registry")
    async with engine.begin() as conn:
        envs = await store.append(conn, "agency-a1", [agency(1), agency(1)], expected_version=0, meta=META)
    assert [e.sequence for e in envs] == [1, 2]
    assert envs[0].correlationid == "test-corr" and envs[0].actor == "tester" and envs[0].province == "01"
    with pytest.raises(ConcurrencyError):
        async with engine.begin() as conn:
            await store.append(conn, "agency-a1", [agency(1)], expected_version=1, meta=META)
    async with engine.begin() as conn:
        await store.append(conn, "agency-a1", [agency(1)], expected_version=None, meta=META)
        loaded = await store.load(conn, "agency-a1")
    assert [e.sequence for e in loaded] == [1, 2, 3]
    assert loaded[0].id == envs[0].id and loaded[0].data == envs[0].data


async def test_concurrent_writers_to_one_stream_one_wins(engine):
    store = EventStore("registry")

    async def write():
        async with engine.begin() as conn:
            await store.append(conn, "agency-x", [agency(9)], expected_version=0, meta=META)
            await asyncio.sleep(0.05)

    results = await asyncio.gather(*(write() for _ in range(5)), return_exceptions=True)
    assert sum(r is None for r in results) == 1
    assert all(isinstance(r, ConcurrencyError) for r in results if r is not None)


async def test_late_commit_is_sequenced_not_skipped(engine):
    """Insert order 1 commits after insert order 2 has been sequenced: both get positions, gapless."""
    store = EventStore("registry")
    async with engine.begin() as conn:
        await sequencer.ensure_state(conn)
    slow = await engine.connect()
    await slow.begin()
    await store.append(slow, "agency-slow", [agency(1)], expected_version=0, meta=META)
    await append_agencies(engine, store, 2, 3)
    await sequence_all(engine)
    async with engine.connect() as conn:
        assert [r.body for r in await store.read_all(conn, 0, 100)].__len__() == 3
    await slow.commit()
    await slow.close()
    await sequence_all(engine)
    async with engine.connect() as conn:
        rows = await store.read_all(conn, 0, 100)
        position, head = await store.verify_chain(conn)
    assert [r.position for r in rows] == [1, 2, 3, 4]
    assert rows[-1].envelope().subject == "agency-slow"
    assert position == 4 and head == (await _head(engine, store))


async def _head(engine, store):
    async with engine.connect() as conn:
        return (await store.head(conn))[1]


async def test_rolled_back_writes_leave_no_gap(engine):
    store = EventStore("registry")
    await append_agencies(engine, store, 1, 2)
    with pytest.raises(RuntimeError):
        async with engine.begin() as conn:
            await store.append(conn, "agency-r", [agency(7)], expected_version=0, meta=META)
            raise RuntimeError("handler failed after appending")
    await append_agencies(engine, store, 3, 2)
    await sequence_all(engine)
    async with engine.connect() as conn:
        assert [r.position for r in await store.read_all(conn, 0, 100)] == [1, 2, 3, 4]


async def test_tampering_is_refused_and_detected(engine):
    store = EventStore("registry")
    await append_agencies(engine, store, 1, 3)
    await sequence_all(engine)
    with pytest.raises(DBAPIError, match="immutable"):
        async with engine.begin() as conn:
            await conn.execute(text("UPDATE event_store SET body = replace(body, 'Đơn vị 2', 'X') WHERE position = 2"))
    with pytest.raises(DBAPIError, match="append-only"):
        async with engine.begin() as conn:
            await conn.execute(text("DELETE FROM event_store WHERE position = 2"))
    # Someone with table-owner rights disables the guard and edits a row: the chain shows it.
    async with engine.begin() as conn:
        await conn.execute(text("ALTER TABLE event_store DISABLE TRIGGER event_store_guard"))
        await conn.execute(text("UPDATE event_store SET body = replace(body, 'Đơn vị 2', 'X') WHERE position = 2"))
    with pytest.raises(ChainBroken, match="position 2"):
        async with engine.connect() as conn:
            await store.verify_chain(conn)


async def test_a_stale_append_of_several_events_writes_none_and_the_transaction_goes_on(engine):
    """Versions 2..4 on a stream at version 2: version 2 is taken, so 3 and 4 must not be written either."""
    store = EventStore("registry")
    async with engine.begin() as conn:
        await store.append(conn, "agency-m", [agency(1), agency(1)], expected_version=0, meta=META)
    async with engine.begin() as conn:
        with pytest.raises(ConcurrencyError):
            await store.append(conn, "agency-m", [agency(1), agency(1), agency(1)], expected_version=1, meta=META)
        # The caller reloads and decides again in the same transaction.
        assert await store.version(conn, "agency-m") == 2
        retried = await store.append(conn, "agency-m", [agency(1)], expected_version=2, meta=META)
    async with engine.connect() as conn:
        loaded = await store.load(conn, "agency-m")
    assert [e.sequence for e in loaded] == [1, 2, 3]
    assert loaded[-1].id == retried[0].id


async def test_appends_wait_for_an_uncommitted_writer_of_the_same_version(engine):
    """The second writer blocks on the first one's uncommitted version 1, then loses: nothing of it is written."""
    store = EventStore("registry")
    first = await engine.connect()
    await first.begin()
    await store.append(first, "agency-w", [agency(1)], expected_version=0, meta=META)

    async def second():
        async with engine.begin() as conn:
            await store.append(conn, "agency-w", [agency(2), agency(2)], expected_version=0, meta=META)

    task = asyncio.create_task(second())
    await asyncio.sleep(0.2)
    assert not task.done()  # waiting on the first writer's row lock
    await first.commit()
    await first.close()
    with pytest.raises(ConcurrencyError):
        await task
    async with engine.connect() as conn:
        assert [e.data["agency_id"] for e in await store.load(conn, "agency-w")] == ["a1"]


async def test_events_appended_is_counted_when_the_transaction_commits(engine):
    from sipas_events.metrics import BackboneMetrics

    metrics = BackboneMetrics("registry")
    store = EventStore("registry", metrics=metrics)

    def counted() -> float:
        return metrics.registry.get_sample_value(
            "sipas_registry_events_appended_total", {"type": "AgencyRegistered"}) or 0.0

    async with engine.begin() as conn:
        await store.append(conn, "agency-c1", [agency(1), agency(1)], expected_version=0, meta=META)
        await store.append(conn, "agency-c2", [agency(2)], expected_version=0, meta=META)
        assert counted() == 0  # not committed yet
    assert counted() == 3
    with pytest.raises(RuntimeError):
        async with engine.begin() as conn:
            await store.append(conn, "agency-c3", [agency(3)], expected_version=0, meta=META)
            raise RuntimeError("rolled back")
    with pytest.raises(ConcurrencyError):
        async with engine.begin() as conn:
            await store.append(conn, "agency-c1", [agency(1)], expected_version=0, meta=META)
    async with engine.connect() as conn:  # one connection, several transactions
        for i in (4, 5):
            await store.append(conn, f"agency-c{i}", [agency(i)], expected_version=0, meta=META)
            await conn.commit()
    assert counted() == 5


async def test_an_append_over_a_hole_in_the_versions_writes_nothing(engine):
    """Someone skipped version 2; appending 2 and 3 collides on 3: the whole append is refused."""
    store = EventStore("registry")
    async with engine.begin() as conn:
        await store.append(conn, "agency-h", [agency(1)], expected_version=0, meta=META)
        await store.append(conn, "agency-h", [agency(1)], expected_version=2, meta=META)
    with pytest.raises(ConcurrencyError):
        async with engine.begin() as conn:
            await store.append(conn, "agency-h", [agency(1), agency(1)], expected_version=1, meta=META)
    async with engine.connect() as conn:
        assert [e.sequence for e in await store.load(conn, "agency-h")] == [1, 3]


async def test_events_of_one_append_are_sequenced_in_version_order(engine):
    store = EventStore("registry")
    async with engine.begin() as conn:
        await store.append(conn, "agency-o", [agency(i) for i in range(1, 8)], expected_version=0, meta=META)
        await store.append(conn, "agency-o", [agency(8), agency(9)], expected_version=7, meta=META)
    await sequence_all(engine)
    async with engine.connect() as conn:
        rows = await store.read_all(conn, 0, 100)
    assert [r.envelope().sequence for r in rows] == list(range(1, 10))
    assert [r.envelope().data["agency_id"] for r in rows] == [f"a{i}" for i in range(1, 10)]


async def test_a_stale_single_append_later_in_a_transaction_is_refused_and_the_transaction_goes_on(engine):
    """The first append of a transaction also sends the NOTIFY; later single-event appends take a plainer path."""
    store = EventStore("registry")
    await append_agencies(engine, store, 1, 1)  # stream agency-a1 at version 1
    async with engine.begin() as conn:
        await store.append(conn, "agency-p", [agency(5)], expected_version=0, meta=META)
        with pytest.raises(ConcurrencyError):
            await store.append(conn, "agency-a1", [agency(1)], expected_version=0, meta=META)
        await store.append(conn, "agency-a1", [agency(1)], expected_version=1, meta=META)
    async with engine.connect() as conn:
        assert [e.sequence for e in await store.load(conn, "agency-a1")] == [1, 2]
        assert [e.sequence for e in await store.load(conn, "agency-p")] == [1]


async def test_append_many_writes_many_streams_in_order_and_counts_on_commit(engine):
    from sipas_events.metrics import BackboneMetrics
    from sipas_events.store import StreamAppend

    metrics = BackboneMetrics("registry")
    store = EventStore("registry", metrics=metrics)
    await append_agencies(engine, store, 1, 1)  # agency-a1 at version 1
    async with engine.begin() as conn:
        envs = await store.append_many(conn, [
            StreamAppend("agency-a1", [agency(1)], None),
            StreamAppend("agency-m2", [agency(2), agency(3)], 0),
            StreamAppend("agency-m4", [], 0),  # nothing to append: skipped
            StreamAppend("agency-m5", [agency(5)], None),
        ], meta=META, chunk=2)  # three statements
        assert metrics.registry.get_sample_value(
            "sipas_registry_events_appended_total", {"type": "AgencyRegistered"}) == 1.0  # not yet committed
    assert [(e.subject, e.sequence) for e in envs] == [("agency-a1", 2), ("agency-m2", 1), ("agency-m2", 2),
                                                      ("agency-m5", 1)]
    assert all(e.correlationid == "test-corr" and e.actor == "tester" for e in envs)
    assert metrics.registry.get_sample_value(
        "sipas_registry_events_appended_total", {"type": "AgencyRegistered"}) == 5.0
    await sequence_all(engine)
    async with engine.connect() as conn:
        stored = await store.read_all(conn, 0, 100)
        assert [(r.envelope().subject, r.envelope().sequence) for r in stored] == [
            ("agency-a1", 1), ("agency-a1", 2), ("agency-m2", 1), ("agency-m2", 2), ("agency-m5", 1)]
        assert [r.id for r in stored[1:]] == [e.id for e in envs]
        assert (await store.verify_chain(conn))[0] == 5
        assert [e.data["agency_id"] for e in await store.load(conn, "agency-m2")] == ["a2", "a3"]


async def test_a_stale_append_many_writes_nothing_and_the_transaction_goes_on(engine):
    from sipas_events.store import StreamAppend

    store = EventStore("registry")
    await append_agencies(engine, store, 1, 1)  # agency-a1 at version 1
    async with engine.begin() as conn:
        with pytest.raises(ConcurrencyError) as stale:
            await store.append_many(conn, [StreamAppend("agency-n1", [agency(7)], 0),
                                           StreamAppend("agency-a1", [agency(1)], 0)], meta=META, chunk=1)
        assert stale.value.stream_id == "agency-a1"
        with pytest.raises(ConcurrencyError) as twice:  # one stream twice in one call: refused before writing
            await store.append_many(conn, [StreamAppend("agency-n2", [agency(8)], 0),
                                           StreamAppend("agency-n2", [agency(8)], 1)], meta=META)
        assert twice.value.stream_id == "agency-n2"
        await store.append_many(conn, [StreamAppend("agency-n3", [agency(9)], 0)], meta=META)
    async with engine.connect() as conn:
        assert await store.load(conn, "agency-n1") == [] and await store.load(conn, "agency-n2") == []
        assert [e.sequence for e in await store.load(conn, "agency-a1")] == [1]
        assert [e.data["agency_id"] for e in await store.load(conn, "agency-n3")] == ["a9"]


async def test_append_many_racing_a_single_append_one_wins(engine):
    """A writer holding a stream's next version uncommitted is waited for; if it commits, the batch is refused."""
    from sipas_events.store import StreamAppend

    store = EventStore("registry")
    first = await engine.connect()
    await first.begin()
    await store.append(first, "agency-r", [agency(1)], expected_version=0, meta=META)

    async def batch():
        async with engine.begin() as conn:
            await store.append_many(conn, [StreamAppend("agency-q", [agency(2)], 0),
                                           StreamAppend("agency-r", [agency(3)], None)], meta=META)

    task = asyncio.create_task(batch())
    await asyncio.sleep(0.2)
    assert not task.done()  # waiting on the first writer's row
    await first.commit()
    await first.close()
    with pytest.raises(ConcurrencyError):
        await task
    async with engine.connect() as conn:
        assert [e.data["agency_id"] for e in await store.load(conn, "agency-r")] == ["a1"]
        assert await store.load(conn, "agency-q") == []


async def test_committed_events_count_as_unsequenced_until_the_relay_numbers_them(engine):
    """What ``/v1/events`` reports as ``unsequenced``: whoever waits for consumers to reach ``head`` must wait
    for it to be 0 first, or an event committed a moment ago is not yet below the head it waits for."""
    store = EventStore("registry")
    async with engine.begin() as conn:
        await store.append(conn, "agency-u1", [agency(1), agency(1)], expected_version=0, meta=META)
        assert (await store.unsequenced(conn), (await store.head(conn))[0]) == (2, 0)
    await sequence_all(engine)
    async with engine.begin() as conn:
        await store.append(conn, "agency-u1", [agency(1)], expected_version=2, meta=META)
        assert (await store.unsequenced(conn), (await store.head(conn))[0]) == (1, 2)
    await sequence_all(engine)
    async with engine.connect() as conn:
        assert (await store.unsequenced(conn), (await store.head(conn))[0]) == (0, 3)
