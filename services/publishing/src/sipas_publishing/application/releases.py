"""Release commands: load the row, decide with the domain, write the row and append the event in
one transaction (the relay publishes it; webhook deliveries are queued in the same transaction).

Publishing builds the manifest from the figures stored at drafting (already checked against the
snapshot's digest), signs it and freezes the row: from then on the database itself refuses any
change but a retraction.

Drafting also records every service's audit-chain head (publishing's own from its database, the
others' from ``GET /v1/audit/head``), signed into the manifest at publication. At drafting rather than
publication: a person is there to see a 503 and draft again when a service does not answer (the
embargo worker publishes unattended, often at night), the approver sees the heads they approve, and
the trail's later rows (submit, approve, publish) are covered by the next release's heads — a chain
only grows, so a head at N vouches for every row up to N.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from sipas_events.catalogue.base import Event
from sipas_events.catalogue.publishing import (
    ReleaseApproved,
    ReleaseDrafted,
    ReleasePublished,
    ReleaseRetracted,
    ReleaseScheduled,
    ReleaseSubmitted,
)
from sipas_events.ids import new_id
from sipas_events.store import Metadata
from sipas_kit import audit
from sipas_kit.context import ServiceContext
from sipas_kit.problems import Problem
from sipas_publishing.adapters.scoring import verified_figures
from sipas_publishing.adapters.tables import commitments, releases, snapshots
from sipas_publishing.application.context import audit_heads, scoring_source, settings, signing_key
from sipas_publishing.application.webhooks import enqueue
from sipas_publishing.domain import comparison as yoy
from sipas_publishing.domain import manifest as mf
from sipas_publishing.domain import releases as rel
from sipas_publishing.domain.errors import ReleaseConflict


def state(row: Mapping[str, Any]) -> rel.Release:
    return rel.Release(row["release_id"], row["status"], row["drafted_by"], row["submitted_by"], row["approved_by"],
                       row["embargo_until"])


async def load(conn: AsyncConnection, release_id: str, lock: bool = True) -> dict[str, Any]:
    stmt = select(releases).where(releases.c.release_id == release_id)
    row = (await conn.execute(stmt.with_for_update() if lock else stmt)).mappings().first()
    if row is None:
        raise Problem(404, "Not found", f"no release {release_id}")
    return dict(row)


async def _append(ctx: ServiceContext, conn: AsyncConnection, row: Mapping[str, Any], event: Event,
                  meta: Metadata, version: int) -> None:
    envelopes = await ctx.store.append(conn, f"release-{row['release_id']}", [event],
                                       expected_version=version - 1, meta=meta)
    await enqueue(conn, envelopes)


async def _write(conn: AsyncConnection, row: Mapping[str, Any], **values: Any) -> int:
    version = int(row["version"]) + 1
    await conn.execute(update(releases).where(releases.c.release_id == row["release_id"])
                       .values(version=version, **values))
    return version


async def _comparison(ctx: ServiceContext, campaign_id: str, province: str | None, document: dict[str, Any],
                      against: str) -> dict[str, Any]:
    """Scoring's year-on-year comparison with ``against``, cut to what this release shows."""
    def refuse(status: int, detail: str, message: str) -> Problem:
        return Problem(status, "Not found" if status == 404 else "Invalid request", detail,
                       errors=[{"field": "body.compare_with", "message": message, "type": "value_error"}])

    if against == campaign_id:
        raise refuse(422, "a release compares with an earlier campaign, not with its own", "same campaign")
    found = await scoring_source(ctx).comparison(campaign_id, against)
    if found is None:
        raise refuse(404, f"scoring knows no campaign {against} to compare with", "unknown campaign")
    return yoy.for_release(found, document, province)


async def _audit_heads(ctx: ServiceContext, conn: AsyncConnection) -> dict[str, dict[str, Any]]:
    """Every service's audit-chain head now: ``{service: {"position", "head"}}`` (503 if one cannot be read)."""
    source = audit_heads(ctx)
    position, head = await audit.head(conn)
    peers = await asyncio.gather(*(source.head(s) for s in source.services))
    heads = {ctx.service: {"position": position, "head": head.hex()}} | dict(zip(source.services, peers, strict=True))
    return dict(sorted(heads.items()))


async def draft(ctx: ServiceContext, conn: AsyncConnection, snapshot_id: str, title: str | None,
                supersedes: str | None, meta: Metadata, compare_with: str | None = None) -> dict[str, Any]:
    snap = (await conn.execute(select(snapshots).where(snapshots.c.snapshot_id == snapshot_id))).mappings().first()
    if snap is None:
        raise Problem(404, "Not found", f"no snapshot {snapshot_id} known to publishing (yet)",
                      errors=[{"field": "body.snapshot_id", "message": "unknown snapshot", "type": "not_found"}])
    if supersedes is not None:
        old = await load(conn, supersedes)
        rel.supersede(state(old))
        if old["campaign_id"] != snap["campaign_id"]:
            raise ReleaseConflict(f"release {supersedes} is of campaign {old['campaign_id']}, not "
                                  f"{snap['campaign_id']}")
    document = await verified_figures(scoring_source(ctx), snapshot_id, snap["figures_digest"])
    comparison = None if compare_with is None else await _comparison(
        ctx, snap["campaign_id"], snap["province"], document, compare_with)
    heads = await _audit_heads(ctx, conn)
    release_id, now = str(new_id()), dt.datetime.now(dt.UTC)
    row = {"release_id": release_id, "campaign_id": snap["campaign_id"], "province": snap["province"],
           "snapshot_id": snapshot_id, "status": rel.DRAFT, "version": 1,
           "title": title or f"SIPAS {document.get('year', '')} — {snap['campaign_id']}".strip(),
           "supersedes": supersedes, "drafted_by": meta.actor, "drafted_at": now,
           "figures_digest": snap["figures_digest"], "document": document, "compare_with": compare_with,
           "comparison": comparison, "audit_heads": heads}
    await conn.execute(releases.insert().values(**row))
    await _append(ctx, conn, row, ReleaseDrafted(
        release_id=release_id, snapshot_id=snapshot_id, campaign_id=snap["campaign_id"], province=snap["province"],
        figures_digest=snap["figures_digest"], drafted_by=meta.actor, supersedes=supersedes), meta, 1)
    return row


async def submit(ctx: ServiceContext, conn: AsyncConnection, release_id: str, meta: Metadata) -> dict[str, Any]:
    row = await load(conn, release_id)
    after = rel.submit(state(row), meta.actor)
    version = await _write(conn, row, status=after.status, submitted_by=meta.actor)
    await _append(ctx, conn, row, ReleaseSubmitted(release_id=release_id, campaign_id=row["campaign_id"],
                                                   province=row["province"], submitted_by=meta.actor), meta, version)
    return await load(conn, release_id)


async def approve(ctx: ServiceContext, conn: AsyncConnection, release_id: str, meta: Metadata) -> dict[str, Any]:
    row = await load(conn, release_id)
    after = rel.approve(state(row), meta.actor)
    version = await _write(conn, row, status=after.status, approved_by=meta.actor)
    await _append(ctx, conn, row, ReleaseApproved(
        release_id=release_id, snapshot_id=row["snapshot_id"], campaign_id=row["campaign_id"],
        province=row["province"], approved_by=meta.actor), meta, version)
    return await load(conn, release_id)


async def publish(ctx: ServiceContext, conn: AsyncConnection, release_id: str, at: dt.datetime | None,
                  meta: Metadata) -> dict[str, Any]:
    """Publish now, or schedule for ``at`` (the embargo worker publishes it when due)."""
    row = await load(conn, release_id)
    now = dt.datetime.now(dt.UTC)
    if at is not None and at > now:
        after = rel.schedule(state(row), at, now)
        version = await _write(conn, row, status=after.status, embargo_until=at, published_by=meta.actor)
        await _append(ctx, conn, row, ReleaseScheduled(
            release_id=release_id, campaign_id=row["campaign_id"], province=row["province"], embargo_until=at,
            scheduled_by=meta.actor), meta, version)
        return await load(conn, release_id)
    rel.publish(state(row), now)
    return await _freeze(ctx, conn, row, meta.actor, now, meta)


async def _freeze(ctx: ServiceContext, conn: AsyncConnection, row: dict[str, Any], actor: str, now: dt.datetime,
                  meta: Metadata) -> dict[str, Any]:
    snap = (await conn.execute(select(snapshots).where(snapshots.c.snapshot_id == row["snapshot_id"]))).mappings().one()
    document = row["document"]
    if mf.figures_digest(document) != snap["figures_digest"]:  # the stored copy is checked again, not trusted
        raise ReleaseConflict(f"release {row['release_id']}'s stored figures no longer match the snapshot's digest")
    seeds = (await conn.execute(select(commitments).where(commitments.c.campaign_id == row["campaign_id"])
                                .order_by(commitments.c.draw_id))).mappings().all()
    release = {"release_id": row["release_id"], "campaign_id": row["campaign_id"], "province": row["province"],
               "title": row["title"], "supersedes": row["supersedes"], "drafted_by": row["drafted_by"],
               "approved_by": row["approved_by"], "published_by": actor, "published_at": now,
               "embargo_until": row["embargo_until"]}
    snapshot = {"snapshot_id": snap["snapshot_id"], "taken_at": snap["taken_at"], "positions": snap["positions"],
                "chain_heads": snap["chain_heads"], "figures_digest": snap["figures_digest"]}
    commitments_ = [{k: s[k] for k in ("draw_id", "frame_digest", "seed_commitment", "algorithm_version", "seed")}
                    for s in seeds]
    manifest = mf.build(release, snapshot, commitments_, document, row.get("comparison"), row.get("audit_heads"))
    body = mf.manifest_bytes(manifest)
    key = signing_key(ctx)
    sha, signature = hashlib.sha256(body).hexdigest(), key.sign(body)
    version = await _write(conn, row, status=rel.PUBLISHED, published_by=actor, published_at=now,
                           manifest=json.loads(body), manifest_sha256=sha, signature=signature,
                           key_id=key.key_id)
    url = f"{settings(ctx).public_base_url.rstrip('/')}/v1/releases/{row['release_id']}/manifest"
    await _append(ctx, conn, row, ReleasePublished(
        release_id=row["release_id"], campaign_id=row["campaign_id"], province=row["province"],
        manifest_sha256=sha, signature=signature, url=url, supersedes=row["supersedes"]), meta, version)
    return await load(conn, row["release_id"])


async def retract(ctx: ServiceContext, conn: AsyncConnection, release_id: str, reason: str,
                  meta: Metadata) -> dict[str, Any]:
    row = await load(conn, release_id)
    after = rel.retract(state(row))
    version = await _write(conn, row, status=after.status, retraction={
        "reason": reason, "by": meta.actor, "at": dt.datetime.now(dt.UTC).isoformat()})
    await _append(ctx, conn, row, ReleaseRetracted(release_id=release_id, campaign_id=row["campaign_id"],
                                                   province=row["province"], reason=reason), meta, version)
    return await load(conn, release_id)


async def publish_due(ctx: ServiceContext) -> int:
    """Publish every scheduled release whose embargo has ended; returns how many."""
    now = dt.datetime.now(dt.UTC)
    async with ctx.engine.begin() as conn:
        due = list((await conn.execute(
            select(releases.c.release_id).where(releases.c.status == rel.SCHEDULED, releases.c.embargo_until <= now)
            .with_for_update(skip_locked=True))).scalars())
        for release_id in due:
            row = await load(conn, release_id)
            rel.publish(state(row), now)
            await _freeze(ctx, conn, row, row["published_by"] or "service:publishing", now, Metadata(
                correlation_id=f"embargo-{release_id}", actor="service:publishing"))
    return len(due)
