"""The publishing service's own tables beside the backbone's.

Projection tables (rebuilt from events): the registry's reference data, the score snapshots scoring
announced and the sampling seed commitments. Working tables (the service's own record, not rebuilt):
releases, API keys, webhook subscriptions and their delivery outbox and log.

A published (or retracted) release row is immutable: a trigger refuses DELETE, and any UPDATE except
the one that retracts it (status ``published`` → ``retracted`` plus the retraction itself).

The v1 columns are frozen in :func:`_columns_v1`; migration 0003 creates exactly these. Later
columns are listed per migration in :data:`ADDED` (0004: a release's year-on-year comparison; 0006:
the audit-chain heads it records), added and dropped by :func:`add_columns` and :func:`drop_columns`.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ARRAY, BigInteger, Boolean, Column, DateTime, Index, Integer, MetaData, Table, Text
from sqlalchemy.dialects.postgresql import JSONB

from sipas_kit.reference import ReferenceTables

metadata = MetaData()
reference = ReferenceTables.on(metadata)
TZ = DateTime(timezone=True)


def _columns_v1() -> dict[str, list[Any]]:
    """Frozen: the v1 shape of publishing's own tables (migration 0003 creates exactly these)."""
    return {
        "pb_snapshots": [
            Column("snapshot_id", Text, primary_key=True), Column("campaign_id", Text, nullable=False),
            Column("province", Text), Column("taken_at", TZ, nullable=False),
            Column("positions", JSONB, nullable=False), Column("chain_heads", JSONB, nullable=False),
            Column("figures_digest", Text, nullable=False), Column("source_position", BigInteger, nullable=False),
        ],
        "pb_commitments": [
            Column("draw_id", Text, primary_key=True), Column("campaign_id", Text, nullable=False),
            Column("province", Text), Column("frame_digest", Text, nullable=False),
            Column("seed_commitment", Text, nullable=False), Column("algorithm_version", Text, nullable=False),
            Column("seed", Text), Column("source_position", BigInteger, nullable=False),
        ],
        "pb_releases": [
            Column("release_id", Text, primary_key=True), Column("campaign_id", Text, nullable=False),
            Column("province", Text), Column("snapshot_id", Text, nullable=False),
            Column("status", Text, nullable=False), Column("version", Integer, nullable=False),
            Column("title", Text, nullable=False), Column("supersedes", Text),
            Column("drafted_by", Text, nullable=False), Column("drafted_at", TZ, nullable=False),
            Column("submitted_by", Text), Column("approved_by", Text), Column("published_by", Text),
            Column("embargo_until", TZ), Column("published_at", TZ),
            Column("figures_digest", Text, nullable=False), Column("document", JSONB, nullable=False),
            Column("manifest", JSONB), Column("manifest_sha256", Text), Column("signature", Text),
            Column("key_id", Text), Column("retraction", JSONB),
        ],
        "pb_api_keys": [
            Column("key_id", Text, primary_key=True), Column("name", Text, nullable=False),
            Column("secret_sha256", Text, nullable=False), Column("scopes", ARRAY(Text), nullable=False),
            Column("rate_per_minute", Integer, nullable=False), Column("tokens", JSONB, nullable=False),
            Column("created_by", Text, nullable=False), Column("created_at", TZ, nullable=False),
            Column("revoked_at", TZ),
        ],
        "pb_subscriptions": [
            Column("subscription_id", Text, primary_key=True), Column("url", Text, nullable=False),
            Column("secret", Text, nullable=False), Column("event_types", ARRAY(Text), nullable=False),
            Column("owner", Text, nullable=False), Column("created_at", TZ, nullable=False),
            Column("active", Boolean, nullable=False),
        ],
        "pb_deliveries": [
            Column("delivery_id", Text, primary_key=True), Column("subscription_id", Text, nullable=False),
            Column("event_id", Text, nullable=False), Column("event_type", Text, nullable=False),
            Column("body", Text, nullable=False), Column("status", Text, nullable=False),
            Column("attempts", Integer, nullable=False), Column("next_attempt_at", TZ, nullable=False),
            Column("created_at", TZ, nullable=False), Column("delivered_at", TZ),
        ],
        "pb_delivery_log": [
            Column("attempt_id", BigInteger, primary_key=True, autoincrement=True),
            Column("delivery_id", Text, nullable=False), Column("subscription_id", Text, nullable=False),
            Column("attempted_at", TZ, nullable=False), Column("status_code", Integer), Column("error", Text),
        ],
    }


def _indexes(tables: dict[str, Table]) -> list[Index]:
    return [
        Index("ix_pb_releases_campaign", tables["pb_releases"].c.campaign_id, tables["pb_releases"].c.status),
        Index("ix_pb_commitments_campaign", tables["pb_commitments"].c.campaign_id),
        Index("ix_pb_deliveries_due", tables["pb_deliveries"].c.status, tables["pb_deliveries"].c.next_attempt_at),
        Index("ix_pb_delivery_log_subscription", tables["pb_delivery_log"].c.subscription_id),
    ]


IMMUTABLE_RELEASES = ("""
CREATE FUNCTION pb_releases_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF OLD.status NOT IN ('published', 'retracted') THEN
    RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
  END IF;
  IF TG_OP = 'UPDATE' AND OLD.status = 'published' AND NEW.status = 'retracted'
     AND OLD.retraction IS NULL AND NEW.retraction IS NOT NULL
     AND (to_jsonb(OLD) - ARRAY['status', 'retraction', 'version'])
         = (to_jsonb(NEW) - ARRAY['status', 'retraction', 'version']) THEN
    RETURN NEW;
  END IF;
  RAISE EXCEPTION 'release % is published and cannot be changed (%)', OLD.release_id, TG_OP
    USING ERRCODE = 'integrity_constraint_violation';
END $$
""", """
CREATE TRIGGER pb_releases_immutable BEFORE UPDATE OR DELETE ON pb_releases
  FOR EACH ROW EXECUTE FUNCTION pb_releases_immutable()
""")

def _added_0004() -> dict[str, list[Any]]:
    """Frozen: what migration 0004 adds — the earlier campaign a release compares with, and scoring's
    comparison restricted to what the release shows (signed into the manifest with the figures)."""
    return {"pb_releases": [Column("compare_with", Text), Column("comparison", JSONB)]}


def _added_0006() -> dict[str, list[Any]]:
    """Frozen: what migration 0006 adds — every service's audit-chain head when the release was drafted
    (signed into the manifest)."""
    return {"pb_releases": [Column("audit_heads", JSONB)]}


ADDED = {"0004": _added_0004, "0006": _added_0006}


def add_columns(op: Any, revision: str) -> None:
    for table, columns in ADDED[revision]().items():
        for column in columns:
            op.add_column(table, column)


def drop_columns(op: Any, revision: str) -> None:
    for table, columns in ADDED[revision]().items():
        for column in reversed(columns):
            op.drop_column(table, column.name)


def _columns() -> dict[str, list[Any]]:
    columns = _columns_v1()
    for added in ADDED.values():
        for name, cols in added().items():
            columns[name] = columns[name] + cols
    return columns


_tables = {name: Table(name, metadata, *cols) for name, cols in _columns().items()}
_indexes(_tables)
snapshots, commitments, releases = _tables["pb_snapshots"], _tables["pb_commitments"], _tables["pb_releases"]
api_keys, subscriptions = _tables["pb_api_keys"], _tables["pb_subscriptions"]
deliveries, delivery_log = _tables["pb_deliveries"], _tables["pb_delivery_log"]


def v1_upgrade(op: Any) -> None:
    for name, cols in _columns_v1().items():
        op.create_table(name, *cols)
    fresh = {name: Table(name, MetaData(), *cols) for name, cols in _columns_v1().items()}
    for index in _indexes(fresh):
        table = next(iter(index.columns)).table
        op.create_index(index.name, table.name, [c.name for c in index.columns])
    for statement in IMMUTABLE_RELEASES:
        op.execute(statement)


def v1_downgrade(op: Any) -> None:
    op.execute("DROP TRIGGER IF EXISTS pb_releases_immutable ON pb_releases")
    op.execute("DROP FUNCTION IF EXISTS pb_releases_immutable()")
    for name in reversed(list(_columns_v1())):
        op.drop_table(name)
