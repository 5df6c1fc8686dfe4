"""The event store on PostgreSQL: append with optimistic concurrency, read, verify the chain.

Handlers call ``append`` inside their own transaction, next to their projection updates, and
commit once. Positions and hashes are assigned afterwards by the sequencer (see ``sequencer``),
so writers never contend on a global counter and a late commit is never skipped.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, insert, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from sipas_events import canonical
from sipas_events.catalogue.base import Event
from sipas_events.envelope import Envelope
from sipas_events.ids import new_id
from sipas_events.schema import GENESIS_HASH, event_store

NOTIFY_CHANNEL = "sipas_events"


class ConcurrencyError(Exception):
    """The stream moved on since it was read: reload and decide again."""

    def __init__(self, stream_id: str, expected: int | None) -> None:
        super().__init__(f"stream {stream_id!r} is no longer at version {expected}")
        self.stream_id, self.expected = stream_id, expected


@dataclass(frozen=True)
class Metadata:
    """Who and why: copied onto every envelope a command appends."""

    correlation_id: str
    actor: str
    causation_id: str | None = None


@dataclass(frozen=True)
class StoredEvent:
    """A sequenced row as the relay and the replay endpoint read it."""

    position: int
    id: uuid.UUID
    type: str
    province: str | None
    body: str

    def envelope_json(self) -> bytes:
        doc = json.loads(self.body)
        doc["position"] = self.position
        return canonical.dumpb(doc)

    def envelope(self) -> Envelope:
        return Envelope.model_validate_json(self.envelope_json())


def chain_hash(previous: bytes, position: int, body: str) -> bytes:
    """hash_n = SHA-256(hash_{n-1} || position as 8 bytes big-endian || body as UTF-8)."""
    digest = hashlib.sha256(previous)
    digest.update(position.to_bytes(8, "big"))
    digest.update(body.encode("utf-8"))
    return digest.digest()


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class EventStore:
    def __init__(self, service: str, *, clock: Callable[[], dt.datetime] = utcnow) -> None:
        self.service = service
        self.source = f"/sipas/{service}"
        self._clock = clock

    async def version(self, conn: AsyncConnection, stream_id: str) -> int:
        stmt = select(func.coalesce(func.max(event_store.c.version), 0)).where(
            event_store.c.stream_id == stream_id
        )
        return int((await conn.execute(stmt)).scalar_one())

    async def append(
        self,
        conn: AsyncConnection,
        stream_id: str,
        events: Sequence[Event],
        *,
        expected_version: int | None,
        meta: Metadata,
    ) -> list[Envelope]:
        """Append to one stream; ``expected_version=None`` appends after whatever is there."""
        if not events:
            return []
        base = await self.version(conn, stream_id) if expected_version is None else expected_version
        envelopes = [self._envelope(stream_id, base + i + 1, ev, meta) for i, ev in enumerate(events)]
        rows = [_row(env) for env in envelopes]
        try:
            async with conn.begin_nested():
                await conn.execute(insert(event_store), rows)
        except IntegrityError as exc:
            if "event_store_stream_version_key" in str(exc.orig):
                raise ConcurrencyError(stream_id, expected_version) from None
            raise
        await conn.execute(text("SELECT pg_notify(:channel, '')"), {"channel": NOTIFY_CHANNEL})
        return envelopes

    def _envelope(self, stream_id: str, version: int, ev: Event, meta: Metadata) -> Envelope:
        return Envelope(
            id=new_id(), source=self.source, type=ev.event_type(), subject=stream_id,
            time=self._clock(), data=ev.payload(), sequence=version,
            correlationid=meta.correlation_id, causationid=meta.causation_id, actor=meta.actor,
            province=ev.partition(),
        )

    async def load(self, conn: AsyncConnection, stream_id: str) -> list[Envelope]:
        """Every committed event of one aggregate, in version order (sequenced or not)."""
        stmt = (
            select(event_store.c.body, event_store.c.position)
            .where(event_store.c.stream_id == stream_id)
            .order_by(event_store.c.version)
        )
        out = []
        for body, position in await conn.execute(stmt):
            doc = json.loads(body)
            doc["position"] = position
            out.append(Envelope.model_validate(doc))
        return out

    async def read_all(self, conn: AsyncConnection, after: int, limit: int) -> list[StoredEvent]:
        """Sequenced events after a position, in position order: commit-safe by construction."""
        stmt = (
            select(
                event_store.c.position, event_store.c.id, event_store.c.type,
                event_store.c.province, event_store.c.body,
            )
            .where(event_store.c.position > after)
            .order_by(event_store.c.position)
            .limit(limit)
        )
        return [StoredEvent(*row) for row in await conn.execute(stmt)]

    async def head(self, conn: AsyncConnection) -> tuple[int, bytes]:
        """The last sequenced position and its chain hash."""
        stmt = select(event_store.c.position, event_store.c.hash).where(
            event_store.c.position.is_not(None)
        ).order_by(event_store.c.position.desc()).limit(1)
        row = (await conn.execute(stmt)).first()
        return (0, GENESIS_HASH) if row is None else (int(row[0]), bytes(row[1]))

    async def verify_chain(self, conn: AsyncConnection, batch: int = 5000) -> tuple[int, bytes]:
        """Recompute the hash chain from the genesis; raise on the first broken link."""
        previous, position = GENESIS_HASH, 0
        while True:
            stmt = (
                select(event_store.c.position, event_store.c.body, event_store.c.hash)
                .where(event_store.c.position > position)
                .order_by(event_store.c.position)
                .limit(batch)
            )
            rows = (await conn.execute(stmt)).all()
            if not rows:
                return position, previous
            for pos, body, stored in rows:
                if pos != position + 1:
                    raise ChainBroken(f"position {position + 1} is missing")
                expected = chain_hash(previous, pos, body)
                if bytes(stored) != expected:
                    raise ChainBroken(f"hash mismatch at position {pos}")
                previous, position = expected, pos


class ChainBroken(Exception):
    pass


def _row(env: Envelope) -> dict[str, Any]:
    return {
        "id": env.id, "stream_id": env.subject, "version": env.sequence, "type": env.type,
        "province": env.province, "body": canonical.dumps(env.body()),
    }
