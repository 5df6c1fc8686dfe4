"""Score events for partners: webhook subscriptions, their delivery log and redelivery, and a
Server-Sent Events feed of ``ReleasePublished``/``ReleaseRetracted`` resumable from a position
(``Last-Event-ID`` or ``?after=``; each message's ``id`` is the event's store position)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from sipas_events.store import EventStore
from sipas_kit.auth import Role
from sipas_kit.http import Ctx
from sipas_kit.problems import Problem
from sipas_publishing.adapters.tables import deliveries, delivery_log, subscriptions
from sipas_publishing.application import webhooks
from sipas_publishing.application.context import settings
from sipas_publishing.domain.webhooks import PARTNER_EVENTS
from sipas_publishing.entrypoints.edge import NO_NUL, PathId, Reader, reader

router = APIRouter(prefix="/v1", tags=["score events"])
MAX_POSITION = 2**63 - 1  # store positions are BIGINT
WEBHOOK_MANAGERS = (Role.MINISTRY_ADMIN, Role.PARTNER)
"""Who manages webhook subscriptions with a bearer token: the ministry (any subscription) and a partner
(its own); with an API key, the key's ``webhooks:manage`` scope decides (its own subscriptions). Staff
of a province, clerks, enumerators, auditors and services have no use for one (docs/security.md)."""
Manager = Annotated[Reader, Depends(reader("webhooks:manage", WEBHOOK_MANAGERS))]
FeedReader = Annotated[Reader, Depends(reader("feed:read"))]


class NewSubscription(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str = Field(min_length=8, max_length=2000, pattern=NO_NUL)
    event_types: list[Literal["ReleasePublished", "ReleaseRetracted"]] = Field(default_factory=list)


def _iso(row: Any) -> dict[str, Any]:
    return {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in dict(row).items()}


async def _owned(ctx: Ctx, who: Reader, subscription_id: str) -> dict[str, Any]:
    async with ctx.engine.connect() as conn:
        row = (await conn.execute(select(subscriptions).where(
            subscriptions.c.subscription_id == subscription_id))).mappings().first()
    if row is None or (row["owner"] != who.subject and not who.staff):
        raise Problem(404, "Not found", f"no subscription {subscription_id}")
    return dict(row)


@router.post("/webhooks", status_code=201, summary="Subscribe a URL to score events (the secret is shown once)")
async def subscribe(body: NewSubscription, ctx: Ctx, who: Manager) -> dict[str, Any]:
    await webhooks.check_target(body.url, settings(ctx).webhook_allow_private)
    async with ctx.engine.begin() as conn:
        row = await webhooks.subscribe(conn, body.url, body.event_types, who.subject)
    return _iso(row)


@router.get("/webhooks/{subscription_id}/deliveries", summary="A subscription's deliveries and every attempt")
async def delivery_history(subscription_id: PathId, ctx: Ctx, who: Manager) -> dict[str, Any]:
    await _owned(ctx, who, subscription_id)
    async with ctx.engine.connect() as conn:
        found = (await conn.execute(select(deliveries).where(deliveries.c.subscription_id == subscription_id)
                                    .order_by(deliveries.c.created_at))).mappings().all()
        attempts = (await conn.execute(select(delivery_log).where(delivery_log.c.subscription_id == subscription_id)
                                       .order_by(delivery_log.c.attempt_id))).mappings().all()
    return {"deliveries": [{k: v for k, v in _iso(d).items() if k != "body"} for d in found],
            "attempts": [_iso(a) for a in attempts]}


@router.post("/webhooks/{subscription_id}/deliveries/{event_id}/redeliver", status_code=202,
             summary="Send a delivery again (same event id, so the receiver can drop a duplicate)")
async def redeliver(subscription_id: PathId, event_id: PathId, ctx: Ctx, who: Manager) -> dict[str, str]:
    await _owned(ctx, who, subscription_id)
    async with ctx.engine.begin() as conn:
        await webhooks.redeliver(conn, f"{subscription_id}:{event_id}")
    return {"status": "pending"}


@router.get("/feed", summary="Server-Sent Events: ReleasePublished and ReleaseRetracted, resumable",
            response_class=StreamingResponse, responses={200: {"content": {"text/event-stream": {}}}})
async def feed(
    request: Request, ctx: Ctx, who: FeedReader, after: Annotated[int | None, Query(ge=0, le=MAX_POSITION)] = None,
    follow: bool = True, last_event_id: Annotated[str | None, Header()] = None,
) -> StreamingResponse:
    start = after
    if start is None and last_event_id:
        # isdigit() alone admits "²" and other digits int() refuses; a position also fits a BIGINT.
        if not (last_event_id.isascii() and last_event_id.isdigit()) or int(last_event_id) > MAX_POSITION:
            raise Problem(422, "Invalid request", "Last-Event-ID must be a position this feed sent",
                          errors=[{"field": "header.Last-Event-ID", "message": "not a position",
                                   "type": "value_error"}])
        start = int(last_event_id)
    store = EventStore(ctx.service)

    async def stream() -> AsyncIterator[bytes]:
        position = start or 0
        while True:
            async with ctx.engine.connect() as conn:
                rows = await store.read_all(conn, position, 500)
            for row in rows:
                position = row.position
                name = row.type.split(".")[4]
                if name in PARTNER_EVENTS:
                    yield f"id: {row.position}\nevent: {name}\ndata: ".encode() + row.envelope_json() + b"\n\n"
            if len(rows) == 500:
                continue
            if not follow or ctx.stop.is_set() or await request.is_disconnected():
                return
            yield b": keep-alive\n\n"
            await asyncio.sleep(settings(ctx).worker_interval)

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
