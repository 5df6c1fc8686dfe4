"""Keeping figures current, and freezing them.

The figures worker wakes every ``scores_interval`` seconds (default 0.5; at once when a pass took longer,
so a busy campaign's refreshes follow each other without a pause), takes the campaigns whose tallies or
weights changed (``sc_dirty``), computes each one's document in a REPEATABLE READ snapshot together with the
consumers' checkpoints it reflects, and stores it: the figures the API serves are that fresh. The dirty
mark is cleared only if no event touched the campaign meanwhile (``marks`` unchanged); otherwise the next
tick computes again. A campaign's figures are stored while its next ones are computed (the figures process
computes, the service stores), one store at a time, in order.

Announcing is paced separately: ``ScoresUpdated`` (provisional) is appended in the same transaction as
the figures when their digest differs from the last one announced and the campaign's last announcement is
at least ``scores_event_interval`` seconds old (default 2) — so partners get at most one event per
campaign per interval, whatever the refresh rate. A change not announced yet stays owed
(``sc_figures.announced_digest`` differs from ``digest``; the units it changed wait in ``pending_units``)
and the worker announces it once the interval has passed, even if nothing else changes: the last state is
always announced.

A snapshot freezes the figures at the positions they cover, with each producer's hash-chain head
at that position (asked from the producer when peers are configured), and appends
``ScoreSnapshotTaken``. Snapshots are immutable; publishing releases them.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from dataclasses import dataclass
from typing import Any

import structlog
from prometheus_client import Histogram
from sqlalchemy import Text, cast, delete, literal, select, update
from sqlalchemy.dialects.postgresql import JSON, insert
from sqlalchemy.ext.asyncio import AsyncConnection

from sipas_events.catalogue.scoring import ScoreSnapshotTaken, ScoresUpdated
from sipas_events.ids import new_id
from sipas_events.schema import consumer_checkpoints
from sipas_events.store import Metadata
from sipas_kit.context import ServiceContext
from sipas_scoring.adapters.tables import dirty, figures, snapshots
from sipas_scoring.application.definitions import definitions
from sipas_scoring.application.figures import Figures, figures_of, province_of, use_runner
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


async def computed(ctx: ServiceContext, campaign_id: str) -> tuple[Figures, dict[str, int]]:
    """The campaign's figures now and the positions they reflect (one consistent snapshot)."""
    async with ctx.engine.connect() as conn:
        conn = await conn.execution_options(isolation_level="REPEATABLE READ")
        async with conn.begin():
            basis = await definitions.basis(conn, campaign_id)
            at = await positions(conn, ctx)
            found = await figures_of(conn, basis, at)
    return found, at


def _stored(text: str) -> Any:
    """A document's canonical JSON text as the ``json`` value stored: the server checks it is JSON and keeps
    the text as it is (its SHA-256 is the digest); nothing re-encodes it."""
    return cast(literal(text, Text), JSON)


def _event_interval(ctx: ServiceContext) -> dt.timedelta:
    return dt.timedelta(seconds=float(getattr(ctx.settings, "scores_event_interval", 2.0)))


@dataclass
class Computed:
    """A campaign's figures computed and not stored yet (:func:`compute`, then :func:`store`)."""

    campaign_id: str
    started: dt.datetime
    mark: Any
    """The campaign's dirty mark (a row mapping) as it was before the figures were computed (None: not marked)."""
    found: Figures
    at: dict[str, int]


async def compute(ctx: ServiceContext, campaign_id: str) -> Computed:
    """The first half of :func:`refresh`: the dirty mark, then the figures and the positions they reflect."""
    started = dt.datetime.now(dt.UTC)
    async with ctx.engine.connect() as conn:
        mark = (await conn.execute(select(dirty).where(dirty.c.campaign_id == campaign_id))).mappings().first()
    found, at = await computed(ctx, campaign_id)
    return Computed(campaign_id, started, mark, found, at)


async def refresh(ctx: ServiceContext, campaign_id: str, *, document: bool = True) -> dict[str, Any]:
    """Recompute one campaign's figures and store them; announce them (``ScoresUpdated``) if they changed and
    the campaign's last announcement is old enough (see the module's docstring). Returns the positions,
    digest and time, and the document unless ``document`` is false (the worker never reads it)."""
    done = await compute(ctx, campaign_id)
    result = await store(ctx, done)
    return result | ({"document": done.found.document} if document else {})


async def store(ctx: ServiceContext, done: Computed) -> dict[str, Any]:
    """The second half of :func:`refresh`: store the figures (unless figures reflecting more are stored
    already), announce them when due, and clear the dirty mark if no event touched the campaign meanwhile."""
    campaign_id, mark, found, at, started = done.campaign_id, done.mark, done.found, done.at, done.started
    figures_digest, now = found.digest, dt.datetime.now(dt.UTC)
    result = {"positions": at, "digest": figures_digest, "computed_at": now.isoformat()}
    async with ctx.engine.begin() as conn:
        f = figures.c
        before = (await conn.execute(select(f.positions, f.announced_digest, f.announced_at, f.pending_units)
                                     .where(f.campaign_id == campaign_id).with_for_update())).mappings().first()
        if before is not None and any(int(v) > at.get(p, 0) for p, v in before["positions"].items()):
            # Another replica stored figures reflecting more meanwhile: they stand (and cover the mark).
            return result
        pending = sorted({*(before["pending_units"] if before else []), *(mark["agency_ids"] if mark else [])})
        stmt = insert(figures).values(campaign_id=campaign_id, computed_at=now, positions=at, digest=figures_digest,
                                      document=_stored(found.text), pending_units=pending)
        await conn.execute(stmt.on_conflict_do_update(index_elements=["campaign_id"], set_={
            c: stmt.excluded[c] for c in ("computed_at", "positions", "digest", "document", "pending_units")}))
        announced = before["announced_digest"] if before else None
        if announced == figures_digest:
            await conn.execute(update(figures).where(f.campaign_id == campaign_id).values(pending_units=[]))
        elif before is None or before["announced_at"] is None or now - before["announced_at"] >= _event_interval(ctx):
            await _announce(ctx, conn, campaign_id, at, figures_digest, found.province, pending, now)
        if mark is not None:
            await conn.execute(delete(dirty).where(dirty.c.campaign_id == campaign_id, dirty.c.marks == mark["marks"]))
            # Marked again meanwhile: everything marked before ``started`` is reflected now, so staleness of
            # what is left counts from ``started`` (not from the first event of a busy day). An event applied
            # after ``started`` but stamped earlier (a lagging consumer) is then counted from ``started``.
            await conn.execute(update(dirty).where(dirty.c.campaign_id == campaign_id, dirty.c.marks != mark["marks"],
                                                   dirty.c.since < started).values(since=started))
    if mark is not None:
        _freshness(ctx).observe(max(0.0, (dt.datetime.now(dt.UTC) - mark["since"]).total_seconds()))
    return result


async def _announce(ctx: ServiceContext, conn: AsyncConnection, campaign_id: str, at: dict[str, int],
                    figures_digest: str, province: str | None, units: list[str], now: dt.datetime) -> None:
    await ctx.store.append(conn, f"scores-{campaign_id}", [ScoresUpdated(
        campaign_id=campaign_id, province=province, positions=at, figures_digest=figures_digest,
        changed_unit_ids=units,
    )], expected_version=None, meta=Metadata(correlation_id=f"scores-{campaign_id}", actor=SERVICE_ACTOR))
    await conn.execute(update(figures).where(figures.c.campaign_id == campaign_id).values(
        announced_digest=figures_digest, announced_at=now, pending_units=[]))


async def announce_owed(ctx: ServiceContext, campaign_id: str) -> bool:
    """Announce the stored figures of a campaign whose last change is not announced yet, once its interval
    has passed (the worker calls this for campaigns with nothing left to compute). True if it announced."""
    now = dt.datetime.now(dt.UTC)
    async with ctx.engine.begin() as conn:
        f = figures.c
        row = (await conn.execute(select(f.positions, f.digest, f.announced_digest, f.announced_at, f.pending_units,
                                         f.document["units"].label("units"))
                                  .where(f.campaign_id == campaign_id).with_for_update())).mappings().first()
        if row is None or row["digest"] == row["announced_digest"]:
            return False
        if row["announced_at"] is not None and now - row["announced_at"] < _event_interval(ctx):
            return False
        await _announce(ctx, conn, campaign_id, dict(row["positions"]), row["digest"],
                        province_of({"units": row["units"]}), list(row["pending_units"]), now)
    return True


async def owed(conn: AsyncConnection, ctx: ServiceContext) -> list[str]:
    """Campaigns whose stored figures are not announced yet and whose interval has passed."""
    f = figures.c
    due = dt.datetime.now(dt.UTC) - _event_interval(ctx)
    return list((await conn.execute(select(f.campaign_id).where(
        f.announced_digest.is_distinct_from(f.digest),
        (f.announced_at.is_(None)) | (f.announced_at <= due)).order_by(f.campaign_id))).scalars())


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
    """Every ``scores_interval`` seconds, refresh the campaigns marked dirty and announce the changes owed.
    Replicas may compute the same campaign at once: each stores and announces under a lock of the campaign's
    figures row, and never replaces figures with ones that reflect less.

    While it runs, documents are computed in one spawned process that keeps each campaign's measured
    ballots between refreshes (:class:`ProcessRunner`): the CPU-bound computation never holds the
    interpreter the consumers apply events with. It stops with the worker."""
    interval = float(getattr(ctx.settings, "scores_interval", 0.5))
    process = ProcessRunner() if getattr(ctx.settings, "figures_process", True) else None
    starting = None
    if process is not None:  # started beside the first passes: a refresh meanwhile waits for it
        use_runner(process)
        starting = asyncio.create_task(_start(ctx, process))
    try:
        await _work(ctx, interval)
    finally:
        if process is not None and starting is not None:
            use_runner(None)
            await process.close()  # at once, even while it still imports the figures
            await asyncio.gather(starting, return_exceptions=True)
            await process.close()  # one the start made after that (the worker stopped before it began) goes too


async def _start(ctx: ServiceContext, process: ProcessRunner) -> None:
    """Start the figures process (it imports the figures: seconds on a small machine, which a service stopped
    meanwhile no longer waits for). Without a process to be had, documents are computed in this one."""
    try:
        await process.start()
    except Exception as exc:
        if not ctx.stop.is_set():
            log.warning("scores.figures_process_unavailable", error=repr(exc)[:300])
            use_runner(None)
            await process.close()


async def _work(ctx: ServiceContext, interval: float) -> None:
    """The worker's passes. A campaign's figures are stored while its next figures are computed: the store (a
    national document is a few MB) runs beside the figures process's computation, not after it, so a busy
    campaign's refreshes follow each other a store sooner. A campaign's stores run one at a time, in the
    order computed; a campaign's owed announcement waits for its store."""
    storing: dict[str, asyncio.Task[None]] = {}
    try:
        while not ctx.stop.is_set():
            started = time.monotonic()
            try:
                async with ctx.engine.connect() as conn:
                    campaigns = list((await conn.execute(
                        select(dirty.c.campaign_id).order_by(dirty.c.since))).scalars())
                    announcing = [c for c in await owed(conn, ctx) if c not in campaigns]
                for campaign_id in campaigns:
                    try:
                        done = await compute(ctx, campaign_id)
                    except Exception as exc:  # one campaign's trouble never stops the others
                        log.warning("scores.refresh_failed", campaign_id=campaign_id, error=repr(exc)[:300])
                        continue
                    await _stored_before(storing, campaign_id)
                    storing[campaign_id] = asyncio.create_task(_store_logged(ctx, done))
                for campaign_id in announcing:
                    await _stored_before(storing, campaign_id)
                    try:
                        await announce_owed(ctx, campaign_id)
                    except Exception as exc:
                        log.warning("scores.announce_failed", campaign_id=campaign_id, error=repr(exc)[:300])
            except Exception as exc:
                log.warning("scores.worker_error", error=repr(exc)[:300])
            wait = max(0.0, interval - (time.monotonic() - started))
            try:
                await asyncio.wait_for(ctx.stop.wait(), wait)
            except TimeoutError:
                pass
    finally:
        for task in list(storing.values()):
            await asyncio.shield(task)  # figures computed are stored before the worker stops


async def _stored_before(storing: dict[str, asyncio.Task[None]], campaign_id: str) -> None:
    task = storing.pop(campaign_id, None)
    if task is not None:
        await task


async def _store_logged(ctx: ServiceContext, done: Computed) -> None:
    try:
        await store(ctx, done)
    except Exception as exc:  # the next refresh stores newer figures
        log.warning("scores.refresh_failed", campaign_id=done.campaign_id, error=repr(exc)[:300])


async def snapshot(ctx: ServiceContext, campaign_id: str, actor: str, correlation_id: str) -> dict[str, Any]:
    """Freeze the campaign's figures with the positions and chain heads they cover."""
    found, at = await computed(ctx, campaign_id)
    figures_digest = found.digest
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
            chain_heads=heads, digest=figures_digest, document=_stored(found.text)))
        await ctx.store.append(conn, f"snapshot-{snapshot_id}", [ScoreSnapshotTaken(
            snapshot_id=snapshot_id, campaign_id=campaign_id, province=found.province, taken_at=now,
            positions=at, chain_heads=heads, figures_digest=figures_digest,
        )], expected_version=0, meta=Metadata(correlation_id=correlation_id, actor=actor))
    return {"snapshot_id": snapshot_id, "campaign_id": campaign_id, "taken_at": now.isoformat(), "taken_by": actor,
            "positions": at, "chain_heads": heads, "digest": figures_digest, "document": found.document}
