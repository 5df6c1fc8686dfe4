"""online-766 ratings from kiosks and portals: batched, idempotent on (source system, dossier id).

Valid items are recorded and the rest reported item by item; a dossier already recorded with the same
content is a harmless repeat (a retried batch), with different content a conflict.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import select, tuple_
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from sipas_ballots.adapters.tables import online_ratings, reference
from sipas_ballots.application.intake import today_in_vietnam
from sipas_ballots.domain.online766 import validate_batch
from sipas_events.catalogue.ballots import DossierRating, OnlineRatingsRecorded
from sipas_events.ids import new_id
from sipas_events.store import EventStore, Metadata

FLAGS = ("rated_unsatisfied", "complained", "overdue")


async def record(conn: AsyncConnection, store: EventStore, campaign_id: str, province: str | None,
                 rows: Sequence[Mapping[str, Any]], meta: Metadata) -> dict[str, Any]:
    batch = validate_batch(rows, not_after=today_in_vietnam())
    errors = [{"index": e.index, "field": e.field, "message": e.message} for e in batch.errors]
    keys = [r.idempotency_key for r in batch.ratings]
    key_columns = tuple_(online_ratings.c.source_system, online_ratings.c.dossier_id)
    known = {} if not keys else {
        (r.source_system, r.dossier_id): r
        for r in await conn.execute(select(online_ratings).where(key_columns.in_(keys)))}
    elsewhere = await _elsewhere(conn, province, {r.agency_code for r in batch.ratings})
    batch_id, fresh, repeats = str(new_id()), [], 0
    for index, rating in zip(batch.rows, batch.ratings, strict=True):  # the row's index in the batch sent
        if rating.agency_code in elsewhere:
            errors.append({"index": index, "field": "agency_code",
                           "message": f"agency {rating.agency_code} is not in province {province}"})
            continue
        old = known.get(rating.idempotency_key)
        if old is not None:
            same = (old.agency_code, old.completed_on, *(getattr(old, f) for f in FLAGS)) == (
                rating.agency_code, rating.completed_on, *(getattr(rating, f) for f in FLAGS))
            if same:
                repeats += 1
            else:
                errors.append({"index": index, "field": "dossier_id",
                               "message": f"dossier {rating.dossier_id} was recorded earlier with other values"})
            continue
        fresh.append(rating)
    if fresh:
        await conn.execute(insert(online_ratings), [
            {"source_system": r.source_system, "dossier_id": r.dossier_id, "campaign_id": campaign_id,
             "agency_code": r.agency_code, "completed_on": r.completed_on, "batch_id": batch_id,
             **{f: getattr(r, f) for f in FLAGS}} for r in fresh])
        by_source: dict[str, list[Any]] = {}
        for r in fresh:
            by_source.setdefault(r.source_system, []).append(r)
        for source, items in by_source.items():
            event = OnlineRatingsRecorded(
                batch_id=batch_id, campaign_id=campaign_id, source_system=source, province=province,
                ratings=[DossierRating(dossier_id=r.dossier_id, agency_code=r.agency_code, completed_on=r.completed_on,
                                       **{f: getattr(r, f) for f in FLAGS}) for r in items])
            await store.append(conn, f"ratings-{batch_id}-{source}", [event], expected_version=0, meta=meta)
    return {"batch_id": batch_id, "recorded": len(fresh), "repeats": repeats + len(batch.duplicates),
            "errors": errors}


async def _elsewhere(conn: AsyncConnection, province: str | None, codes: set[str]) -> set[str]:
    """The agency codes the registry places in another province than a provincial campaign's."""
    if province is None or not codes:
        return set()
    a = reference.agencies.c
    found = await conn.execute(select(a.code).where(a.code.in_(codes), a.province.is_not(None), a.province != province))
    return {code for (code,) in found}
