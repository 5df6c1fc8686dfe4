"""Give committed events gapless positions and chain their hashes.

Runs inside the single active relay. It selects rows that have no position yet: a transaction
that commits late leaves its rows without a position until it commits, and they are picked up by
the next pass. Positions therefore follow the order in which events became visible, not the order
of insertion, and are gapless even when writers roll back.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import bindparam, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from sipas_events.schema import GENESIS_HASH, event_store, relay_state
from sipas_events.store import StoredEvent, chain_hash

_ASSIGN = text(
    """
    UPDATE event_store AS e SET position = v.position, hash = v.hash
    FROM unnest(CAST(:ids AS uuid[]), CAST(:positions AS bigint[]), CAST(:hashes AS bytea[]))
         AS v(id, position, hash)
    WHERE e.id = v.id
    """
)


async def ensure_state(conn: AsyncConnection) -> None:
    await conn.execute(
        pg_insert(relay_state).values(id=1, head_hash=GENESIS_HASH).on_conflict_do_nothing()
    )


@dataclass(frozen=True)
class Sequenced:
    """What one sequencing pass did, read under the ``relay_state`` row lock."""

    events: list[StoredEvent]   # the rows it gave positions to, in position order
    sequenced_position: int     # the last position given, by this pass or an earlier one
    published_position: int     # the publisher's cursor at that moment


async def sequence_batch(conn: AsyncConnection, limit: int = 1000) -> int:
    """Sequence up to ``limit`` committed events; the caller's transaction commits. Returns count."""
    return len((await sequence(conn, limit)).events)


async def sequence(conn: AsyncConnection, limit: int = 1000) -> Sequenced:
    """Sequence up to ``limit`` committed events; the caller's transaction commits."""
    state = (
        await conn.execute(
            select(relay_state.c.sequenced_position, relay_state.c.head_hash, relay_state.c.published_position)
            .where(relay_state.c.id == 1)
            .with_for_update()
        )
    ).first()
    if state is None:
        raise RuntimeError("relay_state is not initialised")
    position, previous, published = int(state[0]), bytes(state[1]), int(state[2])
    rows = (
        await conn.execute(
            select(event_store.c.id, event_store.c.type, event_store.c.province, event_store.c.body)
            .where(event_store.c.position.is_(None))
            .order_by(event_store.c.insert_order)
            .limit(limit)
        )
    ).all()
    if not rows:
        return Sequenced([], position, published)
    events, ids, positions, hashes = [], [], [], []
    for event_id, type_, province, body in rows:
        position += 1
        previous = chain_hash(previous, position, body)
        events.append(StoredEvent(position, event_id, type_, province, body))
        ids.append(event_id)
        positions.append(position)
        hashes.append(previous)
    await conn.execute(_ASSIGN, {"ids": ids, "positions": positions, "hashes": hashes})
    await conn.execute(
        update(relay_state)
        .where(relay_state.c.id == 1)
        .values(sequenced_position=position, head_hash=previous, updated_at=text("now()"))
    )
    return Sequenced(events, position, published)


async def mark_published(conn: AsyncConnection, position: int) -> None:
    await conn.execute(
        update(relay_state)
        .where(relay_state.c.id == 1, relay_state.c.published_position < bindparam("p"))
        .values(published_position=bindparam("p"), updated_at=text("now()")),
        {"p": position},
    )


async def relay_positions(conn: AsyncConnection) -> tuple[int, int]:
    """(sequenced, published)."""
    row = (
        await conn.execute(
            select(relay_state.c.sequenced_position, relay_state.c.published_position).where(
                relay_state.c.id == 1
            )
        )
    ).first()
    return (0, 0) if row is None else (int(row[0]), int(row[1]))
