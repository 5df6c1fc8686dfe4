"""An in-memory bus with JetStream's semantics where SIPAS relies on them.

Streams bind subjects; a repeated ``msg_id`` within the duplicate window is stored once; durable
consumers resume from their ack floor, redeliver unacknowledged messages after ``ack_wait`` or a
``nak`` delay, and count deliveries.
"""

from __future__ import annotations

import asyncio
import bisect
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

from sipas_events.bus.base import (
    ConsumerConfig,
    OutMessage,
    PublishResult,
    StoredMessage,
    StreamConfig,
)


def subject_matches(pattern: str, subject: str) -> bool:
    p, s = pattern.split("."), subject.split(".")
    for i, part in enumerate(p):
        if part == ">":
            return len(s) > i
        if i >= len(s) or (part != "*" and part != s[i]):
            return False
    return len(p) == len(s)


@dataclass
class _Stream:
    config: StreamConfig
    messages: list[StoredMessage] = field(default_factory=list)
    seen: dict[str, tuple[int, float]] = field(default_factory=dict)
    last_seq: int = 0

    def index_from(self, seq: int) -> int:
        return bisect.bisect_left(self.messages, seq, key=lambda m: m.seq)


@dataclass
class _Pending:
    deliveries: int
    due: float


@dataclass
class _Consumer:
    config: ConsumerConfig
    next_seq: int = 1
    pending: dict[int, _Pending] = field(default_factory=dict)


class MemoryDelivery:
    def __init__(self, bus: MemoryBus, consumer: _Consumer, msg: StoredMessage, count: int, pending: int) -> None:
        self._bus, self._consumer, self._msg = bus, consumer, msg
        self._count, self._pending = count, pending

    data = property(lambda self: self._msg.data)
    subject = property(lambda self: self._msg.subject)
    headers = property(lambda self: dict(self._msg.headers))
    stream_seq = property(lambda self: self._msg.seq)
    num_delivered = property(lambda self: self._count)
    num_pending = property(lambda self: self._pending)

    async def ack(self) -> None:
        self._consumer.pending.pop(self._msg.seq, None)

    async def term(self) -> None:
        self._consumer.pending.pop(self._msg.seq, None)

    async def nak(self, delay: float | None = None) -> None:
        entry = self._consumer.pending.get(self._msg.seq)
        if entry is not None:
            entry.due = time.monotonic() + (delay or 0.0)
            self._bus._wake.set()


class MemorySubscription:
    def __init__(self, bus: MemoryBus, consumer: _Consumer) -> None:
        self._bus, self._consumer = bus, consumer

    async def fetch(self, batch: int, timeout: float) -> list[MemoryDelivery]:
        deadline = time.monotonic() + timeout
        while True:
            out = self._take(batch)
            if out:
                return out
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return []
            self._bus._wake.clear()
            try:
                await asyncio.wait_for(self._bus._wake.wait(), timeout=min(remaining, 0.05))
            except TimeoutError:
                pass

    def _take(self, batch: int) -> list[MemoryDelivery]:
        stream = self._bus._streams[self._consumer.config.stream]
        c, now = self._consumer, time.monotonic()
        out: list[MemoryDelivery] = []
        by_seq = {m.seq: m for m in stream.messages}
        for seq in sorted(s for s, p in c.pending.items() if p.due <= now):
            if len(out) >= batch:
                break
            entry, msg = c.pending[seq], by_seq.get(seq)
            if msg is None:  # lost from the stream meanwhile
                del c.pending[seq]
                continue
            entry.deliveries += 1
            entry.due = now + c.config.ack_wait
            out.append(MemoryDelivery(self._bus, c, msg, entry.deliveries, self._remaining(stream)))
        index = stream.index_from(c.next_seq)
        while len(out) < batch and index < len(stream.messages) and len(c.pending) < c.config.max_ack_pending:
            msg = stream.messages[index]
            index += 1
            c.next_seq = msg.seq + 1
            if c.config.filter_subject and not subject_matches(c.config.filter_subject, msg.subject):
                continue
            c.pending[msg.seq] = _Pending(1, now + c.config.ack_wait)
            out.append(MemoryDelivery(self._bus, c, msg, 1, self._remaining(stream)))
        return out

    def _remaining(self, stream: _Stream) -> int:
        return len(stream.messages) - stream.index_from(self._consumer.next_seq)


class MemoryBus:
    url: str | None = None  # in this process only

    def __init__(self) -> None:
        self._streams: dict[str, _Stream] = {}
        self._consumers: dict[tuple[str, str], _Consumer] = {}
        self._wake = asyncio.Event()

    async def ensure_stream(self, config: StreamConfig) -> None:
        if config.name in self._streams:
            self._streams[config.name].config = config
        else:
            self._streams[config.name] = _Stream(config)

    def _stream_for(self, subject: str) -> _Stream:
        for stream in self._streams.values():
            if any(subject_matches(p, subject) for p in stream.config.subjects):
                return stream
        raise LookupError(f"no stream binds subject {subject}")

    async def publish_batch(self, messages: Sequence[OutMessage]) -> list[PublishResult]:
        results = []
        now = time.monotonic()
        for m in messages:
            stream = self._stream_for(m.subject)
            seen = stream.seen.get(m.msg_id)
            if seen and now - seen[1] < stream.config.duplicate_window:
                results.append(PublishResult(stream.config.name, seen[0], True))
                continue
            stream.last_seq += 1
            seq = stream.last_seq
            stream.messages.append(StoredMessage(seq, m.subject, m.payload, dict(m.headers)))
            stream.seen[m.msg_id] = (seq, now)
            results.append(PublishResult(stream.config.name, seq, False))
        self._wake.set()
        return results

    async def subscribe(self, config: ConsumerConfig) -> MemorySubscription:
        if config.stream not in self._streams:
            raise LookupError(f"no stream {config.stream}")
        key = (config.stream, config.durable)
        consumer = self._consumers.setdefault(key, _Consumer(config))
        return MemorySubscription(self, consumer)

    async def stream_size(self, stream: str) -> int:
        return len(self._streams[stream].messages)

    async def read_stream(
        self, stream: str, subject: str | None = None, start_seq: int = 1
    ) -> AsyncIterator[StoredMessage]:
        for msg in list(self._streams[stream].messages):
            if msg.seq >= start_seq and (subject is None or subject_matches(subject, msg.subject)):
                yield msg

    async def close(self) -> None:
        return None

    # Test helpers, mirroring what can happen to a real server.
    def lose(self, stream: str, seq: int) -> None:
        """Drop a stored message, as a crashed unsynced server may (the producer store still has it)."""
        s = self._streams[stream]
        s.messages = [m for m in s.messages if m.seq != seq]
