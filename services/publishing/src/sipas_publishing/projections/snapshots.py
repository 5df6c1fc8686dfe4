"""What publishing learns from other services: scoring's snapshots and sampling's seed commitments.

A snapshot is the only thing a release can be drafted from; its ``figures_digest`` is what the
fetched figures must hash to. Seed commitments (and, once revealed, seeds) go into the manifest so a
reader can check the sample behind the figures.
"""

from __future__ import annotations

from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from sipas_events.catalogue.sampling import DrawCommitted, SampleDrawn
from sipas_events.catalogue.scoring import ScoreSnapshotTaken
from sipas_events.envelope import Envelope
from sipas_events.projection import Projection
from sipas_publishing.adapters.tables import commitments, snapshots

snapshot_projection = Projection(name="snapshots", producer="scoring", tables=[snapshots])
commitment_projection = Projection(name="commitments", producer="sampling", tables=[commitments])


@snapshot_projection.on("ScoreSnapshotTaken")
async def on_score_snapshot_taken(conn: AsyncConnection, e: ScoreSnapshotTaken, env: Envelope) -> None:
    await conn.execute(insert(snapshots).values(
        snapshot_id=e.snapshot_id, campaign_id=e.campaign_id, province=e.province, taken_at=e.taken_at,
        positions=dict(e.positions), chain_heads=dict(e.chain_heads), figures_digest=e.figures_digest,
        source_position=env.position).on_conflict_do_nothing())


@commitment_projection.on("DrawCommitted")
async def on_draw_committed(conn: AsyncConnection, e: DrawCommitted, env: Envelope) -> None:
    await conn.execute(insert(commitments).values(
        draw_id=e.draw_id, campaign_id=e.campaign_id, province=e.province, frame_digest=e.frame_digest,
        seed_commitment=e.seed_commitment, algorithm_version=e.algorithm_version, seed=None,
        source_position=env.position).on_conflict_do_nothing())


@commitment_projection.on("SampleDrawn")
async def on_sample_drawn(conn: AsyncConnection, e: SampleDrawn, env: Envelope) -> None:
    stmt = insert(commitments).values(
        draw_id=e.draw_id, campaign_id=e.campaign_id, province=e.province, frame_digest=e.frame_digest,
        seed_commitment=e.seed_commitment, algorithm_version=e.algorithm_version, seed=e.seed,
        source_position=env.position)
    await conn.execute(stmt.on_conflict_do_update(index_elements=["draw_id"], set_={
        "seed": stmt.excluded.seed, "source_position": stmt.excluded.source_position},
        where=commitments.c.seed.is_(None)))
