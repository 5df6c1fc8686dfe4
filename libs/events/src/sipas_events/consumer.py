"""Durable, ordered, idempotent consumption of one producer's stream into one projection.

- Pull in batches; apply a contiguous run of positions in ONE transaction together with the inbox
  rows and the checkpoint; ack only after commit. Redeliveries at or below the checkpoint change
  nothing and are counted.
- Strict position order: the producer's store positions are gapless, so a hole means the transport
  lost something. After a short grace the consumer fetches the missing events from the producer's
  replay endpoint, and when idle it asks the producer for its head to catch a lost tail.
- A handler error is retried with backoff, bounded by ``max_attempts``; then the event goes to the
  dead-letter stream and table and the consumer goes on. Infrastructure errors (database or NATS
  down) are never counted against an event: the loop waits and resumes.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import gc
import json
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import structlog
from pydantic import ValidationError
from sqlalchemy import delete, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from sipas_events import canonical
from sipas_events.bus.base import Bus, BusUnavailable, ConsumerConfig, Delivery, OutMessage, StreamConfig
from sipas_events.catalogue import CATALOGUE, Catalogue
from sipas_events.copy import copy_records
from sipas_events.envelope import Envelope, Stamp
from sipas_events.ids import new_id
from sipas_events.metrics import BackboneMetrics
from sipas_events.naming import DLQ_STREAM, dlq_subject, stream_name
from sipas_events.projection import Projection
from sipas_events.rebuild_reader import read_in_process, stamped
from sipas_events.replay import ReplaySource
from sipas_events.schema import consumer_checkpoints, dead_letters, inbox

log = structlog.get_logger(__name__)

# Compiled once, whatever the batch size: arrays instead of one parameter per value, so no batch is
# too big for the protocol's 32,767 bind parameters (a multi-row VALUES list has 7 per event).
_INBOX_INSERT = text(
    """
    INSERT INTO inbox (consumer, event_id, producer, position, type, status, handled_at)
    SELECT CAST(:consumer AS text), v.event_id, CAST(:producer AS text), v.position, v.type,
           CAST(:status AS text), v.handled_at
    FROM unnest(CAST(:event_ids AS uuid[]), CAST(:positions AS bigint[]), CAST(:types AS text[]),
                CAST(:handled_at AS timestamptz[])) AS v(event_id, position, type, handled_at)
    ON CONFLICT DO NOTHING
    RETURNING position
    """
)
_INBOX_COLUMNS = ("consumer", "event_id", "producer", "position", "type", "status", "handled_at")
REBUILD_RUNS = 4
"""A rebuild applies runs of this many batches: fewer round trips a run, on a projection nobody reads yet."""
REBUILD_GC_THRESHOLD = 100_000
"""The cyclic collector's first threshold while a rebuild runs (700 by default): a rebuild keeps thousands of
events in flight, which the collector would otherwise walk again every few hundred allocations (a fifth of a
rebuild's time, measured). Restored when the rebuild ends."""
REBUILD_CHUNK = 256
"""Envelopes handed from the rebuild's reader to its runs at a time."""
REBUILD_PROCESS_MIN = 50_000
"""Messages a stream must hold for a rebuild to read it in a process of its own
(:mod:`sipas_events.rebuild_reader`): starting one (a Python, the projection's imports) takes a second or
two, which a shorter stream does not win back."""
FETCH_BYTES = 16 * 1024 * 1024
"""About the most a fetch may bring. nats-server cuts a client whose unread data passes its ``max_pending``
(64 MiB by default) as a slow consumer, and the events in flight then come again only after the ack wait: a
batch of 1,000 events of ~170 KB (a draw's ``SampleDrawn``) did, several times in a national round. A fetch
asks for ``FETCH_BYTES`` over the largest message of the last fetch, at most the consumer's batch."""
FIRST_GUESS_BYTES = 64 * 1024
"""The message size a consumer assumes before its first fetch has told it."""
_Ahead = tuple[Envelope | Stamp, Any, Any, bytes | None]
"""An event read ahead by a rebuild's reader: its envelope (or stamp), its event decoded, what the projection
prepared of it, and the envelope's bytes when it comes as a stamp."""
DROP_ATTEMPTS = 5
"""Tries of a rebuild's first transaction that lose a race with another (see :meth:`Consumer._dropped`)."""

_NO_WAIT_FOR_FLUSH = text("SET LOCAL synchronous_commit TO off")
"""A rebuild's runs do not wait for their commit to reach the disk: nothing outside depends on one (no acks,
no events), and a crash that lost the last ones loses their checkpoint with them, so they are applied again."""

_SAVE_CHECKPOINT = text(
    """
    INSERT INTO consumer_checkpoints (consumer, producer, position) VALUES (:consumer, :producer, :position)
    ON CONFLICT (consumer, producer) DO UPDATE SET position = excluded.position, updated_at = now()
    """
)


class NotReady(Exception):
    """A handler needs something another producer has not delivered yet (e.g. a campaign's
    instrument from the registry): retry later, never dead-letter."""


CONFLICTS = ("40001", "40P01", "55P03")
"""PostgreSQL's serialization failure, deadlock and lock not available: a transaction that lost a race with
another, and may run again as it is."""


def is_conflict(exc: BaseException) -> bool:
    return isinstance(exc, DBAPIError) and getattr(exc.orig, "sqlstate", None) in CONFLICTS


def is_transient(exc: BaseException) -> bool:
    """Errors of the infrastructure, not of the event: never dead-letter because of these (a deadlock with
    another transaction is not the event's fault either)."""
    if isinstance(exc, (OSError, ConnectionError, TimeoutError, BusUnavailable, NotReady)):
        return True
    if isinstance(exc, (OperationalError, InterfaceError)):
        return True
    return isinstance(exc, DBAPIError) and (bool(exc.connection_invalidated) or is_conflict(exc))


@dataclass
class RetryPolicy:
    max_attempts: int = 5
    backoff: tuple[float, ...] = (0.1, 0.5, 2.0, 5.0)

    def delay(self, failures: int) -> float:
        return self.backoff[min(failures - 1, len(self.backoff) - 1)]


@dataclass(slots=True)
class _Item:
    head: Envelope | Stamp  # what the runs read of the envelope: the envelope, or a reader process's stamp
    delivery: Delivery | None
    event: Any = None  # the envelope's payload decoded ahead (a rebuild's reader does), else decoded when applied
    prepared: Any = None  # what the projection's rebuild_prepare made of the event, for a rebuild's runs
    raw: bytes | None = None  # the envelope's bytes, when ``head`` is a stamp
    failures: int = 0
    waits: int = 0
    retry_at: float = 0.0
    position: int = field(init=False)  # the envelope's, kept as a plain attribute: read several times an event
    name: str = field(init=False)  # the envelope's event name, likewise

    def __post_init__(self) -> None:
        assert self.head.position is not None
        self.position = self.head.position
        self.name = self.head.event_name

    @property
    def envelope(self) -> Envelope:
        """The whole envelope (a handler's, a dead letter's): ``head``, or validated from ``raw`` once."""
        if isinstance(self.head, Envelope):
            return self.head
        assert self.raw is not None
        self.head = Envelope.model_validate_json(self.raw)
        return self.head


class _HandlerFailed(Exception):
    def __init__(self, index: int, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.index, self.cause = index, cause


class Consumer:
    def __init__(
        self, service: str, projection: Projection, engine: AsyncEngine, bus: Bus,
        metrics: BackboneMetrics, *, replay: ReplaySource | None = None,
        catalogue: Catalogue = CATALOGUE, batch: int = 1000, retry: RetryPolicy | None = None,
        gap_grace: float = 0.5, idle_check: float = 10.0, fetch_timeout: float = 1.0,
        log_each: bool = True, rebuild_process_min: int | None = REBUILD_PROCESS_MIN, run_interval: float = 0.0,
    ) -> None:
        self.service, self.projection = service, projection
        self.producer = projection.producer
        self.name = f"{service}-{projection.name}"
        self._engine, self._bus, self._m, self._replay = engine, bus, metrics, replay
        self._catalogue, self._batch = catalogue, batch
        self._retry = retry or RetryPolicy()
        self._gap_grace, self._idle_check, self._fetch_timeout = gap_grace, idle_check, fetch_timeout
        self._run_interval = run_interval  # see _pause
        self._last_run = 0.0  # when the last run began (monotonic)
        self._held = False  # what is buffered was held back by _pause: the next fetch waits only briefly
        self._log_each = log_each  # a line per applied event with its correlation id (INFO for one per run)
        self.rebuild_process_min = rebuild_process_min  # see _reader_process_url; None: never a process
        self.rebuild_reader = ""  # how the last rebuild read its stream: "process" or "in-process"
        self._latency = metrics.apply_latency.labels(self.name)
        for counter in (metrics.gap_fills, metrics.inbox_duplicates, metrics.dead_lettered):
            counter.labels(self.name)  # exported at 0 from the start, so a first fill or duplicate is a change
        self.position = 0
        self._buffer: dict[int, _Item] = {}
        self._gap_since: float | None = None
        self._last_idle_check = 0.0
        self._published_seen = 0  # how far the producer had published at the last idle check
        self._message_bytes = FIRST_GUESS_BYTES  # the largest message of the last fetch that brought any
        self._rebuild_requests: list[asyncio.Future[None]] = []
        self._rebuilding = False
        self._wake = asyncio.Event()  # set by rebuild(): the loop stops waiting on an idle fetch
        self.ready = asyncio.Event()
        self._acks: set[asyncio.Future[None]] = set()  # acks in flight (fire and forget, but kept referenced)

    # ---- the loop ---------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        backoff = 0.2
        while not stop.is_set():
            try:
                await self._bus.ensure_stream(StreamConfig(DLQ_STREAM, ["sipas.dlq.>"]))
                self.position = await self._load_checkpoint()
                self._buffer.clear()
                sub = await self._bus.subscribe(ConsumerConfig(self.name, stream_name(self.producer)))
                self.ready.set()
                backoff = 0.2
                fetching: asyncio.Future[Sequence[Delivery]] | None = None
                try:
                    while not stop.is_set():
                        if self._rebuild_requests:
                            await self._serve_rebuilds()
                        self._acks = {a for a in self._acks if not a.done()}
                        if fetching is None:
                            fetching = asyncio.ensure_future(sub.fetch(self.fetch_size(), self._next_timeout()))
                        if not await self._fetched_or_woken(fetching, stop):
                            continue  # a rebuild was asked for (served now; the fetch is kept), or stop
                        deliveries, fetching = fetching.result(), None
                        if deliveries:
                            self._message_bytes = max(len(d.data) for d in deliveries)
                        for d in deliveries:
                            await self._receive_delivery(d)
                        pause = self._pause()
                        if pause > 0:
                            self._held = True
                            await _sleep(stop, pause)  # what arrives meanwhile comes with the next fetch
                            continue
                        self._held = False
                        await self._drain()
                        if not deliveries and not self._buffer:
                            await self._idle()
                        self._m.consumer_lag.labels(self.name).set(
                            (deliveries[-1].num_pending if deliveries else 0) + len(self._buffer)
                        )
                finally:  # a fetch still waiting belongs to this subscription: never leave it behind
                    if fetching is not None and not fetching.done():
                        fetching.cancel()
                        await asyncio.wait({fetching})  # its messages, unacked, are delivered again later
            except Exception as exc:  # the loop must survive anything; classify and wait
                kind = "transient" if is_transient(exc) else "unexpected"
                self._m.consumer_errors.labels(self.name, kind).inc()
                log.warning("consumer.error", consumer=self.name, kind=kind, error=repr(exc)[:300])
                self.ready.clear()
                await _sleep(stop, backoff)
                backoff = min(backoff * 2, 5.0)

    async def _fetched_or_woken(self, fetching: asyncio.Future[Any], stop: asyncio.Event) -> bool:
        """Wait for the fetch, or until :meth:`rebuild` asks or the consumer is stopped; True if the fetch is
        done. An idle fetch waits up to ``fetch_timeout``, which a rebuild asked for meanwhile (or a stop)
        would otherwise wait out first."""
        if not fetching.done():
            woken, stopped = asyncio.ensure_future(self._wake.wait()), asyncio.ensure_future(stop.wait())
            try:
                await asyncio.wait({fetching, woken, stopped}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                woken.cancel()
                stopped.cancel()
            self._wake.clear()
        return fetching.done()

    def fetch_size(self) -> int:
        """How many messages the next fetch asks for: about ``FETCH_BYTES`` of the last fetch's largest."""
        return max(1, min(self._batch, FETCH_BYTES // max(1, self._message_bytes)))

    def _pause(self) -> float:
        """Seconds to wait before applying what is buffered: while less than a batch waits, runs begin at most
        every ``run_interval`` seconds. Each run costs a transaction and its statements whatever its size, so
        under a steady stream fewer, larger runs cost less (at 1,000 events/s and 0.1 s, runs of ~100 instead
        of a few dozen); an event arriving after a quiet spell is applied at once. Never while rebuilding."""
        if self._run_interval <= 0 or self._rebuilding or not self._buffer or len(self._buffer) >= self._batch:
            return 0.0
        return self._last_run + self._run_interval - time.monotonic()

    def _next_timeout(self) -> float:
        waits = [i.retry_at - time.monotonic() for i in self._buffer.values() if i.retry_at]
        if self._held:
            waits.append(0.0)
        return max(0.05, min([self._fetch_timeout, *waits]))

    async def _load_checkpoint(self) -> int:
        async with self._engine.connect() as conn:
            row = await conn.execute(
                select(consumer_checkpoints.c.position).where(
                    consumer_checkpoints.c.consumer == self.name,
                    consumer_checkpoints.c.producer == self.producer,
                )
            )
            return int(row.scalar() or 0)

    # ---- receiving --------------------------------------------------------------------------
    async def _receive_delivery(self, d: Delivery) -> None:
        try:
            env = Envelope.model_validate_json(d.data)
            if env.position is None:
                raise ValueError("envelope has no position")
        except (ValidationError, ValueError) as exc:
            await self._quarantine_malformed(d, exc)
            return
        self._accept(env, d)

    def _accept(self, env: Envelope | Stamp, delivery: Delivery | None, event: Any = None, prepared: Any = None,
                raw: bytes | None = None) -> None:
        assert env.position is not None
        if env.position <= self.position:
            self._m.inbox_duplicates.labels(self.name).inc()
            if delivery is not None:
                self._acks.add(asyncio.ensure_future(delivery.ack()))
            return
        existing = self._buffer.get(env.position)
        if existing is None:
            self._buffer[env.position] = _Item(env, delivery, event, prepared, raw)
        elif delivery is not None:
            if existing.delivery is not None and existing.delivery.stream_seq == delivery.stream_seq:
                existing.delivery = delivery  # the same message redelivered: ack the newest token
            else:  # another copy of the event (republished or replayed): it changes nothing
                self._m.inbox_duplicates.labels(self.name).inc()
                self._acks.add(asyncio.ensure_future(delivery.ack()))

    async def _quarantine_malformed(self, d: Delivery, exc: Exception) -> None:
        log.error("consumer.malformed", consumer=self.name, error=str(exc)[:300])
        msg_id = f"{self.name}:malformed:{canonical.sha256_lines([d.data])[:32]}"
        await self._bus.publish_batch([OutMessage(
            dlq_subject(self.name, self.producer), d.data, msg_id,
            {"Sipas-Error": str(exc)[:500], "Sipas-Consumer": self.name},
        )])
        self._m.dead_lettered.labels(self.name).inc()
        await d.term()

    # ---- applying ---------------------------------------------------------------------------
    async def _drain(self) -> None:
        while True:
            run = self._contiguous_run()
            if run:
                self._gap_since = None
                self._last_run = time.monotonic()
                await self._apply_run(run)
                continue
            if not await self._maybe_fill_gap():
                return

    def _contiguous_run(self) -> list[_Item]:
        now, p = time.monotonic(), self.position + 1
        run: list[_Item] = []
        while p in self._buffer and len(run) < self._batch:
            item = self._buffer[p]
            if item.retry_at > now:
                break
            run.append(item)
            p += 1
        return run

    async def _apply_run(self, run: list[_Item]) -> None:
        try:
            async with self._engine.begin() as conn:
                if self._rebuilding:
                    await conn.execute(_NO_WAIT_FOR_FLUSH)
                await self._apply_items(conn, run)
                await self._save_checkpoint(conn, run[-1].position)
        except _HandlerFailed as failed:
            if failed.index:
                await self._apply_run(run[: failed.index])
            if isinstance(failed.cause, NotReady):  # waiting for another producer: retry, never dead-letter
                item = run[failed.index]
                item.waits += 1
                item.retry_at = time.monotonic() + min(0.1 * 2 ** (item.waits - 1), 5.0)
                log.info("consumer.waiting", consumer=self.name, position=item.position, reason=str(failed.cause))
                return
            await self._failed(run[failed.index], failed.cause)
            return
        if not self._rebuilding:  # a replayed event's age is history, not how late the consumer is
            now = dt.datetime.now(dt.UTC)
            for item in run:
                self._latency.observe((now - item.head.time).total_seconds())
        await self._advance(run)
        # One INFO line per committed run naming the requests it carried, so an operator can follow a
        # correlation id from the HTTP request into every consumer whatever the batching.
        cids = sorted({item.head.correlationid for item in run})
        log.info("consumer.applied_run", consumer=self.name, first=run[0].position, last=run[-1].position,
                 correlation_ids=cids[:20], more_correlation_ids=max(0, len(cids) - 20))

    async def _apply_items(self, conn: AsyncConnection, run: Sequence[_Item]) -> None:
        handlers = self.projection.handlers
        handled = [(i, it) for i, it in enumerate(run) if it.name in handlers]
        if len(handled) < len(run):
            self._m.events_skipped.labels(self.name).inc(len(run) - len(handled))
        if not handled:
            return
        record = self._copy_inbox if self._rebuilding else self._record_inbox
        fresh = await record(conn, [it for _, it in handled], "applied")
        duplicates = sum(1 for _, it in handled if it.position not in fresh)
        if duplicates:
            self._m.inbox_duplicates.labels(self.name).inc(duplicates)
        handled = [(i, it) for i, it in handled if it.position in fresh]
        together = bool(handled) and await self._apply_together(conn, [it for _, it in handled])
        applied: Counter[str] = Counter()
        if together and self._rebuilding:  # nothing left to do event by event; the run's log line names them
            applied.update(it.name for _, it in handled)
            handled = []
        bind, reset = structlog.contextvars.bind_contextvars, structlog.contextvars.reset_contextvars
        for index, item in handled:
            env = item.envelope
            tokens = bind(correlation_id=env.correlationid, event_id=str(env.id), event_type=env.type)
            try:
                try:
                    if not together:
                        await handlers[item.name](conn, self._decoded(item), env)
                except NotReady as exc:
                    raise _HandlerFailed(index, exc) from exc
                except Exception as exc:
                    if is_transient(exc):
                        raise
                    raise _HandlerFailed(index, exc) from exc
                if self._log_each:
                    # Sampled: the first event of each run at INFO (at a trickle, that is every event),
                    # the others at DEBUG; each with its own correlation id bound.
                    (log.debug if applied else log.info)(
                        "consumer.applied", consumer=self.name, position=item.position, run=len(run))
            finally:
                reset(**tokens)
            applied[item.name] += 1
        for name, count in applied.items():
            self._m.events_consumed.labels(self.name, name).inc(count)

    async def _apply_together(self, conn: AsyncConnection, items: Sequence[_Item]) -> bool:
        """Apply the run through the projection's run handler, if it has one: True if it did. If it
        raises (an event it cannot apply, or NotReady), what it wrote is undone (a savepoint) and the
        caller applies the run event by event, which finds the event at fault; an infrastructure
        error is raised as it is."""
        rebuild_handler = self.projection.rebuild_handler if self._rebuilding else None
        if rebuild_handler is None and self.projection.run_handler is None:
            return False
        try:
            async with conn.begin_nested():
                if rebuild_handler is not None:
                    await rebuild_handler(conn, [(it.prepared, it.head) if it.prepared is not None
                                                 else (self._decoded(it), it.envelope) for it in items])
                else:
                    assert self.projection.run_handler is not None
                    await self.projection.run_handler(conn, [(self._decoded(it), it.envelope) for it in items])
        except Exception as exc:
            if is_transient(exc) and not isinstance(exc, NotReady):
                raise
            log.info("consumer.run_fallback", consumer=self.name, first=items[0].position, last=items[-1].position,
                     error=repr(exc)[:300])
            self._m.run_fallbacks.labels(self.name).inc()
            return False
        return True

    def _decoded(self, item: _Item) -> Any:
        return item.event if item.event is not None else self._catalogue.decode(item.envelope)

    async def _copy_inbox(self, conn: AsyncConnection, items: Sequence[_Item], status: str) -> set[int]:
        """:meth:`_record_inbox` for a rebuild's runs, by binary COPY (the inbox was emptied when the rebuild
        began): an event id already there (one event published at two positions) fails the COPY, undone by
        its savepoint, and the run's rows then go through the INSERT, which skips it."""
        try:
            async with conn.begin_nested():
                await copy_records(conn, inbox.name, _INBOX_COLUMNS, [
                    (self.name, it.head.id, self.producer, it.position, it.head.type, status, it.head.time)
                    for it in items])
        except asyncpg.UniqueViolationError:
            return await self._record_inbox(conn, items, status)
        return {it.position for it in items}

    async def _record_inbox(self, conn: AsyncConnection, items: Sequence[_Item], status: str) -> set[int]:
        """Insert the inbox rows of ``items``; returns the positions that were not there yet."""
        result = await conn.execute(_INBOX_INSERT, {
            "consumer": self.name, "producer": self.producer, "status": status,
            "event_ids": [it.head.id for it in items], "positions": [it.position for it in items],
            "types": [it.head.type for it in items], "handled_at": [it.head.time for it in items],
        })
        return set(result.scalars())

    async def _save_checkpoint(self, conn: AsyncConnection, position: int) -> None:
        await conn.execute(_SAVE_CHECKPOINT, {"consumer": self.name, "producer": self.producer, "position": position})

    async def _advance(self, run: Sequence[_Item]) -> None:
        for item in run:
            self._buffer.pop(item.position, None)
        self.position = run[-1].position
        self._m.consumer_position.labels(self.name, self.producer).set(self.position)
        failed, error = 0, None
        for item in run:  # after the commit; each ack only queues a few bytes on the NATS connection
            if item.delivery is not None:
                try:
                    await item.delivery.ack()
                except Exception as exc:  # a lost ack means a redelivery, which the checkpoint absorbs
                    failed, error = failed + 1, exc
        if failed:
            log.warning("consumer.ack_failed", consumer=self.name, count=failed, error=repr(error)[:200])

    async def _failed(self, item: _Item, cause: BaseException) -> None:
        item.failures += 1
        env = item.envelope
        self._m.consume_failures.labels(self.name, env.event_name).inc()
        log.warning("consumer.handler_failed", consumer=self.name, event_id=str(env.id),
                    position=item.position, attempt=item.failures, error=repr(cause)[:300])
        if item.failures >= self._retry.max_attempts:
            await self._dead_letter(item, cause)
        else:
            item.retry_at = time.monotonic() + self._retry.delay(item.failures)

    async def _dead_letter(self, item: _Item, cause: BaseException) -> None:
        env, error = item.envelope, f"{type(cause).__name__}: {cause}"[:2000]
        await self._bus.publish_batch([OutMessage(
            dlq_subject(self.name, self.producer), env.to_json(), f"{self.name}:{env.id}",
            {"Sipas-Error": error[:500], "Sipas-Consumer": self.name,
             "Sipas-Attempts": str(item.failures)},
        )])
        async with self._engine.begin() as conn:
            await conn.execute(pg_insert(dead_letters).values(
                id=new_id(), consumer=self.name, producer=self.producer, event_id=env.id,
                position=item.position, type=env.type, envelope=json.loads(env.to_json()),
                error=error, deliveries=item.failures,
            ).on_conflict_do_nothing())
            await self._record_inbox(conn, [item], "dead")
            await self._save_checkpoint(conn, item.position)
        if item.delivery is not None:
            await item.delivery.term()
        self._buffer.pop(item.position, None)
        self.position = item.position
        self._m.dead_lettered.labels(self.name).inc()
        self._m.dead_letters_open.labels(self.name).inc()
        log.error("consumer.dead_lettered", consumer=self.name, event_id=str(env.id), error=error[:300])

    # ---- gaps -------------------------------------------------------------------------------
    async def _maybe_fill_gap(self) -> bool:
        """Fetch missing positions from the producer's store; True if anything was added."""
        if not self._buffer or (self.position + 1) in self._buffer:
            return False
        now = time.monotonic()
        if self._gap_since is None:
            self._gap_since = now
        if now - self._gap_since < self._gap_grace:
            return False
        if self._replay is None:
            log.error("consumer.gap_unfillable", consumer=self.name, after=self.position)
            return False
        missing = min(self._buffer) - self.position - 1
        return await self._fill(min(missing, self._batch)) > 0

    async def _fill(self, limit: int) -> int:
        assert self._replay is not None
        raw = await self._replay.fetch(self.producer, self.position, limit)
        for payload in raw:
            self._accept(Envelope.model_validate_json(payload), None)
        if raw:
            self._m.gap_fills.labels(self.name).inc(len(raw))
            log.warning("consumer.gap_filled", consumer=self.name, after=self.position, count=len(raw))
        self._gap_since = None
        return len(raw)

    async def _idle(self) -> None:
        """When idle, ask the producer how far its relay has published: a lost last message shows up here.

        Only what the relay had published one check ago is taken from the store: an event it published
        that is still missing ``idle_check`` seconds later was lost. The store's own head is no measure:
        its relay publishes after each commit, and falls behind under bursts, so under intake the head is
        always ahead of the stream; filling up to it moved the consumer onto the producer's HTTP endpoint
        for as long as intake lasted (measured: a third of a national round's ballots), the stream's copies
        then all acked as duplicates."""
        now = time.monotonic()
        if self._replay is None or now - self._last_idle_check < self._idle_check:
            return
        self._last_idle_check = now
        lost_up_to, self._published_seen = self._published_seen, await self._replay.published(self.producer)
        while self.position < lost_up_to:
            before = self.position
            if not await self._fill(min(self._batch, lost_up_to - self.position)):
                return
            await self._drain()
            if self.position == before:  # its first event waits for a retry, which the loop gives it
                return

    # ---- rebuild ----------------------------------------------------------------------------
    async def rebuild(self) -> None:
        """Ask the running loop to drop and replay the projection; returns when done."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._rebuild_requests.append(fut)
        self._wake.set()
        await fut

    async def _serve_rebuilds(self) -> None:
        requests, self._rebuild_requests = self._rebuild_requests, []
        try:
            await self.rebuild_now()
        except Exception as exc:
            for f in requests:
                f.set_exception(exc)
            raise
        for f in requests:
            f.set_result(None)

    async def _read_for_rebuild(self, chunks: asyncio.Queue[list[_Ahead] | None], context: Any) -> None:
        """Read, validate, decode and prepare the stream ahead of the runs being applied, a chunk at a time:
        the reader works while the runs wait on PostgreSQL — in a process of its own on a long stream
        (:mod:`sipas_events.rebuild_reader`), else in this one. An event it cannot decode is left to the run,
        which decodes it again and handles the error as the live consumer does."""
        stream, prepare = stream_name(self.producer), self.projection.rebuild_prepare
        try:
            url = await self._reader_process_url(stream)
            if url is not None:
                assert prepare is not None
                self.rebuild_reader = "process"
                read_any = False
                try:
                    async with contextlib.aclosing(read_in_process(url, stream, prepare, set(self.projection.handlers),
                                                                   context, f"{self.name}-rebuild")) as read:
                        async for batch in read:
                            read_any = True
                            await chunks.put([self._ahead(e, context) if isinstance(e, bytes) else stamped(e)
                                              for e in batch])
                except BusUnavailable as exc:
                    if read_any:
                        raise  # lost half-way: the rebuild stops, as when NATS goes away
                    log.warning("consumer.rebuild_reader_unavailable", consumer=self.name, error=str(exc)[:300])
                    url = None  # it never started: read in this process instead
            if url is None:
                self.rebuild_reader = "in-process"
                chunk: list[_Ahead] = []
                async for msg in self._bus.read_stream(stream):
                    chunk.append(self._ahead(msg.data, context))
                    if len(chunk) >= REBUILD_CHUNK:
                        await chunks.put(chunk)
                        chunk = []
                if chunk:
                    await chunks.put(chunk)
        except asyncio.CancelledError:
            raise  # the rebuild stopped: nobody reads the queue any more
        except BaseException:
            await chunks.put(None)  # wake the rebuild, which then awaits this task and gets the error
            raise
        await chunks.put(None)

    async def _reader_process_url(self, stream: str) -> str | None:
        """The NATS URL a reader process reads ``stream`` from, when the rebuild reads it that way: the
        projection prepares its events, the bus is a NATS one, and the stream holds at least
        ``rebuild_process_min`` messages (below that, starting a process costs more than it saves)."""
        url, prepare = self._bus.url, self.projection.rebuild_prepare
        if (prepare is None or not url or self._catalogue is not CATALOGUE or self.rebuild_process_min is None
                or "<" in prepare.__qualname__):  # a nested function: the child could not import it
            return None
        return url if await self._bus.stream_size(stream) >= self.rebuild_process_min else None

    def _ahead(self, data: bytes, context: Any) -> _Ahead:
        """One envelope read ahead in this process: validated (raising as the rebuild always did), its event
        decoded and prepared if the projection handles it (None where that fails: the run meets it again)."""
        env = Envelope.model_validate_json(data)
        event = prepared = None
        if env.event_name in self.projection.handlers:
            with contextlib.suppress(Exception):
                event = self._catalogue.decode(env)
                prepare = self.projection.rebuild_prepare
                if prepare is not None:
                    prepared = prepare(event, env, context)
        return env, event, prepared, None

    async def rebuild_now(self) -> None:
        """Drop the projection, then replay the producer's stream (filling holes from its store)."""
        context = await self._dropped()
        self.position, self._buffer, self._gap_since = 0, {}, None
        grace, self._gap_grace = self._gap_grace, 0.0
        batch, self._batch = self._batch, self._batch * REBUILD_RUNS
        self._rebuilding = True
        thresholds = gc.get_threshold()
        gc.set_threshold(REBUILD_GC_THRESHOLD, *thresholds[1:])
        chunks: asyncio.Queue[list[_Ahead] | None] = asyncio.Queue(maxsize=REBUILD_RUNS * 4)
        reader = asyncio.create_task(self._read_for_rebuild(chunks, context))
        try:
            while (chunk := await chunks.get()) is not None:
                for head, event, prepared, raw in chunk:
                    self._accept(head, None, event, prepared, raw)
                if len(self._buffer) >= self._batch:
                    await self._drain()
            await reader  # raises what stopped the reader, if anything did
            await self._drain()
            if self._replay is not None:
                while await self._fill(self._batch):
                    await self._drain()
            while self._buffer:  # events waiting for a retry, or going to the dead letters
                await asyncio.sleep(self._next_timeout())
                await self._drain()
        finally:
            reader.cancel()
            gc.set_threshold(*thresholds)
            self._gap_grace, self._batch, self._rebuilding = grace, batch, False
        if self.projection.rebuilt is not None:
            async with self._engine.begin() as conn:
                await self.projection.rebuilt(conn)
        log.info("consumer.rebuilt", consumer=self.name, position=self.position, reader=self.rebuild_reader)

    async def _dropped(self) -> Any:
        """Empty the projection's tables, inbox and checkpoint in one transaction; returns the rebuild's context.
        The TRUNCATE waits for every reader of the tables, one table after another: a reader holding one of them
        while it asks for another (a service's worker reading two in one transaction) deadlocks with it, and
        PostgreSQL may end either — when it ends this one, it runs again."""
        names = ", ".join(f'"{t.name}"' for t in self.projection.tables)
        for attempt in range(1, DROP_ATTEMPTS + 1):
            try:
                async with self._engine.begin() as conn:
                    if names:
                        await conn.execute(text(f"TRUNCATE {names}"))
                    await conn.execute(delete(inbox).where(inbox.c.consumer == self.name))
                    await conn.execute(delete(consumer_checkpoints).where(consumer_checkpoints.c.consumer == self.name))
                    if self.projection.rebuild_context is None:
                        return None
                    return await self.projection.rebuild_context(conn)
            except DBAPIError as exc:
                if not is_conflict(exc) or attempt == DROP_ATTEMPTS:
                    raise
                log.info("consumer.rebuild_conflict", consumer=self.name, attempt=attempt, error=repr(exc)[:200])
                await asyncio.sleep(0.05 * attempt)
        raise AssertionError("unreachable")

    # ---- dead letters -----------------------------------------------------------------------
    async def replay_dead_letter(self, dead_letter_id: Any, actor: str) -> None:
        """Apply a dead-lettered event now (after the cause was fixed); raise if it fails again."""
        async with self._engine.begin() as conn:
            row = (await conn.execute(
                select(dead_letters).where(dead_letters.c.id == dead_letter_id,
                                           dead_letters.c.consumer == self.name).with_for_update()
            )).mappings().first()
            if row is None:
                raise LookupError(f"no dead letter {dead_letter_id} for {self.name}")
            if row["status"] != "dead":
                raise ValueError(f"dead letter {dead_letter_id} is already {row['status']}")
            env = Envelope.model_validate(row["envelope"])
            with structlog.contextvars.bound_contextvars(correlation_id=env.correlationid, event_id=str(env.id)):
                await self.projection.handlers[env.event_name](conn, self._catalogue.decode(env), env)
            await conn.execute(update(inbox).where(inbox.c.consumer == self.name, inbox.c.event_id == env.id)
                               .values(status="replayed"))
            await self._resolve(conn, dead_letter_id, "replayed", actor)
        self._m.dead_letters_open.labels(self.name).dec()

    async def discard_dead_letter(self, dead_letter_id: Any, actor: str) -> None:
        async with self._engine.begin() as conn:
            if not await self._resolve(conn, dead_letter_id, "discarded", actor):
                raise LookupError(f"no open dead letter {dead_letter_id} for {self.name}")
        self._m.dead_letters_open.labels(self.name).dec()

    async def _resolve(self, conn: AsyncConnection, dead_letter_id: Any, status: str, actor: str) -> bool:
        result = await conn.execute(
            update(dead_letters)
            .where(dead_letters.c.id == dead_letter_id, dead_letters.c.consumer == self.name,
                   dead_letters.c.status == "dead")
            .values(status=status, resolved_at=text("now()"), resolved_by=actor)
        )
        return bool(result.rowcount)


async def _sleep(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except TimeoutError:
        pass


