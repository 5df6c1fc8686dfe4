"""Webhooks: subscriptions, a durable delivery outbox, and the worker that empties it.

Deliveries are queued in the transaction that appends the event (so a committed event always has
its deliveries, and a rolled-back one none). The worker takes due deliveries with ``SKIP LOCKED``
(several replicas never send the same one at once), posts the CloudEvent envelope signed with the
subscription's secret, logs every attempt, and on failure schedules the next try with exponential
backoff until ``webhook_max_attempts``, then marks it failed (a person may redeliver it).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import secrets
import socket
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import httpx
import structlog
from prometheus_client import Counter
from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from sipas_events import canonical
from sipas_events.envelope import Envelope
from sipas_events.ids import new_id
from sipas_kit.context import ServiceContext
from sipas_kit.problems import Problem
from sipas_publishing.adapters.tables import deliveries, delivery_log, subscriptions
from sipas_publishing.application.context import settings
from sipas_publishing.domain import webhooks as wh

log = structlog.get_logger(__name__)


async def check_target(url: str, allow_private: bool) -> None:
    """Refuse URLs that are not http(s) or that resolve to a private, loopback or link-local address."""

    def refuse(detail: str, message: str, kind: str = "value_error") -> Problem:
        return Problem(422, "Invalid request", detail, errors=[{"field": "body.url", "message": message, "type": kind}])

    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port  # an unclosed "[" or a port past 65535 raise ValueError
    except ValueError:
        raise refuse("not a URL", "must be an absolute http(s) URL") from None
    if parts.scheme not in ("http", "https") or not host:
        raise refuse("a webhook URL must be http(s)://host/...", "must be an absolute http(s) URL")
    if allow_private:
        return
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port or 443, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError, ValueError):  # no such host; or a name IDNA cannot encode
        raise refuse(f"cannot resolve {host}", "host does not resolve") from None
    bad = wh.forbidden_address(str(info[4][0]) for info in infos)
    if bad is not None:
        raise refuse(f"{parts.hostname} resolves to {bad}, a private or local address",
                     "private, loopback and link-local targets are refused", "ssrf")


async def subscribe(conn: AsyncConnection, url: str, event_types: Sequence[str], owner: str) -> dict[str, Any]:
    row = {"subscription_id": str(new_id()), "url": url, "secret": secrets.token_urlsafe(32),
           "event_types": list(event_types) or list(wh.PARTNER_EVENTS), "owner": owner,
           "created_at": dt.datetime.now(dt.UTC), "active": True}
    await conn.execute(subscriptions.insert().values(**row))
    return row


async def enqueue(conn: AsyncConnection, envelopes: Sequence[Envelope]) -> None:
    """Queue one delivery per (active subscription, partner event) — in the caller's transaction."""
    wanted = [e for e in envelopes if e.event_name in wh.PARTNER_EVENTS]
    if not wanted:
        return
    subs = (await conn.execute(select(subscriptions.c.subscription_id, subscriptions.c.event_types)
                               .where(subscriptions.c.active))).all()
    now = dt.datetime.now(dt.UTC)
    rows = [{"delivery_id": f"{sub.subscription_id}:{env.id}", "subscription_id": sub.subscription_id,
             "event_id": str(env.id), "event_type": env.event_name, "body": canonical.dumps(env.body()),
             "status": "pending", "attempts": 0, "next_attempt_at": now, "created_at": now}
            for env in wanted for sub in subs if env.event_name in sub.event_types]
    if rows:
        await conn.execute(insert(deliveries).values(rows).on_conflict_do_nothing())


async def _attempt(ctx: ServiceContext, client: httpx.AsyncClient, delivery: dict[str, Any],
                   sub: dict[str, Any]) -> tuple[int | None, str | None]:
    s = settings(ctx)
    try:
        await check_target(sub["url"], s.webhook_allow_private)  # again at send time: DNS may have changed
        body = delivery["body"].encode()
        timestamp = int(time.time())
        resp = await client.post(sub["url"], content=body, headers={
            "Content-Type": "application/cloudevents+json", wh.EVENT_ID_HEADER: delivery["event_id"],
            wh.TIMESTAMP_HEADER: str(timestamp), wh.SIGNATURE_HEADER: wh.signature_header(sub["secret"], timestamp,
                                                                                          body)})
        return resp.status_code, None if resp.is_success else f"HTTP {resp.status_code}"
    except Problem as exc:
        return None, exc.detail
    except httpx.HTTPError as exc:
        return None, f"{type(exc).__name__}: {exc}"[:300]


async def deliver_due(ctx: ServiceContext, client: httpx.AsyncClient, batch: int = 50) -> int:
    """Try every due delivery once; returns how many were tried."""
    s = settings(ctx)
    async with ctx.engine.begin() as conn:
        due = (await conn.execute(
            select(deliveries).where(deliveries.c.status == "pending",
                                     deliveries.c.next_attempt_at <= dt.datetime.now(dt.UTC))
            .order_by(deliveries.c.next_attempt_at).limit(batch).with_for_update(skip_locked=True))).mappings().all()
        subs = {r["subscription_id"]: dict(r) for r in (await conn.execute(select(subscriptions).where(
            subscriptions.c.subscription_id.in_({d["subscription_id"] for d in due})))).mappings()}
        results = await asyncio.gather(*(_attempt(ctx, client, dict(d), subs[d["subscription_id"]]) for d in due))
        now = dt.datetime.now(dt.UTC)
        for d, (code, error) in zip(due, results, strict=True):
            attempts = d["attempts"] + 1
            await conn.execute(delivery_log.insert().values(
                delivery_id=d["delivery_id"], subscription_id=d["subscription_id"], attempted_at=now,
                status_code=code, error=error))
            if error is None:
                values: dict[str, Any] = {"status": "delivered", "delivered_at": now}
                outcome = "delivered"
            elif attempts >= s.webhook_max_attempts:
                values, outcome = {"status": "failed"}, "failed"
            else:
                delay = wh.backoff(attempts, s.webhook_backoff, s.webhook_backoff_max)
                values, outcome = {"next_attempt_at": now + dt.timedelta(seconds=delay)}, "retry"
            webhook_attempts(ctx.metrics).labels(subs[d["subscription_id"]]["owner"], outcome).inc()
            await conn.execute(update(deliveries).where(deliveries.c.delivery_id == d["delivery_id"])
                               .values(attempts=attempts, **values))
    return len(due)


def webhook_attempts(metrics: Any) -> Counter:
    """``sipas_publishing_webhook_attempts_total{partner, outcome}``: delivered, retry (will try again) or
    failed (gave up; a person may redeliver). Partners are few, so the label stays small."""
    counter = getattr(metrics, "webhook_attempts", None)
    if counter is None:
        counter = Counter("sipas_publishing_webhook_attempts_total", "Webhook delivery attempts by partner and outcome",
                          ["partner", "outcome"], registry=metrics.registry)
        metrics.webhook_attempts = counter
    return counter


async def redeliver(conn: AsyncConnection, delivery_id: str) -> None:
    found = await conn.execute(update(deliveries).where(deliveries.c.delivery_id == delivery_id).values(
        status="pending", next_attempt_at=dt.datetime.now(dt.UTC)).returning(deliveries.c.delivery_id))
    if found.first() is None:
        raise Problem(404, "Not found", f"no delivery {delivery_id}")


async def publishing_worker(ctx: ServiceContext) -> None:
    """Publish releases whose embargo ended, and send due webhook deliveries, every ``worker_interval``."""
    from sipas_publishing.application.releases import publish_due

    s = settings(ctx)
    webhook_attempts(ctx.metrics)  # declared at start, so /metrics names it before the first delivery
    async with httpx.AsyncClient(timeout=s.webhook_timeout, follow_redirects=False) as client:
        while not ctx.stop.is_set():
            for step in (lambda: publish_due(ctx), lambda: deliver_due(ctx, client)):
                try:
                    await step()
                except Exception as exc:  # one failing step never stops the loop
                    log.warning("publishing.worker_error", error=repr(exc)[:300])
            try:
                await asyncio.wait_for(ctx.stop.wait(), s.worker_interval)
            except TimeoutError:
                pass
