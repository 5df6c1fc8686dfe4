"""The real transport: NATS JetStream through nats-py."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import deque
from collections.abc import AsyncIterator, Sequence

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import api

from sipas_events.bus.base import (
    BusUnavailable,
    ConsumerConfig,
    OutMessage,
    PublishResult,
    StoredMessage,
    StreamConfig,
)

READ_BATCH = 1000
"""Messages asked for at a time when reading a stream (two such requests are kept ahead), at most."""
READ_BYTES = 8 * 1024 * 1024
"""About the most one read request may bring: a request asks for this over the largest message read so far
(two are kept ahead; nats-server cuts a client with more than 64 MiB unread as a slow consumer)."""
READ_FIRST_GUESS = 64 * 1024
"""The message size a read assumes before it has read any."""
READ_EXPIRES_NS = 5_000_000_000
"""How long the server holds a read request it cannot fill yet (it answers 408 then; the reader asks again)."""
READ_STALL = 30.0
"""Seconds without a message while reading a stream before the read fails (BusUnavailable)."""


class JetStreamDelivery:
    __slots__ = ("_meta", "_msg")

    def __init__(self, msg: Msg) -> None:
        self._msg = msg
        self._meta: Msg.Metadata | None = None  # parsed from the reply subject on first use only

    def _metadata(self) -> Msg.Metadata:
        if self._meta is None:
            self._meta = self._msg.metadata
        return self._meta

    data = property(lambda self: self._msg.data)
    subject = property(lambda self: self._msg.subject)
    headers = property(lambda self: dict(self._msg.headers or {}))
    stream_seq = property(lambda self: self._metadata().sequence.stream)
    num_delivered = property(lambda self: self._metadata().num_delivered)
    num_pending = property(lambda self: self._metadata().num_pending)

    async def ack(self) -> None:
        await self._msg.ack()

    async def nak(self, delay: float | None = None) -> None:
        await self._msg.nak(delay=delay)

    async def term(self) -> None:
        await self._msg.term()


class JetStreamSubscription:
    def __init__(self, sub: object) -> None:
        self._sub = sub

    async def fetch(self, batch: int, timeout: float) -> list[JetStreamDelivery]:
        try:
            msgs = await self._sub.fetch(batch, timeout=timeout)  # type: ignore[attr-defined]
        except (nats.errors.TimeoutError, TimeoutError):
            return []
        except (nats.errors.ConnectionClosedError, nats.errors.NoServersError,
                nats.js.errors.ServiceUnavailableError, nats.errors.ConnectionReconnectingError) as exc:
            raise BusUnavailable(str(exc)) from exc
        return [JetStreamDelivery(m) for m in msgs]


class JetStreamBus:
    def __init__(self, nc: Client, publish_timeout: float = 10.0, url: str | None = None) -> None:
        self._nc = nc
        self._js = nc.jetstream(publish_async_max_pending=8192)
        self._publish_timeout = publish_timeout
        self.url = url  # what it connected to, for a process of ours that reads beside it

    @classmethod
    async def connect(cls, url: str, name: str) -> JetStreamBus:
        nc = await nats.connect(
            url, name=name, allow_reconnect=True, max_reconnect_attempts=-1,
            reconnect_time_wait=0.25, connect_timeout=5,
        )
        return cls(nc, url=url)

    async def stream_size(self, stream: str) -> int:
        """How many messages ``stream`` holds now."""
        try:
            return int((await self._js.stream_info(stream)).state.messages)
        except (nats.errors.Error, TimeoutError) as exc:
            raise BusUnavailable(f"cannot read {stream}: {exc!r}") from exc

    @property
    def connected(self) -> bool:
        return self._nc.is_connected

    async def ensure_stream(self, config: StreamConfig) -> None:
        cfg = api.StreamConfig(
            name=config.name, subjects=config.subjects, storage=api.StorageType.FILE,
            num_replicas=config.replicas, duplicate_window=config.duplicate_window,
            max_age=config.max_age or None, retention=api.RetentionPolicy.LIMITS,
        )
        try:
            await self._js.add_stream(cfg)
        except nats.js.errors.BadRequestError:
            await self._js.update_stream(cfg)

    async def publish_batch(self, messages: Sequence[OutMessage]) -> list[PublishResult]:
        try:
            futures = [
                await self._js.publish_async(
                    m.subject, m.payload, headers={**m.headers, "Nats-Msg-Id": m.msg_id}
                )
                for m in messages
            ]
            acks = await asyncio.wait_for(asyncio.gather(*futures), self._publish_timeout)
        except (nats.errors.ConnectionClosedError, nats.errors.NoServersError,
                nats.errors.ConnectionReconnectingError, nats.errors.OutboundBufferLimitError,
                nats.js.errors.NoStreamResponseError, TimeoutError) as exc:
            raise BusUnavailable(f"publish failed: {exc!r}") from exc
        return [PublishResult(a.stream, a.seq, bool(a.duplicate)) for a in acks]

    async def subscribe(self, config: ConsumerConfig) -> JetStreamSubscription:
        cfg = api.ConsumerConfig(
            durable_name=config.durable, ack_policy=api.AckPolicy.EXPLICIT,
            deliver_policy=api.DeliverPolicy.ALL, ack_wait=config.ack_wait,
            max_ack_pending=config.max_ack_pending, filter_subject=config.filter_subject,
            max_deliver=-1,
        )
        try:
            sub = await self._js.pull_subscribe(
                config.filter_subject or "", durable=config.durable, stream=config.stream, config=cfg
            )
        except (nats.errors.Error, TimeoutError) as exc:
            raise BusUnavailable(f"cannot bind consumer {config.durable}: {exc!r}") from exc
        return JetStreamSubscription(sub)

    async def read_stream(
        self, stream: str, subject: str | None = None, start_seq: int = 1
    ) -> AsyncIterator[StoredMessage]:
        """The stream's messages from ``start_seq`` to its last at the time of the call, in order.

        An ephemeral consumer (no acks) is asked for batches of ``READ_BATCH`` on a plain subscription
        whose callback only queues each message, keeping two batches asked ahead: nats-py's ``fetch``
        spends a task and a timer on every message, which made reading a stream several times slower than
        the server sends it (see ``docs/performance-scoring.md``).
        """
        try:
            info = await self._js.stream_info(stream)
            last = info.state.last_seq
            if last < start_seq or info.state.messages == 0:
                return
            consumer = await self._js.add_consumer(stream, api.ConsumerConfig(
                ack_policy=api.AckPolicy.NONE, deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE,
                opt_start_seq=max(start_seq, info.state.first_seq), filter_subject=subject,
                inactive_threshold=30.0, mem_storage=True,
            ))
        except (nats.errors.Error, TimeoutError) as exc:
            raise BusUnavailable(f"cannot read {stream}: {exc!r}") from exc
        wanted = consumer.num_pending or 0  # the messages there are to read, now
        arrived: deque[Msg] = deque()
        wake = asyncio.Event()

        async def arrive(msg: Msg) -> None:
            arrived.append(msg)
            wake.set()

        inbox = self._nc.new_inbox()
        sub = await self._nc.subscribe(inbox, cb=arrive, pending_msgs_limit=8 * READ_BATCH,
                                       pending_bytes_limit=256 * 1024 * 1024)
        ask = f"{api.DEFAULT_PREFIX}.CONSUMER.MSG.NEXT.{stream}.{consumer.name}"
        received = asked = progress = 0  # progress: what was received at the last status
        largest = READ_FIRST_GUESS
        try:
            while received < wanted:
                per_ask = max(1, min(READ_BATCH, READ_BYTES // largest))
                while asked < wanted and asked - received < 2 * per_ask:
                    batch = min(per_ask, wanted - asked)
                    await self._nc.publish(ask, json.dumps({"batch": batch, "expires": READ_EXPIRES_NS}).encode(),
                                           reply=inbox)
                    asked += batch
                if not arrived:
                    try:
                        await asyncio.wait_for(wake.wait(), READ_STALL)
                    except TimeoutError:
                        raise BusUnavailable(f"reading {stream} stalled after {received} of {wanted}") from None
                    wake.clear()
                while arrived:
                    m = arrived.popleft()
                    if not m.reply:  # a status: a request ended short (it expired); ask again, unless nothing is left
                        status = (m.headers or {}).get(api.Header.STATUS, "")
                        if status not in ("404", "408"):
                            raise BusUnavailable(f"reading {stream}: status {status} {m.headers}")
                        if received == progress and not (await self._js.consumer_info(
                                stream, consumer.name)).num_pending:
                            return  # messages counted at the start went meanwhile (age or deletion)
                        asked, progress = received, received
                        continue
                    received += 1
                    if len(m.data) > largest or received == 1:  # the guess gives way to the first message
                        largest = max(len(m.data), 1)
                    seq = int(m.reply.split(".")[-4 if m.reply.count(".") == 8 else 7])
                    yield StoredMessage(seq, m.subject, m.data, dict(m.headers or {}))
                    if seq >= last:
                        return
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
                await self._js.delete_consumer(stream, consumer.name)

    async def close(self) -> None:
        if not self._nc.is_closed:
            # Every publish has been awaited by now; draining would wait on idle pull subscriptions.
            await self._nc.flush()
            await self._nc.close()
