"""Frozen migration steps for the backbone tables, called from each service's Alembic revisions.

A step never changes once released; a schema change is a new step function (``v2``...) that every
service calls from a new revision. ``schema.py`` always describes the result of the latest step.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg


def v1_upgrade(op: Any) -> None:
    now = sa.text("now()")
    op.create_table(
        "event_store",
        sa.Column("id", pg.UUID(as_uuid=True), primary_key=True),
        sa.Column("insert_order", sa.BigInteger, sa.Identity(always=True), nullable=False, unique=True),
        sa.Column("stream_id", sa.Text, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("type", sa.Text, nullable=False),
        sa.Column("province", sa.Text),
        sa.Column("body", sa.Text, nullable=False, comment="canonical JSON of the envelope without position"),
        sa.Column("position", sa.BigInteger, unique=True),
        sa.Column("hash", sa.LargeBinary),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False, server_default=now),
        sa.UniqueConstraint("stream_id", "version", name="event_store_stream_version_key"),
    )
    op.create_index("event_store_unsequenced", "event_store", ["insert_order"],
                    postgresql_where=sa.text("position IS NULL"))
    op.create_table(
        "relay_state",
        sa.Column("id", sa.SmallInteger, primary_key=True),
        sa.Column("sequenced_position", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("head_hash", sa.LargeBinary, nullable=False),
        sa.Column("published_position", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=now),
    )
    op.create_table(
        "inbox",
        sa.Column("consumer", sa.Text, primary_key=True),
        sa.Column("event_id", pg.UUID(as_uuid=True), primary_key=True),
        sa.Column("producer", sa.Text, nullable=False),
        sa.Column("position", sa.BigInteger, nullable=False),
        sa.Column("type", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False, comment="applied | dead | replayed"),
        sa.Column("handled_at", sa.DateTime(timezone=True), nullable=False, server_default=now),
    )
    op.create_table(
        "consumer_checkpoints",
        sa.Column("consumer", sa.Text, primary_key=True),
        sa.Column("producer", sa.Text, primary_key=True),
        sa.Column("position", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=now),
    )
    op.create_table(
        "dead_letters",
        sa.Column("id", pg.UUID(as_uuid=True), primary_key=True),
        sa.Column("consumer", sa.Text, nullable=False),
        sa.Column("producer", sa.Text, nullable=False),
        sa.Column("event_id", pg.UUID(as_uuid=True), nullable=False),
        sa.Column("position", sa.BigInteger, nullable=False),
        sa.Column("type", sa.Text, nullable=False),
        sa.Column("envelope", pg.JSONB, nullable=False),
        sa.Column("error", sa.Text, nullable=False),
        sa.Column("deliveries", sa.Integer, nullable=False),
        sa.Column("status", sa.Text, nullable=False, server_default="dead", comment="dead | replayed | discarded"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=now),
        sa.Column("resolved_at", sa.DateTime(timezone=True)),
        sa.Column("resolved_by", sa.Text),
        sa.UniqueConstraint("consumer", "event_id", name="dead_letters_consumer_event_key"),
    )
    op.create_table(
        "idempotency_keys",
        sa.Column("principal", sa.Text, primary_key=True),
        sa.Column("key", sa.Text, primary_key=True),
        sa.Column("method", sa.Text, nullable=False),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("request_hash", sa.Text, nullable=False),
        sa.Column("status_code", sa.Integer, nullable=False),
        sa.Column("response", pg.JSONB, nullable=False),
        sa.Column("headers", pg.JSONB, nullable=False, server_default="{}"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=now),
    )
    # The store is evidence: rows are append-only once sequenced.
    op.execute("""
        CREATE FUNCTION event_store_guard() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          IF TG_OP = 'DELETE' THEN
            RAISE EXCEPTION 'event_store is append-only';
          END IF;
          IF OLD.position IS NOT NULL OR NEW.body <> OLD.body OR NEW.id <> OLD.id
             OR NEW.stream_id <> OLD.stream_id OR NEW.version <> OLD.version THEN
            RAISE EXCEPTION 'event_store rows are immutable once written (only sequencing may set position)';
          END IF;
          RETURN NEW;
        END $$;
    """)
    op.execute("""
        CREATE TRIGGER event_store_guard BEFORE UPDATE OR DELETE ON event_store
        FOR EACH ROW EXECUTE FUNCTION event_store_guard();
    """)


def v1_downgrade(op: Any) -> None:
    op.execute("DROP TRIGGER IF EXISTS event_store_guard ON event_store")
    op.execute("DROP FUNCTION IF EXISTS event_store_guard()")
    for table in ("idempotency_keys", "dead_letters", "consumer_checkpoints", "inbox", "relay_state", "event_store"):
        op.drop_table(table)
