"""The backbone's tables, present in every service's database.

- ``event_store``: the service's own events. Writers insert rows with no position; the relay's
  sequencer later gives committed rows gapless positions and hash-chains them. Because the
  sequencer picks "rows without a position", an event whose transaction commits late is simply
  sequenced later: nothing depends on a high-water mark of insertion order, so nothing is skipped.
- ``relay_state``: the sequencer's head (last position and hash) and the publisher's cursor.
- ``inbox`` / ``consumer_checkpoints``: what each consumer applied, and its contiguous position
  per producer; committed in the same transaction as the effect.
- ``dead_letters``: events a consumer gave up on, for operators to inspect and replay.
- ``idempotency_keys``: stored responses of POSTs made with an ``Idempotency-Key``.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Identity,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    Table,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID

metadata = MetaData()

event_store = Table(
    "event_store", metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("insert_order", BigInteger, Identity(always=True), nullable=False, unique=True),
    Column("stream_id", Text, nullable=False),
    Column("version", Integer, nullable=False),
    Column("type", Text, nullable=False),
    Column("province", Text),
    Column("body", Text, nullable=False, comment="canonical JSON of the envelope without position"),
    Column("position", BigInteger, unique=True),
    Column("hash", LargeBinary),
    Column("recorded_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    UniqueConstraint("stream_id", "version", name="event_store_stream_version_key"),
    Index("event_store_unsequenced", "insert_order", postgresql_where=text("position IS NULL")),
)

relay_state = Table(
    "relay_state", metadata,
    Column("id", SmallInteger, primary_key=True),
    Column("sequenced_position", BigInteger, nullable=False, server_default="0"),
    Column("head_hash", LargeBinary, nullable=False),
    Column("published_position", BigInteger, nullable=False, server_default="0"),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

inbox = Table(
    "inbox", metadata,
    Column("consumer", Text, primary_key=True),
    Column("event_id", UUID(as_uuid=True), primary_key=True),
    Column("producer", Text, nullable=False),
    Column("position", BigInteger, nullable=False),
    Column("type", Text, nullable=False),
    Column("status", Text, nullable=False, comment="applied | dead | replayed"),
    Column("handled_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

consumer_checkpoints = Table(
    "consumer_checkpoints", metadata,
    Column("consumer", Text, primary_key=True),
    Column("producer", Text, primary_key=True),
    Column("position", BigInteger, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

dead_letters = Table(
    "dead_letters", metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("consumer", Text, nullable=False),
    Column("producer", Text, nullable=False),
    Column("event_id", UUID(as_uuid=True), nullable=False),
    Column("position", BigInteger, nullable=False),
    Column("type", Text, nullable=False),
    Column("envelope", JSONB, nullable=False),
    Column("error", Text, nullable=False),
    Column("deliveries", Integer, nullable=False),
    Column("status", Text, nullable=False, server_default="dead", comment="dead | replayed | discarded"),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("resolved_at", DateTime(timezone=True)),
    Column("resolved_by", Text),
    UniqueConstraint("consumer", "event_id", name="dead_letters_consumer_event_key"),
)

idempotency_keys = Table(
    "idempotency_keys", metadata,
    Column("principal", Text, primary_key=True),
    Column("key", Text, primary_key=True),
    Column("method", Text, nullable=False),
    Column("path", Text, nullable=False),
    Column("request_hash", Text, nullable=False),
    Column("status_code", Integer, nullable=False),
    Column("response", JSONB, nullable=False),
    Column("headers", JSONB, nullable=False, server_default="{}"),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

GENESIS_HASH = bytes(32)
