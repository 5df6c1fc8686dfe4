"""Endpoints every service has for partners of the backbone and for operators.

- ``GET /v1/events``: the replay endpoint other services fill gaps from (and auditors read);
- dead letters: list, replay after a fix, or discard with a reason;
- projections: rebuild from the streams, and the digest of the canonical export.
"""

from __future__ import annotations

import json
import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel
from sqlalchemy import select

from sipas_events.bus.base import BusUnavailable
from sipas_events.export import export_digest
from sipas_events.schema import consumer_checkpoints, dead_letters
from sipas_events.sequencer import relay_positions
from sipas_kit import audit
from sipas_kit.auth import Principal, Role, require_roles
from sipas_kit.http import Ctx
from sipas_kit.pagination import MAX_LIMIT, Page, decode_cursor, page_of
from sipas_kit.problems import RETRY_AFTER_SECONDS, Problem

router = APIRouter(prefix="/v1", tags=["operations"])
MAX_POSITION = 2**63 - 1  # store positions are BIGINT: a larger ``after`` is a 422, not a database error
Reader = Annotated[Principal, Depends(require_roles(Role.SERVICE, Role.AUDITOR, Role.MINISTRY_ADMIN))]
Operator = Annotated[Principal, Depends(require_roles(Role.MINISTRY_ADMIN))]


@router.get("/events", summary="Replay this service's events after a store position")
async def replay(ctx: Ctx, _: Reader, after: Annotated[int, Query(ge=0, le=MAX_POSITION)] = 0,
                 limit: Annotated[int, Query(ge=0, le=5000)] = 500) -> dict[str, Any]:
    async with ctx.engine.connect() as conn:
        rows = await ctx.store.read_all(conn, after, limit) if limit else []
        head, chain = await ctx.store.head(conn)
        unsequenced = await ctx.store.unsequenced(conn)
        published = (await relay_positions(conn))[1]
    # ``unsequenced``: committed events the relay has not numbered yet (briefly, or while PostgreSQL or the
    # relay recovers). Whoever waits for consumers to reach ``head`` waits for this to be 0 first.
    # ``published``: the last position the relay has handed to JetStream; a consumer missing one at or
    # before it (for longer than a delivery takes) lost it, one after it is on its way.
    return {"events": [json.loads(r.envelope_json()) for r in rows], "head": head, "chain_head": chain.hex(),
            "unsequenced": unsequenced, "published": published}


@router.get("/events/chain", summary="The hash chain at a store position (what a snapshot records)")
async def chain_at(ctx: Ctx, _: Reader, at: Annotated[int, Query(ge=0, le=MAX_POSITION)]) -> dict[str, Any]:
    async with ctx.engine.connect() as conn:
        found = await ctx.store.chain_at(conn, at)
    if found is None:
        raise Problem(404, "Not found", f"no sequenced event at position {at}")
    return {"position": at, "chain_hash": found.hex()}


Auditor = Annotated[Principal, Depends(require_roles(Role.AUDITOR, Role.MINISTRY_ADMIN))]


async def _audited(ctx: Ctx) -> None:
    """A service whose migrations have no audit table yet says so (a 404), rather than failing (a 500)."""
    if ctx.audit_enabled is None:
        ctx.audit_enabled = await audit.enabled(ctx.engine)
    if not ctx.audit_enabled:
        raise Problem(404, "Not found", f"{ctx.service} keeps no audit trail yet")


@router.get("/audit", summary="The sealed audit trail of this service, in chain order (auditors)")
async def audit_trail(ctx: Ctx, _: Auditor, after: Annotated[int, Query(ge=0, le=MAX_POSITION)] = 0,
                      limit: Annotated[int, Query(ge=1, le=5000)] = 500) -> dict[str, Any]:
    await _audited(ctx)
    t = audit.audit_log
    async with ctx.engine.connect() as conn:
        rows = (await conn.execute(select(t.c.position, t.c.body, t.c.hash).where(t.c.position > after)
                                   .order_by(t.c.position).limit(limit))).all()
    return {"entries": [{"position": p, "hash": bytes(h).hex(), "entry": json.loads(b)} for p, b, h in rows],
            "next_after": rows[-1][0] if rows else after}


@router.get("/audit/verify", summary="Recompute the audit chain (to a position); name the first broken link")
async def audit_verify(ctx: Ctx, _: Auditor, upto: Annotated[int | None, Query(
        ge=0, le=MAX_POSITION, description="Stop at this position and give the head there (what a release "
                                           "recorded); a chain that does not reach it is broken")] = None,
) -> dict[str, Any]:
    await _audited(ctx)
    async with ctx.engine.connect() as conn:
        try:
            position, head = await audit.verify(conn, upto=upto)
        except audit.AuditChainBroken as exc:
            return {"ok": False, "broken_at": exc.position, "detail": str(exc)}
    return {"ok": True, "position": position, "head": head.hex()}


@router.get("/audit/head", summary="The audit chain's last sealed position and its hash (what releases record)")
async def audit_head(ctx: Ctx, _: Reader) -> dict[str, Any]:
    await _audited(ctx)
    async with ctx.engine.connect() as conn:
        position, head = await audit.head(conn)
    return {"service": ctx.service, "position": position, "head": head.hex()}


class DeadLetter(BaseModel):
    id: uuid.UUID
    consumer: str
    producer: str
    event_id: uuid.UUID
    position: int
    type: str
    error: str
    deliveries: int
    status: str
    created_at: Any
    resolved_by: str | None


@router.get("/ops/dead-letters", summary="Events consumers gave up on")
async def list_dead_letters(
    ctx: Ctx, _: Reader, status: Literal["dead", "replayed", "discarded"] | None = "dead",
    cursor: str | None = None, limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
) -> Page[DeadLetter]:
    stmt = select(dead_letters).order_by(dead_letters.c.id).limit(limit + 1)
    if status:
        stmt = stmt.where(dead_letters.c.status == status)
    after = decode_cursor(cursor)
    if after:
        stmt = stmt.where(dead_letters.c.id > uuid.UUID(str(after[0])))
    async with ctx.engine.connect() as conn:
        rows = [DeadLetter.model_validate(dict(r)) for r in (await conn.execute(stmt)).mappings()]
    return page_of(rows, limit, lambda d: [str(d.id)])


async def _consumer_of(ctx: Ctx, dead_letter_id: uuid.UUID) -> str:
    async with ctx.engine.connect() as conn:
        consumer = (await conn.execute(
            select(dead_letters.c.consumer).where(dead_letters.c.id == dead_letter_id)
        )).scalar()
    if consumer is None:
        raise Problem(404, "Not found", f"no dead letter {dead_letter_id}")
    for c in ctx.consumers.values():
        if c.name == consumer:
            return str(c.projection.name)
    raise Problem(409, "Conflict", f"consumer {consumer} is not running in this process")


@router.post("/ops/dead-letters/{dead_letter_id}/replay", summary="Apply a dead-lettered event again")
async def replay_dead_letter(ctx: Ctx, who: Operator, dead_letter_id: uuid.UUID) -> dict[str, str]:
    consumer = ctx.consumer(await _consumer_of(ctx, dead_letter_id))
    try:
        await consumer.replay_dead_letter(dead_letter_id, who.actor)
    except ValueError as exc:
        raise Problem(409, "Conflict", str(exc)) from None
    except Exception as exc:
        raise Problem(422, "Replay failed", f"the event failed again: {type(exc).__name__}: {exc}") from None
    return {"status": "replayed", "id": str(dead_letter_id)}


@router.post("/ops/dead-letters/{dead_letter_id}/discard", summary="Close a dead letter without applying it")
async def discard_dead_letter(ctx: Ctx, who: Operator, dead_letter_id: uuid.UUID) -> dict[str, str]:
    consumer = ctx.consumer(await _consumer_of(ctx, dead_letter_id))
    try:
        await consumer.discard_dead_letter(dead_letter_id, who.actor)
    except LookupError as exc:
        raise Problem(409, "Conflict", str(exc)) from None
    return {"status": "discarded", "id": str(dead_letter_id)}


async def _projection_state(ctx: Ctx, name: str) -> dict[str, Any]:
    """A projection's checkpoint and the digest of its tables, read from one snapshot.

    The checkpoint is saved in the transaction that applies a run, so under REPEATABLE READ the
    position and the digest describe the same state even while the consumer keeps applying.
    """
    consumer = ctx.consumer(name)
    async with ctx.engine.connect() as conn:
        conn = await conn.execution_options(isolation_level="REPEATABLE READ")
        async with conn.begin():
            position = (await conn.execute(select(consumer_checkpoints.c.position).where(
                consumer_checkpoints.c.consumer == consumer.name,
                consumer_checkpoints.c.producer == consumer.producer))).scalar()
            digest, rows = await export_digest(conn, consumer.projection.tables)
    return {"name": name, "producer": consumer.producer, "position": int(position or 0), "rows": rows,
            "sha256": digest}


@router.get("/ops/projections", summary="Projections, their positions and digests")
async def projections(ctx: Ctx, _: Reader) -> list[dict[str, Any]]:
    return [await _projection_state(ctx, name) for name in sorted(ctx.consumers)]


@router.post("/ops/projections/{name}/rebuild", summary="Drop a projection and replay it from the streams")
async def rebuild(ctx: Ctx, _: Operator, name: str) -> dict[str, Any]:
    """The projection's state after the rebuild, and how it read its stream (``reader``: ``process`` — a
    process of its own read and prepared the events beside the runs — or ``in-process``)."""
    consumer = ctx.consumer(name)
    try:
        await consumer.rebuild()
    except BusUnavailable as exc:  # NATS, or the rebuild's reader process, lost half-way
        raise Problem(503, "Service unavailable", f"The rebuild of {name} stopped: {exc}. What it applied is "
                      "kept (derived state owed, never wrong); ask for the rebuild again, which starts over.",
                      headers={"Retry-After": RETRY_AFTER_SECONDS}) from exc
    return {**await _projection_state(ctx, name), "reader": consumer.rebuild_reader}
