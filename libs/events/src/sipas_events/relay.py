"""The outbox relay: sequence committed events, publish them to JetStream, advance the cursor.

Exactly one relay per service is active, elected with a PostgreSQL session advisory lock held on
the relay's own connection; others wait as standbys. Crash safety: the cursor moves only after
JetStream acknowledged the batch, so a crash between commit and publish (or between publish and
cursor) republishes; JetStream drops the repeat by ``Nats-Msg-Id`` within its duplicate window
and consumers drop anything older through their checkpoints and inbox.
"""

from __future__ import annotations

import asyncio
import zlib

import structlog
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from sipas_events import sequencer
from sipas_events.bus.base import Bus, BusUnavailable, OutMessage, StreamConfig
from sipas_events.envelope import NATIONAL
from sipas_events.metrics import BackboneMetrics
from sipas_events.naming import stream_name, stream_subjects
from sipas_events.store import NOTIFY_CHANNEL, EventStore, StoredEvent

log = structlog.get_logger(__name__)
DB_ERRORS = (OperationalError, InterfaceError, DBAPIError, OSError, ConnectionError)


def subject_of(service: str, stored: StoredEvent) -> str:
    return f"sipas.{service}.{stored.type.split('.')[4]}.{stored.province or NATIONAL}"


class Relay:
    def __init__(
        self, service: str, engine: AsyncEngine, bus: Bus, metrics: BackboneMetrics, *,
        batch: int = 1000, poll_interval: float = 0.5, replicas: int = 1,
        duplicate_window: float = 120.0,
    ) -> None:
        self.service, self._engine, self._bus, self._m = service, engine, bus, metrics
        self._store = EventStore(service)
        self._batch, self._poll = batch, poll_interval
        self._stream = StreamConfig(
            stream_name(service), stream_subjects(service), replicas=replicas,
            duplicate_window=duplicate_window,
        )
        self._lock_key = zlib.crc32(f"sipas-relay-{service}".encode())
        self._wake = asyncio.Event()
        self.is_leader = False

    async def run(self, stop: asyncio.Event) -> None:
        backoff = 0.2
        while not stop.is_set():
            try:
                async with self._engine.connect() as conn:
                    if not await self._lead(conn):
                        await _sleep(stop, 2.0)
                        continue
                    await self._bus.ensure_stream(self._stream)
                    await self._listen(conn)
                    backoff = 0.2
                    await self._loop(conn, stop)
            except DB_ERRORS as exc:
                self._m.relay_errors.labels("database").inc()
                log.warning("relay.database_unavailable", error=str(exc)[:200])
            except BusUnavailable as exc:
                self._m.relay_errors.labels("nats").inc()
                log.warning("relay.nats_unavailable", error=str(exc)[:200])
            finally:
                self._set_leader(False)
            await _sleep(stop, backoff)
            backoff = min(backoff * 2, 5.0)

    async def _lead(self, conn: AsyncConnection) -> bool:
        got = (await conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": self._lock_key})).scalar()
        await conn.commit()
        if got:
            async with conn.begin():
                await sequencer.ensure_state(conn)
            log.info("relay.leader", service=self.service)
        self._set_leader(bool(got))
        return bool(got)

    def _set_leader(self, value: bool) -> None:
        self.is_leader = value
        self._m.relay_leader.set(1 if value else 0)

    async def _listen(self, conn: AsyncConnection) -> None:
        raw = await conn.get_raw_connection()
        await raw.driver_connection.add_listener(NOTIFY_CHANNEL, lambda *_: self._wake.set())  # type: ignore[union-attr]

    async def _loop(self, conn: AsyncConnection, stop: asyncio.Event) -> None:
        while not stop.is_set():
            # Clear before pumping, never after: a NOTIFY that arrives while the pump runs (its
            # event committed too late for this pump) must cut the next wait short.
            self._wake.clear()
            _, more = await self._pump(conn)
            if not more:
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout=self._poll)
                except TimeoutError:
                    pass

    async def pump(self, conn: AsyncConnection) -> int:
        """One round: sequence a batch, publish a batch. Returns how much moved."""
        return (await self._pump(conn))[0]

    async def _pump(self, conn: AsyncConnection) -> tuple[int, bool]:
        """(how much moved, whether more may be waiting already: a full batch sequenced or some left unpublished)."""
        async with conn.begin():
            done = await sequencer.sequence(conn, self._batch)
            sequenced, pub_pos, seq_pos = len(done.events), done.published_position, done.sequenced_position
            if done.events and done.events[0].position == pub_pos + 1:
                rows = done.events  # caught up: publish what was just sequenced without reading it back
            else:
                rows = await self._store.read_all(conn, pub_pos, self._batch)
        if sequenced:
            self._m.events_sequenced.inc(sequenced)
        if rows:
            results = await self._bus.publish_batch([self._message(r) for r in rows])
            async with conn.begin():
                await sequencer.mark_published(conn, rows[-1].position)
            dupes = sum(1 for r in results if r.duplicate)
            self._m.events_published.inc(len(rows) - dupes)
            if dupes:
                self._m.publish_duplicates.inc(dupes)
            pub_pos = rows[-1].position
        self._m.outbox_backlog.set(seq_pos - pub_pos)
        return sequenced + len(rows), sequenced >= self._batch or pub_pos < seq_pos

    def _message(self, stored: StoredEvent) -> OutMessage:
        return OutMessage(subject_of(self.service, stored), stored.envelope_json(), str(stored.id))


async def _sleep(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except TimeoutError:
        pass
