"""One contract, two transports: the in-memory bus must behave like JetStream where SIPAS relies on it."""

import asyncio

import pytest

from sipas_events.bus.base import ConsumerConfig, OutMessage, StreamConfig
from sipas_events.bus.jetstream import JetStreamBus
from sipas_events.bus.memory import MemoryBus, subject_matches


@pytest.fixture(params=["memory", "jetstream"])
async def bus(request, stack):
    if request.param == "memory":
        yield MemoryBus()
        return
    real = await JetStreamBus.connect(stack.nats.url, name="contract")
    for info in await real._js.streams_info():
        await real._js.delete_stream(info.config.name)
    yield real
    await real.close()


STREAM = StreamConfig("SIPAS_REGISTRY", ["sipas.registry.>"], duplicate_window=60)


def msg(i, province="01"):
    return OutMessage(f"sipas.registry.AgencyRegistered.{province}", f"payload-{i}".encode(), f"id-{i}")


async def test_publish_stores_in_order_and_drops_repeated_ids(bus):
    await bus.ensure_stream(STREAM)
    first = await bus.publish_batch([msg(i) for i in range(5)])
    again = await bus.publish_batch([msg(2), msg(5)])
    assert [r.duplicate for r in first] == [False] * 5
    assert [r.duplicate for r in again] == [True, False]
    assert again[0].seq == first[2].seq
    stored = [m async for m in bus.read_stream("SIPAS_REGISTRY")]
    assert [m.data for m in stored] == [f"payload-{i}".encode() for i in range(6)]
    assert await bus.stream_size("SIPAS_REGISTRY") == 6


async def test_reading_a_stream_from_a_position_through_a_filter_across_many_batches(bus, monkeypatch):
    """The reader asks JetStream for batches (made small here), keeps two ahead and stops at the last
    message there was when it started; a filter whose last match is not the stream's last message ends
    the read too, and a message lost from the stream is skipped, not waited for."""
    import sipas_events.bus.jetstream as jetstream

    monkeypatch.setattr(jetstream, "READ_BATCH", 7)
    await bus.ensure_stream(STREAM)
    await bus.publish_batch([msg(i, province="01" if i % 3 else "79") for i in range(60)])
    await bus.publish_batch([msg(60, province="02")])  # the last message matches no filter below
    if isinstance(bus, JetStreamBus):
        await bus._js.delete_msg("SIPAS_REGISTRY", 20)
    else:
        bus.lose("SIPAS_REGISTRY", 20)
    everything = [m async for m in bus.read_stream("SIPAS_REGISTRY")]
    assert [m.seq for m in everything] == [s for s in range(1, 62) if s != 20]
    assert await bus.stream_size("SIPAS_REGISTRY") == 60  # what it holds, not its last sequence
    if isinstance(bus, JetStreamBus):  # the in-memory bus keeps no headers of its own
        assert everything[0].headers["Nats-Msg-Id"] == "id-0"
    hanoi = [m async for m in bus.read_stream("SIPAS_REGISTRY", "sipas.registry.*.01", start_seq=11)]
    assert [m.data for m in hanoi] == [f"payload-{i}".encode() for i in range(10, 60) if i % 3 and i != 19]
    assert [m async for m in bus.read_stream("SIPAS_REGISTRY", start_seq=62)] == []
    await bus.publish_batch([msg(61)])  # what arrives after a read started is not waited for
    reader = bus.read_stream("SIPAS_REGISTRY", start_seq=61)
    first = await reader.__anext__()
    await bus.publish_batch([msg(62)])
    assert [first.seq] + [m.seq async for m in reader] == [61, 62]


async def test_reading_large_messages_asks_for_fewer_at_a_time(bus, monkeypatch):
    """Each read request asks for about ``READ_BYTES`` over the largest message read so far (nats-server cuts
    a client with more than ``max_pending`` unread): large messages are read in small asks, every one of them,
    in order, and small ones after them still come."""
    import sipas_events.bus.jetstream as jetstream

    monkeypatch.setattr(jetstream, "READ_BYTES", 1_000_000)  # 3 of these 300 KB messages an ask
    await bus.ensure_stream(STREAM)
    big = [OutMessage("sipas.registry.AgencyRegistered.01", bytes([i]) * 300_000, f"big-{i}") for i in range(12)]
    await bus.publish_batch(big)
    await bus.publish_batch([msg(i) for i in range(20)])
    read = [m async for m in bus.read_stream("SIPAS_REGISTRY")]
    assert [m.data for m in read] == [b.payload for b in big] + [f"payload-{i}".encode() for i in range(20)]


async def test_durable_consumer_resumes_after_its_ack_floor(bus):
    await bus.ensure_stream(STREAM)
    await bus.publish_batch([msg(i) for i in range(6)])
    cfg = ConsumerConfig("c1", "SIPAS_REGISTRY", ack_wait=30)
    sub = await bus.subscribe(cfg)
    got = await sub.fetch(4, timeout=2)
    assert [d.data for d in got] == [f"payload-{i}".encode() for i in range(4)]
    for d in got:
        await d.ack()
    again = await bus.subscribe(cfg)  # a restarted process binds the same durable
    rest = await again.fetch(10, timeout=2)
    assert [d.data for d in rest] == [b"payload-4", b"payload-5"]
    assert all(d.num_delivered == 1 for d in rest)


async def test_nak_with_delay_redelivers_and_counts(bus):
    await bus.ensure_stream(STREAM)
    await bus.publish_batch([msg(1)])
    sub = await bus.subscribe(ConsumerConfig("c2", "SIPAS_REGISTRY", ack_wait=30))
    [d] = await sub.fetch(1, timeout=2)
    await d.nak(delay=0.2)
    assert await sub.fetch(1, timeout=0.1) == []
    [again] = await sub.fetch(1, timeout=3)
    assert again.data == b"payload-1" and again.num_delivered == 2 and again.stream_seq == d.stream_seq
    await again.ack()
    assert await sub.fetch(1, timeout=0.3) == []


async def test_unacked_messages_come_back_after_ack_wait(bus):
    await bus.ensure_stream(STREAM)
    await bus.publish_batch([msg(1)])
    sub = await bus.subscribe(ConsumerConfig("c3", "SIPAS_REGISTRY", ack_wait=1))
    [_] = await sub.fetch(1, timeout=2)
    await asyncio.sleep(1.3)
    [again] = await sub.fetch(1, timeout=3)
    assert again.num_delivered == 2


async def test_filter_and_empty_fetch(bus):
    await bus.ensure_stream(STREAM)
    await bus.publish_batch([msg(1, "01"), msg(2, "79"), msg(3, "01")])
    sub = await bus.subscribe(ConsumerConfig("c4", "SIPAS_REGISTRY", filter_subject="sipas.registry.*.79"))
    got = await sub.fetch(10, timeout=1)
    assert [d.data for d in got] == [b"payload-2"]
    assert await sub.fetch(10, timeout=0.2) == []


def test_subject_matching():
    assert subject_matches("sipas.registry.>", "sipas.registry.AgencyRegistered.01")
    assert subject_matches("sipas.*.*.01", "sipas.ballots.BallotAccepted.01")
    assert not subject_matches("sipas.*.*.01", "sipas.ballots.BallotAccepted.79")
    assert not subject_matches("sipas.registry.>", "sipas.registry")
