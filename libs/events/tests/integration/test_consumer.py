"""Consumers against real PostgreSQL and JetStream: idempotent, ordered, poison-tolerant, resilient."""

import asyncio
import time
from collections.abc import Awaitable, Callable

import pytest
from sqlalchemy import select

from sipas_events import sequencer
from sipas_events.bus.base import OutMessage
from sipas_events.consumer import FIRST_GUESS_BYTES, Consumer, NotReady, RetryPolicy
from sipas_events.envelope import Envelope
from sipas_events.export import export_digest
from sipas_events.metrics import BackboneMetrics
from sipas_events.naming import DLQ_STREAM
from sipas_events.relay import Relay
from sipas_events.replay import StoreReplaySource
from sipas_events.schema import dead_letters, inbox
from sipas_events.store import EventStore
from sipas_events.testing import (
    append_agencies,
    counting_projection,
    create_test_tables,
    eventually,
    projected,
)


class Running:
    """A relay and a consumer over one database (producer and consumer share it in these tests)."""

    def __init__(self, engine, bus, projection=None, retry=None, replay=True):
        self.m = BackboneMetrics("ballots")
        self.stop = asyncio.Event()
        self.projection = projection or counting_projection()
        self.relay = Relay("registry", engine, bus, BackboneMetrics("registry"), batch=100, poll_interval=0.05)
        self.consumer = Consumer(
            "ballots", self.projection, engine, bus, self.m, batch=50, fetch_timeout=0.2, gap_grace=0.2,
            idle_check=0.5, retry=retry or RetryPolicy(max_attempts=3, backoff=(0.05, 0.1)),
            replay=StoreReplaySource({"registry": engine}) if replay else None,
        )
        self.tasks = []

    def start(self, relay=True):
        if relay:
            self.tasks.append(asyncio.create_task(self.relay.run(self.stop)))
        self.tasks.append(asyncio.create_task(self.consumer.run(self.stop)))
        return self

    async def close(self):
        self.stop.set()
        await asyncio.gather(*self.tasks)


async def test_events_flow_into_the_projection_exactly_once(engine, jetstream):
    await create_test_tables(engine)
    store = EventStore("registry")
    run = Running(engine, jetstream).start()
    await append_agencies(engine, store, 1, 120)
    await eventually(lambda: _all_applied(engine, 120))
    await run.close()
    counts = await projected(engine)
    assert len(counts) == 120 and set(counts.values()) == {1}
    assert run.consumer.position == 120
    # The fetches measured the messages (small): the next asks for the whole batch, not the first guess's.
    assert 0 < run.consumer._message_bytes < FIRST_GUESS_BYTES and run.consumer.fetch_size() == 50


async def _all_applied(engine, n):
    counts = await projected(engine)
    return len(counts) == n


async def test_an_event_delivered_three_times_changes_the_projection_once(engine, jetstream):
    await create_test_tables(engine)
    store = EventStore("registry")
    await append_agencies(engine, store, 1, 5)
    relay = Relay("registry", engine, jetstream, BackboneMetrics("registry"))
    async with engine.connect() as conn:
        await relay._lead(conn)
        await jetstream.ensure_stream(relay._stream)
        await relay.pump(conn)
    async with engine.connect() as conn:
        third = (await store.read_all(conn, 2, 1))[0]
    # The same event twice more, under new message ids so JetStream stores and delivers them again.
    await jetstream.publish_batch([
        OutMessage("sipas.registry.AgencyRegistered.01", third.envelope_json(), f"again-{n}") for n in range(2)
    ])
    run = Running(engine, jetstream).start(relay=False)
    await eventually(lambda: _consumed(run, 5))
    await eventually(lambda: _dupes(run, 2))
    await run.close()
    counts = await projected(engine)
    assert counts == {f"a{i}": 1 for i in range(1, 6)}
    async with engine.connect() as conn:
        rows = (await conn.execute(select(inbox.c.event_id).where(inbox.c.consumer == run.consumer.name))).all()
    assert len(rows) == 5


async def _consumed(run, n):
    return run.consumer.position >= n


async def _dupes(run, n):
    return run.m.inbox_duplicates.labels(run.consumer.name)._value.get() >= n


async def test_poison_event_is_dead_lettered_and_the_consumer_goes_on(engine, jetstream):
    await create_test_tables(engine)
    store = EventStore("registry")
    poison = counting_projection(fail_on=lambda e: e.agency_id == "a3")
    run = Running(engine, jetstream, projection=poison, retry=RetryPolicy(max_attempts=4, backoff=(0.05,))).start()
    await append_agencies(engine, store, 1, 6)
    await eventually(lambda: _consumed(run, 6))
    counts = await projected(engine)
    assert sorted(counts) == ["a1", "a2", "a4", "a5", "a6"]
    async with engine.connect() as conn:
        dl = (await conn.execute(select(dead_letters))).mappings().one()
    assert dl["deliveries"] == 4 and dl["position"] == 3 and "poison: a3" in dl["error"]
    dlq = [m async for m in jetstream.read_stream(DLQ_STREAM)]
    assert len(dlq) == 1 and Envelope.from_json(dlq[0].data).id == dl["event_id"]
    assert dlq[0].headers["Sipas-Consumer"] == "ballots-testagencies"
    assert run.m.consume_failures.labels(run.consumer.name, "AgencyRegistered")._value.get() == 4
    # The cause is fixed; an operator replays the dead letter and it applies exactly once.
    run.projection.handlers.update(counting_projection().handlers)
    await run.consumer.replay_dead_letter(dl["id"], "operator")
    await run.close()
    assert (await projected(engine))["a3"] == 1
    async with engine.connect() as conn:
        assert (await conn.execute(select(dead_letters.c.status))).scalar() == "replayed"


async def test_consumption_resumes_after_nats_restart(engine, jetstream, stack):
    await create_test_tables(engine)
    store = EventStore("registry")
    run = Running(engine, jetstream).start()
    await append_agencies(engine, store, 1, 20)
    await eventually(lambda: _all_applied(engine, 20))
    stack.nats.restart()
    await append_agencies(engine, store, 21, 20)
    await eventually(lambda: _all_applied(engine, 40), timeout=60)
    await run.close()
    assert set((await projected(engine)).values()) == {1}


async def test_consumption_resumes_after_postgres_restart(engine, jetstream, stack):
    await create_test_tables(engine)
    store = EventStore("registry")
    run = Running(engine, jetstream).start()
    await append_agencies(engine, store, 1, 20)
    await eventually(lambda: _all_applied(engine, 20))
    stack.pg.restart(mode="immediate")
    await eventually(lambda: _can_write(engine, store), timeout=60)
    await eventually(lambda: _all_applied(engine, 21), timeout=60)
    await run.close()
    assert set((await projected(engine)).values()) == {1}


async def _can_write(engine, store):
    try:
        await append_agencies(engine, store, 21, 1)
        return True
    except Exception:
        return False


async def test_lost_messages_are_fetched_from_the_producer_store(engine, jetstream):
    """Messages JetStream acknowledged but lost (unsynced crash): filled from the replay source."""
    await create_test_tables(engine)
    store = EventStore("registry")
    await append_agencies(engine, store, 1, 10)
    relay = Relay("registry", engine, jetstream, BackboneMetrics("registry"))
    async with engine.connect() as conn:
        await relay._lead(conn)
        await jetstream.ensure_stream(relay._stream)
        await relay.pump(conn)
    for seq in (3, 4, 10):  # lose two in the middle and the tail
        await jetstream._js.delete_msg("SIPAS_REGISTRY", seq)
    run = Running(engine, jetstream).start(relay=False)
    await eventually(lambda: _all_applied(engine, 10))
    await run.close()
    assert run.m.gap_fills.labels(run.consumer.name)._value.get() == 3
    assert set((await projected(engine)).values()) == {1}


class _ChecksCounted(StoreReplaySource):
    """The store as replay source, counting the idle checks that ask how far the relay has published."""

    def __init__(self, engines):
        super().__init__(engines)
        self.checks = 0

    async def published(self, producer):
        self.checks += 1
        return await super().published(producer)

    async def made(self, count):
        return self.checks >= count


async def test_an_idle_consumer_leaves_to_the_stream_what_the_relay_has_not_published_yet(engine, jetstream):
    """Under intake the store's head runs ahead of the stream (the relay sequences a batch, then publishes
    it, and falls behind in a burst): an idle consumer takes from the store only what the relay had already
    published a check earlier, so events on their way come through JetStream however long the relay takes,
    and the store serves only what was really lost (the test above)."""
    await create_test_tables(engine)
    store = EventStore("registry")
    run = Running(engine, jetstream)
    run.consumer._replay = replay = _ChecksCounted({"registry": engine})
    run.consumer._idle_check = 0.3
    await jetstream.ensure_stream(run.relay._stream)
    run.start(relay=False)
    await append_agencies(engine, store, 1, 10)
    async with engine.begin() as conn:  # sequenced, so in the store's head, but not published yet
        await sequencer.ensure_state(conn)
        await sequencer.sequence(conn, 100)
    enough = replay.checks + 3
    await eventually(lambda: replay.made(enough))  # three idle checks with the relay behind
    assert run.m.gap_fills.labels(run.consumer.name)._value.get() == 0 and not await projected(engine)
    async with engine.connect() as conn:  # the relay catches up
        await run.relay._lead(conn)
        await run.relay.pump(conn)
    await eventually(lambda: _all_applied(engine, 10))
    await run.close()
    assert run.m.gap_fills.labels(run.consumer.name)._value.get() == 0
    assert set((await projected(engine)).values()) == {1}


async def test_rebuild_reproduces_the_projection_byte_for_byte(engine, jetstream):
    await create_test_tables(engine)
    store = EventStore("registry")
    run = Running(engine, jetstream).start()
    await append_agencies(engine, store, 1, 75)
    await eventually(lambda: _all_applied(engine, 75))
    async with engine.connect() as conn:
        before, rows = await export_digest(conn, run.projection.tables)
    await jetstream._js.delete_msg("SIPAS_REGISTRY", 40)  # the rebuild must fill this from the store
    await run.consumer.rebuild()
    async with engine.connect() as conn:
        after, rows_after = await export_digest(conn, run.projection.tables)
    await run.close()
    assert rows == rows_after == 75
    assert before == after


async def test_a_rebuild_applying_more_than_4681_events_in_one_run(engine, jetstream):
    """7 inbox values per event: a multi-row VALUES insert of 4,682+ events exceeds PostgreSQL's 32,767 parameters."""
    await create_test_tables(engine)
    store = EventStore("registry")
    n = 5000
    await append_agencies(engine, store, 1, n)
    run = Running(engine, jetstream)
    run.relay = Relay("registry", engine, jetstream, BackboneMetrics("registry"), batch=n, poll_interval=0.05)
    run.consumer = Consumer("ballots", run.projection, engine, jetstream, run.m, batch=n, fetch_timeout=0.2,
                            replay=StoreReplaySource({"registry": engine}))
    run.start()
    await eventually(lambda: _all_applied(engine, n), timeout=120)
    async with engine.connect() as conn:
        before, rows = await export_digest(conn, run.projection.tables)
    await run.consumer.rebuild()  # reads the whole stream, then applies it as one run of n events
    async with engine.connect() as conn:
        after, rows_after = await export_digest(conn, run.projection.tables)
        inbox_rows = (await conn.execute(select(inbox.c.position).where(inbox.c.consumer == run.consumer.name))).all()
    await run.close()
    assert rows == rows_after == n and before == after
    assert sorted(p for (p,) in inbox_rows) == list(range(1, n + 1))
    assert set((await projected(engine)).values()) == {1}


async def test_a_rebuild_applies_runs_through_the_rebuild_handler_then_calls_rebuilt_once(engine, jetstream):
    """Live runs go through ``run_handler``; a rebuild's runs through ``rebuild_handler`` (here it leaves
    ``applied`` at 0, as a projection leaves derived state owed), given what ``rebuild_prepare`` made of each
    event, then ``rebuilt`` once (here it derives it)."""
    from sipas_events.testing import seen

    await create_test_tables(engine)
    projection = counting_projection()
    calls: list[tuple[str, int]] = []
    received: list = []  # what the rebuild handler was given

    @projection.on_run
    async def live(conn, events):
        calls.append(("run", len(events)))
        for event, env in events:
            await projection.handlers["AgencyRegistered"](conn, event, env)

    @projection.on_rebuild_run
    async def rebuilding(conn, events):
        calls.append(("rebuild", len(events)))
        received.extend(e for e, _ in events)
        await conn.execute(seen.insert(), [{"agency_id": e.agency_id, "name": e.name, "applied": 0,
                                            "position": env.position} for (_, e), env in events])

    @projection.prepare_for_rebuild
    def prepare(event, env, context):
        return ("prepared", event)

    @projection.after_rebuild
    async def derive(conn):
        calls.append(("rebuilt", 0))
        await conn.execute(seen.update().where(seen.c.applied == 0).values(applied=1))

    store = EventStore("registry")
    run = Running(engine, jetstream, projection).start()
    await append_agencies(engine, store, 1, 120)
    await eventually(lambda: _all_applied(engine, 120))
    live_runs = list(calls)
    await run.consumer.rebuild()
    rebuild_calls = calls[len(live_runs):]
    await append_agencies(engine, store, 121, 5)  # after the rebuild, live runs again
    await eventually(lambda: _all_applied(engine, 125))
    await run.close()
    assert live_runs and {kind for kind, _ in live_runs} == {"run"}
    assert [kind for kind, _ in rebuild_calls] == ["rebuild"] * (len(rebuild_calls) - 1) + ["rebuilt"]
    assert sum(n for _, n in rebuild_calls) == 120  # every event once, in runs of at most the batch (50)
    assert [(tag, e.agency_id) for tag, e in received] == [("prepared", f"a{i}") for i in range(1, 121)]
    assert run.m.run_fallbacks.labels(run.consumer.name)._value.get() == 0
    assert calls[-1][0] == "run"
    assert set((await projected(engine)).values()) == {1}


async def test_handlers_run_with_the_event_correlation_id_bound(engine, jetstream, monkeypatch):
    """The first event of a run is logged at INFO, the others at DEBUG, each with its correlation id;
    whatever a handler logs carries the event's ids too."""
    import structlog
    from structlog.testing import capture_logs

    from sipas_events import consumer as module

    await create_test_tables(engine)
    projection = counting_projection()
    counting = projection.handlers["AgencyRegistered"]
    bound: list[dict] = []

    @projection.on("AgencyRegistered")
    async def remember_context(conn, event, env):
        bound.append(structlog.contextvars.get_contextvars())
        await counting(conn, event, env)

    await append_agencies(engine, EventStore("registry"), 1, 3)
    relay = Relay("registry", engine, jetstream, BackboneMetrics("registry"))
    async with engine.connect() as conn:  # all three on the stream before the consumer starts: one run
        await relay._lead(conn)
        await jetstream.ensure_stream(relay._stream)
        await relay.pump(conn)
    with capture_logs(processors=[structlog.contextvars.merge_contextvars]) as logs:
        # A logger made under the capture: the module's own may have been cached, on first use, with the
        # processors of a service configured by an earlier test (structlog caches them, the capture cannot reach).
        monkeypatch.setattr(module, "log", structlog.get_logger(module.__name__))
        run = Running(engine, jetstream, projection=projection).start(relay=False)
        await eventually(lambda: _all_applied(engine, 3))
        await run.close()
    assert [b["correlation_id"] for b in bound] == ["test-corr"] * 3
    assert len({b["event_id"] for b in bound}) == 3
    applied = [e for e in logs if e["event"] == "consumer.applied"]
    assert [e["correlation_id"] for e in applied] == ["test-corr"] * 3
    assert [(e["log_level"], e["position"]) for e in applied] == [("info", 1), ("debug", 2), ("debug", 3)]


# ---- projections that apply a run at a time ------------------------------------------------------------
def run_projection(fail_on=None, waiting=None):
    """The counting projection with a run handler that applies each run in order through the same writes,
    recording the positions of each run it applied; ``waiting`` names events that are NotReady for now."""
    projection = counting_projection(fail_on=fail_on)
    counting = projection.handlers["AgencyRegistered"]
    runs: list[list[int]] = []
    one_by_one: list[int] = []

    @projection.on("AgencyRegistered")
    async def on_agency_registered(conn, event, env):
        if waiting is not None and event.agency_id in waiting:
            raise NotReady(f"{event.agency_id} waits")
        one_by_one.append(env.position)
        await counting(conn, event, env)

    @projection.on_run
    async def apply_run(conn, events):
        for event, env in events:  # written one by one here, so a failure comes after earlier writes
            if waiting is not None and event.agency_id in waiting:
                raise NotReady(f"{event.agency_id} waits")
            await counting(conn, event, env)
        runs.append([env.position for _, env in events])

    return projection, runs, one_by_one


async def _published(engine, jetstream, count):
    """``count`` events on the stream before the consumer starts, so they arrive as one run."""
    await append_agencies(engine, EventStore("registry"), 1, count)
    relay = Relay("registry", engine, jetstream, BackboneMetrics("registry"))
    async with engine.connect() as conn:
        await relay._lead(conn)
        await jetstream.ensure_stream(relay._stream)
        await relay.pump(conn)


async def test_a_run_handler_applies_whole_runs_instead_of_the_handlers(engine, jetstream):
    await create_test_tables(engine)
    projection, runs, one_by_one = run_projection()
    await _published(engine, jetstream, 120)
    run = Running(engine, jetstream, projection=projection).start(relay=False)
    await eventually(lambda: _all_applied(engine, 120))
    await run.close()
    assert set((await projected(engine)).values()) == {1}
    assert [p for r in runs for p in r] == list(range(1, 121))  # every event once, in order
    assert max(len(r) for r in runs) == 50                       # whole runs (the consumer's batch)
    assert one_by_one == []
    assert run.m.events_consumed.labels(run.consumer.name, "AgencyRegistered")._value.get() == 120
    assert run.m.run_fallbacks.labels(run.consumer.name)._value.get() == 0


async def test_under_a_steady_stream_runs_begin_at_most_every_run_interval(engine, jetstream):
    """Events coming one after another soon after a run are held until ``run_interval`` has passed since it
    began, then applied as one run (fewer transactions under load); nothing is lost or applied twice."""
    await create_test_tables(engine)
    projection, runs, one_by_one = run_projection()
    run = Running(engine, jetstream, projection=projection)
    run.consumer._run_interval = 2.0
    run.start()
    store = EventStore("registry")
    await append_agencies(engine, store, 1, 1)
    await eventually(lambda: _all_applied(engine, 1))
    for i in range(2, 12):  # one transaction each, published by the relay as they come
        await append_agencies(engine, store, i, 1)
    await eventually(lambda: _all_applied(engine, 11))
    await run.close()
    assert runs == [[1], list(range(2, 12))] and one_by_one == []
    assert set((await projected(engine)).values()) == {1}


async def test_when_a_consumer_holds_events_back(engine, jetstream):
    """``_pause``: only while less than a batch waits and the last run began less than ``run_interval`` ago;
    never while rebuilding or without the setting; events held make the next fetch a short one."""
    consumer = Running(engine, jetstream).consumer
    consumer._buffer = {1: object()}
    assert consumer._pause() <= 0  # no run_interval: applied at once
    consumer._run_interval = 5.0
    consumer._last_run = time.monotonic()
    assert 4 < consumer._pause() <= 5
    consumer._last_run -= 10  # a quiet spell since the last run: at once
    assert consumer._pause() <= 0
    consumer._last_run = time.monotonic()
    consumer._rebuilding = True
    assert consumer._pause() == 0
    consumer._rebuilding = False
    consumer._buffer = dict.fromkeys(range(1, 51), object())  # a whole batch (50) waits: at once
    assert consumer._pause() == 0
    consumer._buffer = {}
    assert consumer._pause() == 0
    assert consumer._next_timeout() == 0.2  # fetch_timeout
    consumer._held = True
    assert consumer._next_timeout() == 0.05


async def test_a_run_with_a_poison_event_falls_back_to_the_handlers_and_undoes_the_run(engine, jetstream):
    await create_test_tables(engine)
    projection, runs, one_by_one = run_projection(fail_on=lambda e: e.agency_id == "a3")
    await _published(engine, jetstream, 6)
    run = Running(engine, jetstream, projection=projection,
                  retry=RetryPolicy(max_attempts=2, backoff=(0.05,))).start(relay=False)
    await eventually(lambda: _consumed(run, 6))
    await run.close()
    # a1 and a2 were written by the failed run handler, undone, then applied by the handlers: once each.
    assert await projected(engine) == {"a1": 1, "a2": 1, "a4": 1, "a5": 1, "a6": 1}
    async with engine.connect() as conn:
        dl = (await conn.execute(select(dead_letters))).mappings().one()
    assert dl["position"] == 3 and "poison: a3" in dl["error"] and dl["deliveries"] == 2
    assert run.m.run_fallbacks.labels(run.consumer.name)._value.get() >= 1
    # The handlers found a3 (a1 and a2 applied before it were rolled back with it); the events before it
    # were then committed as a run, and after the dead letter the rest as a run again.
    assert runs == [[1, 2], [4, 5, 6]] and one_by_one == [1, 2, 3, 3]  # a3 by the handlers, once per attempt


async def test_a_run_waiting_for_another_producer_applies_its_prefix_then_the_rest_once_ready(engine, jetstream):
    await create_test_tables(engine)
    waiting = {"a4"}
    projection, runs, one_by_one = run_projection(waiting=waiting)
    await _published(engine, jetstream, 6)
    run = Running(engine, jetstream, projection=projection).start(relay=False)
    await eventually(lambda: _consumed(run, 3))
    await asyncio.sleep(0.5)
    assert run.consumer.position == 3 and sorted(await projected(engine)) == ["a1", "a2", "a3"]
    waiting.clear()  # what a4 waited for has arrived
    await eventually(lambda: _consumed(run, 6))
    await run.close()
    assert set((await projected(engine)).values()) == {1} and len(await projected(engine)) == 6
    async with engine.connect() as conn:
        assert (await conn.execute(select(dead_letters))).first() is None  # NotReady never dead-letters
    assert [p for r in runs for p in r] == [1, 2, 3, 4, 5, 6]
    # The handlers only looked for the event at fault (what they wrote before it was rolled back with it);
    # what was committed, was committed by runs, each event once.
    assert one_by_one == [1, 2, 3]


async def test_a_rebuild_meets_an_event_it_cannot_decode_as_the_live_consumer_did(engine, jetstream):
    """The rebuild's reader decodes events ahead of the runs; one whose payload is not its event's leaves
    the run to the handlers, which dead-letter it (once: the live consumer did already) and go on."""
    import uuid

    await create_test_tables(engine)
    projection, runs, _ = run_projection()
    projection.rebuild_handler = projection.run_handler
    await _published(engine, jetstream, 5)
    last = [m async for m in jetstream.read_stream("SIPAS_REGISTRY")][-1]
    bad = Envelope.from_json(last.data).model_copy(update={"id": uuid.uuid4(), "position": 6,
                                                           "data": {"agency_id": "a6"}})  # no name, no level
    await jetstream.publish_batch([OutMessage(last.subject, bad.to_json(), str(bad.id))])
    run = Running(engine, jetstream, projection=projection,
                  retry=RetryPolicy(max_attempts=2, backoff=(0.05,))).start(relay=False)
    await eventually(lambda: _consumed(run, 5))
    await eventually(lambda: _dead_lettered(engine, 1))
    (before, rows), (after, rows_after) = await _rebuilt(engine, run, runs)
    async with engine.connect() as conn:
        dl = (await conn.execute(select(dead_letters))).mappings().one()
    position = run.consumer.position
    await run.close()
    assert before == after and rows == rows_after == 5
    assert runs == [[1, 2, 3, 4, 5]] and position == 6
    assert dl["position"] == 6 and dl["status"] == "dead" and "name" in dl["error"]


async def _rebuilt(engine, run, runs):
    """The projection's export digest before and after a rebuild; ``runs`` then holds the rebuild's runs only."""
    async with engine.connect() as conn:
        before = await export_digest(conn, run.projection.tables)
    runs.clear()
    await run.consumer.rebuild()
    async with engine.connect() as conn:
        return before, await export_digest(conn, run.projection.tables)


async def _dead_lettered(engine, n):
    async with engine.connect() as conn:
        return len((await conn.execute(select(dead_letters.c.id))).all()) >= n


async def test_a_rebuild_or_a_stop_does_not_wait_out_an_idle_fetch(engine, jetstream, monkeypatch):
    """An idle consumer waits on a fetch up to its timeout (a minute here); a rebuild asked meanwhile is
    served while that fetch still waits (it is kept for afterwards), and stopping does not wait for it."""
    await create_test_tables(engine)
    await _published(engine, jetstream, 5)
    fetches: list[dict] = []
    subscribe = jetstream.subscribe

    async def spied_subscribe(config):
        sub = await subscribe(config)
        fetch = sub.fetch

        async def spied_fetch(batch, timeout):
            call = {"timeout": timeout, "done": False}
            fetches.append(call)
            try:
                return await fetch(batch, timeout)
            finally:
                call["done"] = True

        sub.fetch = spied_fetch
        return sub

    monkeypatch.setattr(jetstream, "subscribe", spied_subscribe)
    run = Running(engine, jetstream)
    run.consumer = Consumer("ballots", run.projection, engine, jetstream, run.m, batch=50, fetch_timeout=60.0,
                            replay=StoreReplaySource({"registry": engine}))
    run.start(relay=False)
    await eventually(lambda: _consumed(run, 5))
    await eventually(lambda: _waiting(fetches))
    waiting = fetches[-1]
    async with engine.connect() as conn:
        before, rows = await export_digest(conn, run.projection.tables)
    await run.consumer.rebuild()
    served_while_waiting = not waiting["done"]
    async with engine.connect() as conn:
        after, _ = await export_digest(conn, run.projection.tables)
    await run.close()
    assert waiting["timeout"] == 60.0 and served_while_waiting
    assert before == after and rows == 5
    assert waiting["done"]  # cancelled when the consumer stopped, not waited out


async def _waiting(fetches):
    return bool(fetches) and not fetches[-1]["done"]


async def test_a_rebuild_meets_an_event_published_twice_at_two_positions(engine, jetstream):
    """The stream holds one event again at a later position (a copy published outside the dedupe window):
    the live consumer skips the copy by its inbox, and so does a rebuild, whose runs COPY their inbox rows
    and fall back to the INSERT that skips it."""
    await create_test_tables(engine)
    projection, runs, _ = run_projection()
    projection.rebuild_handler = projection.run_handler
    await _published(engine, jetstream, 5)
    stored = [m async for m in jetstream.read_stream("SIPAS_REGISTRY")]
    again = Envelope.from_json(stored[2].data).model_copy(update={"position": 6})  # the same id as position 3
    await jetstream.publish_batch([OutMessage(stored[2].subject, again.to_json(), f"{again.id}-again")])
    run = Running(engine, jetstream, projection=projection).start(relay=False)
    await eventually(lambda: _consumed(run, 5))
    await eventually(lambda: _dupes(run, 1))
    (before, rows), (after, _) = await _rebuilt(engine, run, runs)
    async with engine.connect() as conn:
        kept = (await conn.execute(select(inbox.c.position).where(inbox.c.consumer == run.consumer.name))).all()
    position = run.consumer.position
    await run.close()
    assert before == after and rows == 5 and position == 6
    assert sorted(p for (p,) in kept) == [1, 2, 3, 4, 5]  # the copy at 6 was never applied
    assert runs == [[1, 2, 3, 4, 5]]


def _rebuild_by_records(projection, received):
    """A rebuild handler writing the test projection from ``prepare_registered``'s records (or, for an event
    the reader did not prepare — one filled from the store — from the event)."""
    from sipas_events.testing import seen

    @projection.on_rebuild_run
    async def rebuilding(conn, events):
        received.extend(events)
        rows = []
        for record, head in events:
            agency_id, name = (record[1], record[2]) if isinstance(record, tuple) else (record.agency_id, record.name)
            rows.append({"agency_id": agency_id, "name": name, "applied": 1, "position": head.position})
        await conn.execute(seen.insert(), rows)


async def _projected_by_records(engine, jetstream, n, context=None):
    """The test projection rebuilt from ``prepare_registered``'s records, with a reader process whatever the
    stream's length, once ``n`` agencies are applied live: (the running consumer, the projection, what its
    rebuild handler receives, the projection's digest before any rebuild)."""
    from sipas_events.testing import prepare_registered

    await create_test_tables(engine)
    projection = counting_projection()
    received: list = []
    _rebuild_by_records(projection, received)
    projection.prepare_for_rebuild(prepare_registered)
    if context is not None:
        projection.context_for_rebuild(context)
    run = Running(engine, jetstream, projection).start()
    run.consumer.rebuild_process_min = 0
    await append_agencies(engine, EventStore("registry"), 1, n)
    await eventually(lambda: _all_applied(engine, n), timeout=120)
    async with engine.connect() as conn:
        before, rows = await export_digest(conn, projection.tables)
    assert rows == n
    return run, projection, received, before


@pytest.mark.parametrize("share", [1.0, 0.5])
async def test_a_long_rebuild_reads_and_prepares_in_a_process_of_its_own(engine, jetstream, monkeypatch, share):
    """Past ``rebuild_process_min`` messages a child process reads the stream, validates, decodes and prepares
    the events of its share of the batches (the consumer those of the others); the runs get what was
    prepared, with a stamp of the envelope from the child, and the projection comes out byte for byte as
    before — a message missing from the stream still filled from the store."""
    from sqlalchemy import text

    from sipas_events import rebuild_reader
    from sipas_events.envelope import Stamp

    monkeypatch.setattr(rebuild_reader, "BATCH", 10)
    monkeypatch.setattr(rebuild_reader, "SHARE", share)

    async def context(conn):
        return {"asked": (await conn.execute(text("SELECT 41 + 1"))).scalar()}

    run, projection, received, before = await _projected_by_records(engine, jetstream, 120, context)
    await jetstream._js.delete_msg("SIPAS_REGISTRY", 40)
    await run.consumer.rebuild()
    async with engine.connect() as conn:
        after, rows_after = await export_digest(conn, projection.tables)
        stored = [Envelope.model_validate_json(e.envelope_json())
                  for e in await EventStore("registry").read_all(conn, 0, 200)]
    await run.close()
    assert run.consumer.rebuild_reader == "process"
    assert rows_after == 120 and before == after
    # The 40th came from the store, as an envelope with its event; the others prepared, by either process.
    prepared = [(record, head) for record, head in received if isinstance(record, tuple)]
    by_child = [head for _, head in prepared if isinstance(head, Stamp)]
    assert len(prepared) == 119 and len(received) == 120
    assert len(by_child) == (119 if share == 1.0 else 59)  # positions 11-20, 31-40 (but 40), ... came as bytes
    assert [record for record, _ in prepared] == [("prepared", f"a{p}", f"Đơn vị {p}", p, {"asked": 42})
                                                  for p in range(1, 121) if p != 40]
    assert [head if isinstance(head, Stamp) else Stamp.of(head) for _, head in prepared] == [
        Stamp.of(env) for env in stored if env.position != 40]
    assert set((await projected(engine)).values()) == {1}


async def test_a_rebuild_whose_reader_process_is_lost_stops_and_the_next_one_completes(engine, jetstream, monkeypatch):
    """The reader process killed once the consumer has its first batch (the pipe cannot hold the rest): the
    rebuild raises (as when NATS goes away); the next rebuild reads everything again and reproduces the
    projection."""
    import psutil

    from sipas_events import frames, rebuild_reader

    monkeypatch.setattr(rebuild_reader, "BATCH", 100)
    monkeypatch.setattr(rebuild_reader, "SHARE", 1.0)
    started, killed = [], []
    spawn, read = rebuild_reader.asyncio.create_subprocess_exec, frames.aread

    async def spawning(*args, **kwargs):
        started.append(await spawn(*args, **kwargs))
        return started[-1]

    async def reading(reader):
        found = await read(reader)
        if not killed:
            started[-1].kill()
            killed.append(started[-1].pid)
        return found

    n = 2000
    run, projection, _, before = await _projected_by_records(engine, jetstream, n)
    monkeypatch.setattr(rebuild_reader.asyncio, "create_subprocess_exec", spawning)
    monkeypatch.setattr(frames, "aread", reading)
    with pytest.raises(Exception, match="reader process of SIPAS_REGISTRY was lost"):
        await run.consumer.rebuild()
    assert len(killed) == 1 and len(await projected(engine)) < n  # it stopped half-way
    await run.consumer.rebuild()
    async with engine.connect() as conn:
        after, rows = await export_digest(conn, projection.tables)
    await run.close()
    assert rows == n and after == before
    assert len(started) == 2 and all(p.returncode is not None for p in started)  # none left behind
    assert not psutil.pid_exists(killed[0]) or psutil.Process(killed[0]).status() == psutil.STATUS_ZOMBIE


async def test_a_reader_process_that_cannot_start_leaves_the_rebuild_to_this_process(engine, jetstream, monkeypatch):
    """The child fails before its first batch (here: a share it cannot use): the rebuild reads in its own
    process instead, and reproduces the projection."""
    from sipas_events import rebuild_reader

    monkeypatch.setattr(rebuild_reader, "SHARE", "not a share")
    run, projection, received, before = await _projected_by_records(engine, jetstream, 60)
    await run.consumer.rebuild()
    async with engine.connect() as conn:
        after, rows = await export_digest(conn, projection.tables)
    await run.close()
    assert run.consumer.rebuild_reader == "in-process"
    assert rows == 60 and after == before
    assert [record[1] for record, _ in received] == [f"a{i}" for i in range(1, 61)]  # prepared here, in order


async def test_a_rebuild_that_deadlocks_with_a_reader_truncates_again(engine, fresh_db, jetstream):
    """A reader holding one of the projection's tables while it asks for another deadlocks with the rebuild's
    TRUNCATE (which takes them one after another). PostgreSQL ends the TRUNCATE here (its wait is the older one,
    and the reader's deadlock timeout is set long); the rebuild runs it again once the reader is done, and
    completes. A deadlock is transient: a consumer retries it, never dead-letters an event for it.

    Which side PostgreSQL ends is decided by whose deadlock check runs first (each waits its own
    ``deadlock_timeout`` after it begins to wait, then checks once), so each step waits until the other side
    is seen waiting rather than for a fixed time, and the side meant to be ended checks after 2 s, not the
    default 1 s, leaving room on a loaded machine."""
    from sqlalchemy import Column, MetaData, Table, Text, text
    from sqlalchemy.ext.asyncio import create_async_engine

    from sipas_events.consumer import is_transient
    from sipas_events.testing import seen

    await create_test_tables(engine)
    extra_metadata = MetaData()
    extra = Table("test_rebuild_extra", extra_metadata, Column("k", Text, primary_key=True))
    async with engine.begin() as conn:
        await conn.run_sync(extra_metadata.create_all)
    projection = counting_projection()
    projection.tables.append(extra)
    rebuilds = create_async_engine(fresh_db, connect_args={"server_settings": {"deadlock_timeout": "2s"}})
    run = Running(rebuilds, jetstream, projection=projection).start()
    await append_agencies(engine, EventStore("registry"), 1, 10)
    await eventually(lambda: _all_applied(engine, 10))

    def waiting(statement: str) -> Callable[[], Awaitable[bool]]:
        async def check() -> bool:
            async with engine.connect() as conn:
                return bool((await conn.execute(text(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE :q"
                ), {"q": statement + "%"})).scalar())
        return check

    async with engine.connect() as reader:
        await reader.execute(text("SET deadlock_timeout = '60s'"))  # the rebuild's check finds the cycle first
        await reader.execute(select(extra))  # holds test_rebuild_extra
        rebuilding = asyncio.create_task(run.consumer.rebuild())
        await eventually(waiting("TRUNCATE"), every=0.01)  # holds test_agencies, waits for test_rebuild_extra
        await reader.execute(select(seen))  # waits for test_agencies: a cycle, which PostgreSQL breaks
        await reader.commit()
    await rebuilding
    assert await _all_applied(engine, 10) and set((await projected(engine)).values()) == {1}
    await run.close()
    await rebuilds.dispose()

    async with engine.connect() as a, engine.connect() as b:  # a deadlock as a consumer would meet it
        await b.execute(text("SET deadlock_timeout = '60s'"))
        await a.execute(select(seen).with_for_update())
        await b.execute(select(extra).with_for_update())
        locking = asyncio.create_task(b.execute(text("LOCK TABLE test_agencies IN ACCESS EXCLUSIVE MODE")))
        await eventually(waiting("LOCK TABLE test_agencies"), every=0.01)
        with pytest.raises(Exception) as deadlock:
            await a.execute(text("LOCK TABLE test_rebuild_extra IN ACCESS EXCLUSIVE MODE"))
        await a.rollback()
        await locking
        await b.rollback()
    assert "deadlock" in str(deadlock.value) and is_transient(deadlock.value)
