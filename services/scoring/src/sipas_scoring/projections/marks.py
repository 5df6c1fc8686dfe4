"""Which campaigns' figures are stale: set by the handlers, cleared by the figures worker.

Not a projection table (a rebuild leaves it alone, then marks everything again as it replays).
``since`` keeps the earliest event time not yet reflected, which is what freshness is measured from;
``marks`` counts the marks, so the worker clears only a row no event touched while it computed. The
tallies consumer marks once per campaign and applied run (:func:`mark_dirty_since`), not per event.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from sqlalchemy import func, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from sipas_events.envelope import Envelope
from sipas_scoring.adapters.tables import dirty


async def mark_dirty(conn: AsyncConnection, campaign_id: str, env: Envelope, agency_ids: Iterable[str]) -> None:
    await mark_dirty_since(conn, campaign_id, env.time, agency_ids)


async def mark_dirty_since(conn: AsyncConnection, campaign_id: str, since: dt.datetime,
                           agency_ids: Iterable[str]) -> None:
    """Mark once for many events (a run): ``since`` the earliest of their times, their agencies together."""
    stmt = insert(dirty).values(campaign_id=campaign_id, since=since, agency_ids=sorted(set(agency_ids)), marks=1)
    await conn.execute(stmt.on_conflict_do_update(index_elements=["campaign_id"], set_={
        "marks": dirty.c.marks + 1,
        "since": func.least(dirty.c.since, stmt.excluded.since),
        "agency_ids": text("ARRAY(SELECT DISTINCT x FROM unnest(sc_dirty.agency_ids || EXCLUDED.agency_ids) AS x"
                           " ORDER BY x)"),
    }))
