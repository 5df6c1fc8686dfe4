"""The audit trail: every state-changing request and every read of personal data, hash-chained.

Each service records, after answering, one row per POST/PUT/PATCH/DELETE (whatever the outcome: a
refused request is evidence too) and per request an endpoint marks as a personal-data read
(``mark_personal_data_read(request, purpose)``): actor, role, province scope, method, route, path,
status, client address, correlation id and purpose. Rows are written unsealed (no contention between
requests); the sealer gives them consecutive positions and chains them,

    hash_n = SHA-256(hash_{n-1} || position as 8 bytes big-endian || body as UTF-8),

exactly like the event store. ``GET /v1/audit`` exports the sealed rows to auditors and
``GET /v1/audit/verify`` recomputes the chain and names the first broken link (``?upto=N``: the head
the chain gives at position N). ``GET /v1/audit/head`` is the last sealed position and its hash: each
release records every service's (publishing signs them into the manifest), so a later rewrite of the
trail up to that position shows as ``verify?upto=N`` giving another head than the release says.

Known limit: the row is written after the response is produced, in its own transaction; a process
killed between a command's commit and this write loses that row (the command itself is an event in
the event store, with its actor, either way).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
from typing import Any

import structlog
from fastapi import Request
from sqlalchemy import BigInteger, Column, DateTime, Index, LargeBinary, MetaData, Table, Text, select, text
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from sipas_events import canonical
from sipas_events.ids import new_id
from sipas_events.schema import GENESIS_HASH

log = structlog.get_logger(__name__)
AUDITED_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
CREDENTIAL_PARAMS = ("code",)
"""Path parameters that are credentials (a respondent's ballot code): never logged nor audited as sent."""
_LOCK = 0x5A1D_A0D1  # pg advisory lock key: one sealer at a time per database


def _columns_v1() -> list[Any]:
    """Frozen: the v1 shape of ``audit_log`` (each service's audit migration creates exactly this)."""
    return [
        Column("id", UUID(as_uuid=True), primary_key=True),
        Column("recorded_at", DateTime(timezone=True), nullable=False),
        Column("body", Text, nullable=False),
        Column("position", BigInteger, unique=True),
        Column("hash", LargeBinary),
    ]


metadata = MetaData()
audit_log = Table("audit_log", metadata, *_columns_v1())
Index("ix_audit_log_unsealed", audit_log.c.recorded_at, postgresql_where=audit_log.c.position.is_(None))


def v1_upgrade(op: Any) -> None:
    op.create_table("audit_log", *_columns_v1())
    op.create_index("ix_audit_log_unsealed", "audit_log", ["recorded_at"], postgresql_where=text("position IS NULL"))


def v1_downgrade(op: Any) -> None:
    op.drop_table("audit_log")


_SEAL = text(
    "UPDATE audit_log SET position = s.position, hash = s.hash"
    " FROM unnest(CAST(:ids AS uuid[]), CAST(:positions AS bigint[]), CAST(:hashes AS bytea[]))"
    " AS s(id, position, hash) WHERE audit_log.id = s.id"
)


def chain_hash(previous: bytes, position: int, body: str) -> bytes:
    digest = hashlib.sha256(previous)
    digest.update(position.to_bytes(8, "big"))
    digest.update(body.encode("utf-8"))
    return digest.digest()


def mark_personal_data_read(request: Request, purpose: str) -> None:
    """Called by an endpoint that reveals personal data: the read is audited with its purpose."""
    request.state.personal_data_purpose = purpose


def shown_path(request: Request) -> str:
    """The request's path for logs and the audit trail, credentials masked (``/b/…``; the route names them)."""
    path = request.url.path
    for name in CREDENTIAL_PARAMS:
        value = request.path_params.get(name)
        if value:
            path = path.replace(str(value), "…")
    return path


def entry(request: Request, service: str, status: int) -> dict[str, Any] | None:
    """The audit body of a finished request, or None if it is not audited."""
    purpose = getattr(request.state, "personal_data_purpose", None)
    if request.method not in AUDITED_METHODS and purpose is None:
        return None
    principal = getattr(request.state, "principal", None)
    route = getattr(request.scope.get("route"), "path", "unmatched")
    return {
        "time": dt.datetime.now(dt.UTC).isoformat(), "service": service, "method": request.method,
        "route": route, "path": shown_path(request), "status": status,
        "actor": getattr(principal, "subject", None) or getattr(request.state, "actor", None) or "anonymous",
        "role": str(getattr(principal, "role", "")) or None, "province": getattr(principal, "province", None),
        "client": request.client.host if request.client else None,
        "correlation_id": getattr(request.state, "correlation_id", None),
        "kind": "personal-data-read" if purpose is not None else "command", "purpose": purpose,
    }


async def record(engine: AsyncEngine, body: dict[str, Any]) -> None:
    async with engine.connect() as conn:  # one INSERT in autocommit: one round trip, no BEGIN/COMMIT
        conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        await write(conn, body)


async def write(conn: AsyncConnection, body: dict[str, Any]) -> None:
    """The audit row of ``body``, in ``conn``'s transaction: a command's row commits with its effects."""
    await conn.execute(audit_log.insert().values(
        id=new_id(), recorded_at=dt.datetime.now(dt.UTC), body=canonical.dumps(body)))


async def seal(conn: AsyncConnection, limit: int = 1000) -> int:
    """Give unsealed rows the next positions and chain them; returns how many were sealed."""
    if not (await conn.execute(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": _LOCK})).scalar():
        return 0
    position, previous = await head(conn)
    rows = (await conn.execute(select(audit_log.c.id, audit_log.c.body).where(audit_log.c.position.is_(None))
                               .order_by(audit_log.c.recorded_at, audit_log.c.id).limit(limit)
                               .with_for_update(skip_locked=True))).all()
    ids, positions, hashes = [], [], []
    for row_id, body in rows:
        position += 1
        previous = chain_hash(previous, position, body)
        ids.append(row_id)
        positions.append(position)
        hashes.append(previous)
    if ids:  # one statement for the whole batch
        await conn.execute(_SEAL, {"ids": ids, "positions": positions, "hashes": hashes})
    return len(rows)


class AuditChainBroken(Exception):
    def __init__(self, position: int, reason: str) -> None:
        super().__init__(f"audit chain broken at position {position}: {reason}")
        self.position = position


async def head(conn: AsyncConnection) -> tuple[int, bytes]:
    """The last sealed position and its stored hash (0 and the genesis hash before the first row)."""
    last = (await conn.execute(select(audit_log.c.position, audit_log.c.hash).where(audit_log.c.position.is_not(None))
                               .order_by(audit_log.c.position.desc()).limit(1))).first()
    return (int(last[0]), bytes(last[1])) if last else (0, GENESIS_HASH)


async def verify(conn: AsyncConnection, batch: int = 5000, upto: int | None = None) -> tuple[int, bytes]:
    """Recompute the chain from the genesis (up to ``upto`` when given); raise :class:`AuditChainBroken`
    at the first bad link, or at ``upto`` when the chain does not reach it."""
    previous, position = GENESIS_HASH, 0
    while True:
        if upto is not None and position >= upto:
            return position, previous
        rows = (await conn.execute(select(audit_log.c.position, audit_log.c.body, audit_log.c.hash)
                                   .where(audit_log.c.position > position).order_by(audit_log.c.position)
                                   .limit(batch if upto is None else min(batch, upto - position)))).all()
        if not rows:
            if upto is not None:
                raise AuditChainBroken(position + 1, f"the chain ends at {position}, before {upto}")
            return position, previous
        for pos, body, stored in rows:
            if pos != position + 1:
                raise AuditChainBroken(position + 1, "missing")
            try:
                json.loads(body)
            except ValueError:
                raise AuditChainBroken(pos, "body is not JSON") from None
            expected = chain_hash(previous, pos, body)
            if stored is None or bytes(stored) != expected:
                raise AuditChainBroken(pos, "hash does not match")
            previous, position = expected, pos


async def enabled(engine: AsyncEngine) -> bool:
    """Whether this database has the audit table (every service's migrations create it)."""
    async with engine.connect() as conn:
        return bool((await conn.execute(text("SELECT to_regclass('audit_log') IS NOT NULL"))).scalar())


async def sealer(engine: AsyncEngine, stop: asyncio.Event, every: float = 0.5) -> None:
    """Seal the audit rows as they arrive, until ``stop``."""
    ready = False
    while not stop.is_set():
        try:
            ready = ready or await enabled(engine)
            sealed = 0
            if ready:
                async with engine.begin() as conn:
                    sealed = await seal(conn)
        except Exception as exc:  # never stop auditing because one pass failed (the database may be starting)
            log.warning("audit.seal_failed", error=repr(exc)[:300])
            sealed = 0
        if sealed < 1000:
            try:
                await asyncio.wait_for(stop.wait(), every)
            except TimeoutError:
                pass
