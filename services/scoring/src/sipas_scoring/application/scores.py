"""Keeping figures current, and freezing them.

The figures worker wakes every ``scores_interval`` seconds, takes the campaigns whose tallies or
weights changed (``sc_dirty``), computes each one's document in a REPEATABLE READ snapshot together
with the consumers' checkpoints it reflects, and in one transaction stores it and appends
``ScoresUpdated`` (provisional) — so a campaign's event is emitted at most once per interval, and
only when its figures' digest actually changed. The dirty mark is cleared only if no event touched
the campaign meanwhile (``marks`` unchanged); otherwise the next tick computes again.

A snapshot freezes the figures at the positions they cover, with each producer's hash-chain head
at that position (asked from the producer when peers are configured), and appends
``ScoreSnapshotTaken``. Snapshots are immutable; publishing releases them.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from typing import Any

import structlog
from prometheus_client import Histogram
from sqlalchemy import delete, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from sipas_events.catalogue.scoring import ScoreSnapshotTaken, ScoresUpdated
from sipas_events.ids import new_id
from sipas_events.schema import consumer_checkpoints
from sipas_events.store import Metadata
from sipas_kit.context import ServiceContext
from sipas_scoring.adapters.tables import dirty, figures, snapshots
from sipas_scoring.application.definitions import definitions
from sipas_scoring.application.figures import figures_of, use_runner
from sipas_scoring.application.figures_engine import ProcessRunner

log = structlog.get_logger(__name__)
SERVICE_ACTOR = "service:scoring"


def _freshness(ctx: ServiceContext) -> Histogram:
    found = getattr(ctx.metrics, "scores_freshness", None)
    if found is None:
        found = Histogram("sipas_scoring_freshness_seconds",
                          "From the oldest event not yet reflected to the figures that reflect it",
                          buckets=(0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 30, 60), registry=ctx.metrics.registry)
        ctx.metrics.scores_freshness = found  # type: ignore[attr-defined]
    return found


async def positions(conn: AsyncConnection, ctx: ServiceContext) -> dict[str, int]:
    """Producer → the last store position this service's consumers applied (as of ``conn``'s snapshot)."""
    names = {c.name: c.producer for c in ctx.consumers.values()}
    rows = await conn.execute(select(consumer_checkpoints.c.consumer, consumer_checkpoints.c.position)
                              .where(consumer_checkpoints.c.consumer.in_(list(names))))
    found = {names[r.consumer]: int(r.position) for r in rows}
    return {producer: found.get(producer, 0) for producer in sorted(set(names.values()))}


async def computed(ctx: ServiceContext, campaign_id: str) -> tuple[dict[str, Any], dict[str, int], str]:
    """The campaign's figures now, the positions they reflect (one consistent snapshot), and their digest."""
    async with ctx.engine.connect() as conn:
        conn = await conn.execution_options(isolation_level="REPEATABLE READ")
        async with conn.begin():
            basis = await definitions.basis(conn, campaign_id)
            at = await positions(conn, ctx)
            document, figures_digest = await figures_of(conn, basis, at)
    return document, at, figures_digest


async def refresh(ctx: ServiceContext, campaign_id: str) -> dict[str, Any]:
    """Recompute one campaign's figures; store them and emit ``ScoresUpdated`` if they changed."""
    started = dt.datetime.now(dt.UTC)
    async with ctx.engine.connect() as conn:
        mark = (await conn.execute(select(dirty).where(dirty.c.campaign_id == campaign_id))).mappings().first()
    document, at, figures_digest = await computed(ctx, campaign_id)
    now = dt.datetime.now(dt.UTC)
    async with ctx.engine.begin() as conn:
        previous = (await conn.execute(select(figures.c.digest).where(figures.c.campaign_id == campaign_id))).scalar()
        stmt = insert(figures).values(campaign_id=campaign_id, computed_at=now, positions=at, digest=figures_digest,
                                      document=document)
        await conn.execute(stmt.on_conflict_do_update(index_elements=["campaign_id"], set_={
            c: stmt.excluded[c] for c in ("computed_at", "positions", "digest", "document")}))
        if previous != figures_digest:
            await ctx.store.append(conn, f"scores-{campaign_id}", [ScoresUpdated(
                campaign_id=campaign_id, province=_province(document), positions=at, figures_digest=figures_digest,
                changed_unit_ids=sorted(mark["agency_ids"]) if mark else [],
            )], expected_version=None, meta=Metadata(correlation_id=f"scores-{campaign_id}", actor=SERVICE_ACTOR))
        if mark is not None:
            await conn.execute(delete(dirty).where(dirty.c.campaign_id == campaign_id, dirty.c.marks == mark["marks"]))
            # Marked again meanwhile: everything marked before ``started`` is reflected now, so staleness of
            # what is left counts from ``started`` (not from the first event of a busy day). An event applied
            # after ``started`` but stamped earlier (a lagging consumer) is then counted from ``started``.
            await conn.execute(update(dirty).where(dirty.c.campaign_id == campaign_id, dirty.c.marks != mark["marks"],
                                                   dirty.c.since < started).values(since=started))
    if mark is not None:
        _freshness(ctx).observe(max(0.0, (dt.datetime.now(dt.UTC) - mark["since"]).total_seconds()))
    return {"positions": at, "digest": figures_digest, "computed_at": now.isoformat(), "document": document}


def _province(document: dict[str, Any]) -> str | None:
    provinces = {row["id"] for row in document["units"] if row["level"] == "province"}
    return next(iter(provinces)) if len(provinces) == 1 and "--" not in provinces else None


async def latest(ctx: ServiceContext, campaign_id: str) -> dict[str, Any]:
    """The stored figures, computed now if the campaign never had any or is stale."""
    async with ctx.engine.connect() as conn:
        stale = (await conn.execute(select(dirty.c.campaign_id).where(dirty.c.campaign_id == campaign_id))).first()
        row = (await conn.execute(select(figures).where(figures.c.campaign_id == campaign_id))).mappings().first()
    if row is None or stale is not None:
        return await refresh(ctx, campaign_id)
    return {"positions": row["positions"], "digest": row["digest"], "computed_at": row["computed_at"].isoformat(),
            "document": row["document"]}


async def figures_worker(ctx: ServiceContext) -> None:
    """Every ``scores_interval`` seconds, refresh the campaigns marked dirty (one worker per database:
    a transaction-level advisory lock keeps a second replica from computing the same campaign).

    While it runs, documents are computed in one spawned process that keeps each campaign's measured
    ballots between refreshes (:class:`ProcessRunner`): the CPU-bound computation never holds the
    interpreter the consumers apply events with. It stops with the worker."""
    interval = float(getattr(ctx.settings, "scores_interval", 2.0))
    process = ProcessRunner() if getattr(ctx.settings, "figures_process", True) else None
    if process is not None:
        try:
            await process.start()
            use_runner(process)
        except Exception as exc:  # no process to be had: compute in this one, as before
            log.warning("scores.figures_process_unavailable", error=repr(exc)[:300])
            await process.close()
            process = None
    try:
        await _work(ctx, interval)
    finally:
        if process is not None:
            use_runner(None)
            await process.close()


async def _work(ctx: ServiceContext, interval: float) -> None:
    while not ctx.stop.is_set():
        started = time.monotonic()
        try:
            async with ctx.engine.connect() as conn:
                campaigns = list((await conn.execute(select(dirty.c.campaign_id).order_by(dirty.c.since))).scalars())
            for campaign_id in campaigns:
                try:
                    await refresh(ctx, campaign_id)
                except Exception as exc:  # one campaign's trouble never stops the others
                    log.warning("scores.refresh_failed", campaign_id=campaign_id, error=repr(exc)[:300])
        except Exception as exc:
            log.warning("scores.worker_error", error=repr(exc)[:300])
        wait = max(0.05, interval - (time.monotonic() - started))
        try:
            await asyncio.wait_for(ctx.stop.wait(), wait)
        except TimeoutError:
            pass


async def snapshot(ctx: ServiceContext, campaign_id: str, actor: str, correlation_id: str) -> dict[str, Any]:
    """Freeze the campaign's figures with the positions and chain heads they cover."""
    document, at, figures_digest = await computed(ctx, campaign_id)
    heads: dict[str, str] = {}
    if ctx.replay is not None:
        for producer, position in at.items():
            try:
                heads[producer] = await ctx.replay.chain(producer, position)
            except Exception as exc:  # a peer not configured or down: the snapshot says so
                log.warning("scores.chain_head_unavailable", producer=producer, error=repr(exc)[:200])
    snapshot_id, now = str(new_id()), dt.datetime.now(dt.UTC)
    async with ctx.engine.begin() as conn:
        await conn.execute(insert(snapshots).values(
            snapshot_id=snapshot_id, campaign_id=campaign_id, taken_at=now, taken_by=actor, positions=at,
            chain_heads=heads, digest=figures_digest, document=document))
        await ctx.store.append(conn, f"snapshot-{snapshot_id}", [ScoreSnapshotTaken(
            snapshot_id=snapshot_id, campaign_id=campaign_id, province=_province(document), taken_at=now,
            positions=at, chain_heads=heads, figures_digest=figures_digest,
        )], expected_version=0, meta=Metadata(correlation_id=correlation_id, actor=actor))
    return {"snapshot_id": snapshot_id, "campaign_id": campaign_id, "taken_at": now.isoformat(), "taken_by": actor,
            "positions": at, "chain_heads": heads, "digest": figures_digest, "document": document}
