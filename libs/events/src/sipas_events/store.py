"""The event store on PostgreSQL: append with optimistic concurrency, read, verify the chain.

Handlers call ``append`` inside their own transaction, next to their projection updates, and
commit once. Positions and hashes are assigned afterwards by the sequencer (see ``sequencer``),
so writers never contend on a global counter and a late commit is never skipped.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import uuid
import weakref
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import event, func, select, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from sipas_events import canonical
from sipas_events.catalogue.base import Event
from sipas_events.envelope import Envelope
from sipas_events.ids import new_id
from sipas_events.schema import GENESIS_HASH, event_store

if TYPE_CHECKING:
    from sipas_events.metrics import BackboneMetrics

NOTIFY_CHANNEL = "sipas_events"

# One statement, one round trip per append, all or nothing without a savepoint. The first event
# (version expected+1) is the optimistic-concurrency check: if another writer holds that version,
# committed or not yet, ON CONFLICT waits for it and inserts nothing. Only if the first row went in
# are the others inserted (in version order, so insertion order follows the versions); they can
# only collide if some writer skipped versions, and then the unique violation aborts the statement.
_APPEND_ROWS = """
    WITH v AS (
        SELECT * FROM unnest(CAST(:ids AS uuid[]), CAST(:versions AS integer[]), CAST(:types AS text[]),
                             CAST(:provinces AS text[]), CAST(:bodies AS text[]))
            WITH ORDINALITY AS v(id, version, type, province, body, n)
    ), head AS (
        INSERT INTO event_store (id, stream_id, version, type, province, body)
        SELECT id, CAST(:stream_id AS text), version, type, province, body FROM v WHERE n = 1
        ON CONFLICT ON CONSTRAINT event_store_stream_version_key DO NOTHING
        RETURNING 1
    ), tail AS (
        INSERT INTO event_store (id, stream_id, version, type, province, body)
        SELECT id, CAST(:stream_id AS text), version, type, province, body FROM v
        WHERE n > 1 AND EXISTS (SELECT FROM head) ORDER BY n
        RETURNING 1
    )
    SELECT (SELECT count(*) FROM head) + (SELECT count(*) FROM tail)"""
_APPEND = text(_APPEND_ROWS)
# One event and no NOTIFY to send: the plain insert is cheaper to run than the statement above.
_APPEND_ONE = text(
    "INSERT INTO event_store (id, stream_id, version, type, province, body)"
    " VALUES (:id, :stream_id, :version, :type, :province, :body)"
    " ON CONFLICT ON CONSTRAINT event_store_stream_version_key DO NOTHING"
)
# The first append of a transaction also wakes the relay (delivered on commit; PostgreSQL would
# fold repeats within one transaction anyway, this saves even sending them).
_APPEND_AND_NOTIFY = text(f"{_APPEND_ROWS}, pg_notify('{NOTIFY_CHANNEL}', '')")
# Many streams at once (``append_many``): one INSERT per chunk, rows in the order given (each stream's
# events in version order), inside a savepoint so that a collision writes nothing of the call.
_APPEND_MANY_ROWS = """
    WITH ins AS (
        INSERT INTO event_store (id, stream_id, version, type, province, body)
        SELECT id, stream_id, version, type, province, body
        FROM unnest(CAST(:ids AS uuid[]), CAST(:streams AS text[]), CAST(:versions AS integer[]),
                    CAST(:types AS text[]), CAST(:provinces AS text[]), CAST(:bodies AS text[]))
            WITH ORDINALITY AS v(id, stream_id, version, type, province, body, n)
        ORDER BY n
        RETURNING 1
    )
    SELECT count(*) FROM ins"""
_APPEND_MANY = text(_APPEND_MANY_ROWS)
_APPEND_MANY_AND_NOTIFY = text(f"{_APPEND_MANY_ROWS}, pg_notify('{NOTIFY_CHANNEL}', '')")
_VERSIONS = text("SELECT stream_id, max(version) FROM event_store WHERE stream_id = ANY(CAST(:streams AS text[]))"
                 " GROUP BY stream_id")


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
class StreamAppend:
    """One stream's part of ``EventStore.append_many``: its events and the version they expect
    (``None``: after whatever is there)."""

    stream_id: str
    events: Sequence[Event]
    expected_version: int | None


@dataclass(frozen=True)
class StoredEvent:
    """A sequenced row as the relay and the replay endpoint read it."""

    position: int
    id: uuid.UUID
    type: str
    province: str | None
    body: str

    def envelope_json(self) -> bytes:
        """The canonical envelope with ``position``: what the relay publishes and replay returns."""
        return with_position(self.body, self.position)

    def envelope(self) -> Envelope:
        return Envelope.model_validate_json(self.envelope_json())


# ``body`` is canonical JSON (keys sorted) of an envelope without ``position``, and every key that
# sorts after ``position`` holds a scalar, so the last ``,"<next key>":`` in the text is the
# top-level one (a quote inside a JSON string is always escaped) and ``position`` goes right
# before it: the same bytes as parsing, adding the key and serialising again, without doing so.
_AFTER_POSITION = sorted(k for k in Envelope.model_fields if k > "position")
_SPLICE_BEFORE = f',"{_AFTER_POSITION[0]}":' if _AFTER_POSITION and "data" not in _AFTER_POSITION else None


def with_position(body: str, position: int) -> bytes:
    """Canonical JSON of the stored ``body`` with ``position`` added."""
    at = body.rfind(_SPLICE_BEFORE) if _SPLICE_BEFORE else -1
    if at < 0:
        doc = json.loads(body)
        doc["position"] = position
        return canonical.dumpb(doc)
    return f'{body[:at]},"position":{int(position)}{body[at:]}'.encode()


def chain_hash(previous: bytes, position: int, body: str) -> bytes:
    """hash_n = SHA-256(hash_{n-1} || position as 8 bytes big-endian || body as UTF-8)."""
    digest = hashlib.sha256(previous)
    digest.update(position.to_bytes(8, "big"))
    digest.update(body.encode("utf-8"))
    return digest.digest()


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class EventStore:
    """``metrics``: count ``events_appended`` (by event name) when the appending transaction commits."""

    def __init__(
        self, service: str, *, clock: Callable[[], dt.datetime] = utcnow, metrics: BackboneMetrics | None = None,
    ) -> None:
        self.service = service
        self.source = f"/sipas/{service}"
        self._clock = clock
        self._metrics = metrics
        self._notified: weakref.WeakSet[object] = weakref.WeakSet()  # transactions that sent the NOTIFY
        self._uncommitted: weakref.WeakKeyDictionary[Connection, Counter[str]] = weakref.WeakKeyDictionary()

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
        """Append to one stream; ``expected_version=None`` appends after whatever is there.

        One statement, one round trip. Raises ``ConcurrencyError`` if the stream is no longer at
        ``expected_version``; nothing of this call is then written and the caller's transaction is
        still usable (unless the stream has a hole in its versions, which only a caller passing a
        version it never read can make: then the statement fails and the transaction must roll back).
        """
        if not events:
            return []
        base = await self.version(conn, stream_id) if expected_version is None else expected_version
        envelopes = [self._envelope(stream_id, base + i + 1, ev, meta) for i, ev in enumerate(events)]
        sync = conn.sync_connection
        txn = None if sync is None else (sync.get_nested_transaction() or sync.get_transaction())
        notify = txn is None or txn not in self._notified
        try:
            if len(envelopes) == 1 and not notify:
                env = envelopes[0]
                inserted = (await conn.execute(_APPEND_ONE, {
                    "id": env.id, "stream_id": stream_id, "version": env.sequence, "type": env.type,
                    "province": env.province, "body": canonical.dumps(env.body()),
                })).rowcount
            else:
                inserted = (await conn.execute(_APPEND_AND_NOTIFY if notify else _APPEND,
                                               {"stream_id": stream_id} | _columns(envelopes))).scalar_one()
        except IntegrityError as exc:
            if "event_store_stream_version_key" in str(exc.orig):
                raise ConcurrencyError(stream_id, expected_version) from None
            raise
        if inserted != len(envelopes):  # nothing was written (see _APPEND_ROWS)
            raise ConcurrencyError(stream_id, expected_version)
        if notify and txn is not None:
            self._notified.add(txn)
        if self._metrics is not None and sync is not None:
            self._count_on_commit(sync, envelopes)
        return envelopes

    async def append_many(
        self, conn: AsyncConnection, appends: Sequence[StreamAppend], *, meta: Metadata, chunk: int = 2000,
    ) -> list[Envelope]:
        """Append to many streams at once: what ``append`` does for each, in one INSERT per ``chunk`` events.

        For bulk commands (an import of thousands of ballots, one stream each). The streams' current
        versions are read in one statement (only for parts with ``expected_version=None``), the rows are
        written in the order given, and all of it runs in a savepoint: if any stream is no longer at its
        expected version (or a stream appears twice), ``ConcurrencyError`` is raised, nothing of this call
        is written and the caller's transaction goes on. A writer holding one of those versions
        uncommitted is waited for, as with ``append``. Returns the envelopes in the order given.
        """
        parts = [a for a in appends if a.events]
        if not parts:
            return []
        streams = [a.stream_id for a in parts]
        if len(set(streams)) != len(streams):
            duplicate = next(s for s in streams if streams.count(s) > 1)
            raise ConcurrencyError(duplicate, None)
        unknown = [a.stream_id for a in parts if a.expected_version is None]
        current: dict[str, int] = {}
        if unknown:
            current = {s: int(v) for s, v in await conn.execute(_VERSIONS, {"streams": unknown})}
        envelopes: list[Envelope] = []
        for a in parts:
            base = current.get(a.stream_id, 0) if a.expected_version is None else a.expected_version
            envelopes += [self._envelope(a.stream_id, base + i + 1, ev, meta) for i, ev in enumerate(a.events)]
        sync = conn.sync_connection
        txn = None if sync is None else (sync.get_nested_transaction() or sync.get_transaction())
        notify = txn is None or txn not in self._notified
        try:
            async with conn.begin_nested():
                for start in range(0, len(envelopes), chunk):
                    part = envelopes[start:start + chunk]
                    inserted = (await conn.execute(_APPEND_MANY_AND_NOTIFY if notify else _APPEND_MANY,
                                                   {"streams": [env.subject for env in part]} | _columns(part)
                                                   )).scalar_one()
                    notify = False
                    if inserted != len(part):  # cannot happen without ON CONFLICT; kept as a guard
                        raise ConcurrencyError(part[0].subject, None)
        except IntegrityError as exc:
            if "event_store_stream_version_key" in str(exc.orig):
                raise ConcurrencyError(_stream_of(exc.orig) or streams[0], None) from None
            raise
        if txn is not None:
            self._notified.add(txn)
        if self._metrics is not None and sync is not None:
            self._count_on_commit(sync, envelopes)
        return envelopes

    def _count_on_commit(self, sync: Connection, envelopes: Sequence[Envelope]) -> None:
        """Count the events once their transaction commits; forget them if it rolls back.

        Appends inside a savepoint that is rolled back while the transaction commits still count.
        """
        pending = self._uncommitted.get(sync)
        if pending is None:
            pending = self._uncommitted[sync] = Counter()
            event.listen(sync, "commit", self._committed)
            event.listen(sync, "rollback", self._rolled_back)
        for env in envelopes:
            pending[env.event_name] += 1

    def _committed(self, sync: Connection) -> None:
        pending = self._uncommitted.get(sync)
        if pending and self._metrics is not None:
            for name, count in pending.items():
                self._metrics.events_appended.labels(name).inc(count)
        self._rolled_back(sync)

    def _rolled_back(self, sync: Connection) -> None:
        pending = self._uncommitted.get(sync)
        if pending:
            pending.clear()

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

    async def unsequenced(self, conn: AsyncConnection) -> int:
        """Events committed but not yet given a position by the relay: not in ``head`` (nor on the bus) yet."""
        stmt = select(func.count()).select_from(event_store).where(event_store.c.position.is_(None))
        return int((await conn.execute(stmt)).scalar_one())

    async def chain_at(self, conn: AsyncConnection, position: int) -> bytes | None:
        """The chain hash after ``position`` (the genesis hash at 0); None if not sequenced yet."""
        if position == 0:
            return GENESIS_HASH
        found = (await conn.execute(select(event_store.c.hash).where(event_store.c.position == position))).scalar()
        return None if found is None else bytes(found)

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


def _columns(envelopes: Sequence[Envelope]) -> dict[str, list[Any]]:
    """The envelopes as the arrays the append statements unnest."""
    return {
        "ids": [env.id for env in envelopes],
        "versions": [env.sequence for env in envelopes],
        "types": [env.type for env in envelopes],
        "provinces": [env.province for env in envelopes],
        "bodies": [canonical.dumps(env.body()) for env in envelopes],
    }


def _stream_of(error: BaseException | None) -> str | None:
    """The stream named in a unique violation's detail: ``Key (stream_id, version)=(s, 3) already exists``."""
    details = [str(getattr(e, "detail", "") or "") for e in (error, getattr(error, "__cause__", None)) if e]
    match = re.search(r"\(stream_id, version\)=\((.*?), \d+\)", " ".join([*details, str(error)]))
    return match.group(1) if match else None


class ChainBroken(Exception):
    pass
